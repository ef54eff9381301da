/**
 * `lbvm agent`: one per host, owning that host's QEMU guests. It defines, starts, stops and lists
 * them, reports their use, and carries out its half of each migration (source or destination).
 * This file holds the agent's life (start, adoption of running guests, the background tick) and its
 * calls; each part lives beside it:
 *
 * - `state.ts`: the guests and their state on disk (`stateDir/guests/<id>/`). QEMU runs detached: an
 *   agent restart re-adopts running guests (it never restarts them), finishes what a migration left
 *   (a source left in `postmigrate` is quit; a destination that never started running is killed),
 *   and forgets nothing it did not see end.
 * - `qemu.ts`: QEMU processes (launch, QMP, quit); `proc-stat.ts`: a process's use from /proc.
 * - `control.ts`: the HTTP control port (mutual TLS with the cluster's certificates) and its token.
 * - `migration.ts`: live migrations, owned by the agent, not by the caller: once started, the source
 *   agent follows `query-migrate` itself, so a worker that dies does not leave a half-done move; a
 *   later attempt re-attaches to it (same destination) and a cancel from an attempt that no longer
 *   owns it is ignored. The states in which a migration is under way are listed there, once.
 * - `checkpoint.ts`: checkpoint mode (stop, save, copy, restore).
 * - `inventory.ts`: what a collector reads.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../../log.ts';
import { readTls, type TlsMaterial } from '../../../util/tls.ts';
import type { MigrateInfo } from '../qmp.ts';
import { QmpClient } from '../qmp.ts';
import { download, restore, resumeCheckpoint, saveCheckpoint, upload } from './checkpoint.ts';
import { ControlPort, parseSpec, readJson, type ControlRoutes } from './control.ts';
import { HttpError } from './http-error.ts';
import {
  cancelMirrors,
  checkImagesExist,
  createIncomingImages,
  DISK_COPY,
  exportIncomingDisks,
  hasLocalDisks,
  localDiskSizes,
  removeLocalImages,
  stopIncomingExports,
} from './disks.ts';
import { describe, inventory } from './inventory.ts';
import {
  followMigration,
  listenIncoming,
  migrationInProgress,
  migrationStatus,
  qemuTlsDir,
  startMigration,
  tlsCredentialsId,
  writeQemuTlsDir,
} from './migration.ts';
import { isOurQemu } from './proc-stat.ts';
import { kill, killPidFile, launch, qmpOf, runStatus } from './qemu.ts';
import { GuestStore, type AgentHost, type AgentOptions, type ManagedGuest, type OutgoingMigration } from './state.ts';

export type { AgentOptions, GuestRole } from './state.ts';
export { HttpError } from './http-error.ts';

/** An incoming guest that has not started running after this long is given up and killed. */
const INCOMING_GIVE_UP_MS = 15 * 60_000;

export class Agent implements AgentHost {
  readonly guests = new Map<string, ManagedGuest>();
  readonly departed = new Map<string, OutgoingMigration>();
  readonly store: GuestStore;
  readonly imagesDir: string;
  private readonly control: ControlPort;
  private loop: NodeJS.Timeout | null = null;
  private ticking = false;
  address: { host: string; port: number } | null = null;

  constructor(readonly options: AgentOptions) {
    this.store = new GuestStore(options.stateDir);
    const tls = options.tls ? (readTls(options.tls) as Required<TlsMaterial>) : undefined;
    this.imagesDir = options.imagesDir ?? path.join(options.stateDir, 'images');
    this.control = new ControlPort(options.token, this.routes(), options.log, tls);
  }

  get log(): Logger {
    return this.options.log;
  }

  async start(): Promise<{ host: string; port: number }> {
    this.store.open();
    if (this.options.tls) writeQemuTlsDir(qemuTlsDir(this.options), this.options.tls);
    await this.adoptAll();
    this.address = await this.control.listen(this.options.listen);
    this.loop = setInterval(() => void this.tick(), 300);
    this.log.info(
      {
        host: this.options.host,
        listen: `${this.address.host}:${this.address.port}`,
        guests: this.guests.size,
        tls: this.options.tls ? { control: 'mutual', migration: this.options.tls.migration } : false,
      },
      'agent listening',
    );
    return this.address;
  }

  /** Stops serving; guests keep running (a restarted agent re-adopts them). */
  async stop(): Promise<void> {
    if (this.loop) clearInterval(this.loop);
    for (const guest of this.guests.values()) guest.qmp?.close();
    await this.control.close();
  }

  forget(guest: ManagedGuest, why: string, unexpected = false): void {
    if (unexpected) {
      // Keep the evidence in the agent's log before the folder goes.
      this.log.warn(
        {
          vm: guest.spec.name,
          why,
          qemuLog: this.store.tail(guest, 'qemu.log'),
          console: this.store.tail(guest, 'serial.log'),
        },
        'guest ended unexpectedly',
      );
    }
    guest.qmp?.close();
    this.guests.delete(guest.spec.name);
    this.store.remove(guest);
    this.log.info({ vm: guest.spec.name, why }, 'guest removed from this host');
  }

  promote(guest: ManagedGuest): void {
    guest.role = 'running';
    guest.incoming = undefined;
    this.store.save(guest);
    void stopIncomingExports(guest);
    this.log.info({ vm: guest.spec.name }, 'incoming guest is running here now');
  }

  // ---------------------------------------------------------------- adoption at start

  private async adoptAll(): Promise<void> {
    for (const found of this.store.saved()) {
      if (!('guest' in found)) {
        this.log.warn({ dir: found.dir, error: found.error }, 'unreadable guest state; removing it');
        killPidFile(found.dir);
        this.store.remove(found);
        continue;
      }
      const { guest } = found;
      const name = guest.spec.name;
      this.guests.set(name, guest);
      const alive = guest.pid !== null && isOurQemu(guest.pid, guest.id);
      if (!alive) {
        if (guest.role === 'incoming') {
          this.dropIncoming(guest, 'a half-started incoming guest whose QEMU is gone (found at agent start)');
        } else {
          guest.role = 'stopped';
          guest.pid = null;
          this.store.save(guest);
          this.log.warn({ vm: name }, 'guest was not running when the agent started; kept as stopped');
        }
        continue;
      }
      let status = 'unknown';
      try {
        guest.qmp = await QmpClient.connect(path.join(guest.dir, 'qmp.sock'));
        status = ((await guest.qmp.execute('query-status')) as { status: string }).status;
      } catch (error) {
        this.log.warn({ vm: name, error: (error as Error).message }, 'cannot reach an adopted guest over QMP');
      }
      if (guest.role === 'incoming' && status !== 'running') {
        await kill(guest);
        this.dropIncoming(guest, `a half-started incoming guest (status ${status}) found at agent start: cleaned up`);
      } else if (guest.role === 'incoming') {
        guest.role = 'running';
        guest.incoming = undefined;
        this.store.save(guest);
        this.log.info({ vm: name }, 'an incoming guest finished arriving while the agent was away; adopted');
      } else if (status === 'postmigrate' && guest.role === 'running') {
        await kill(guest);
        this.forget(guest, 'migrated away while the agent was away; the source copy was quit');
      } else {
        this.log.info({ vm: name, pid: guest.pid, status, role: guest.role }, 'adopted a running guest');
      }
    }
  }

  // ---------------------------------------------------------------- background work

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const guest of [...this.guests.values()]) {
        try {
          await this.tickGuest(guest);
        } catch (error) {
          this.log.debug({ vm: guest.spec.name, error: (error as Error).message }, 'guest check failed');
        }
      }
    } finally {
      this.ticking = false;
    }
  }

  private async tickGuest(guest: ManagedGuest): Promise<void> {
    const alive = guest.pid !== null && isOurQemu(guest.pid, guest.id);
    if (!alive) {
      if (guest.role === 'incoming')
        return this.dropIncoming(guest, 'incoming QEMU exited (migration failed or cancelled)', true);
      if (guest.role !== 'stopped') {
        // A source whose QEMU died mid-migration: the migration ends there (a caller following it
        // would otherwise read its last status, under way, for ever).
        const migration = migrationInProgress(guest);
        if (migration) {
          migration.status = 'failed';
          migration.error = 'the source QEMU exited during the migration';
        }
        guest.role = 'stopped';
        guest.pid = null;
        guest.qmp?.close();
        this.store.save(guest);
        this.log.warn(
          {
            vm: guest.spec.name,
            qemuLog: this.store.tail(guest, 'qemu.log'),
            console: this.store.tail(guest, 'serial.log'),
          },
          'guest QEMU exited',
        );
      }
      return;
    }
    await followMigration(this, guest);
    if (guest.role === 'incoming' && guest.incoming) {
      const status = await runStatus(guest);
      if (status === 'running') return this.promote(guest);
      if (guest.incoming.mode === 'live') {
        const info = await (await qmpOf(guest)).execute<MigrateInfo>('query-migrate').catch(() => null);
        if (info?.status === 'failed' || info?.status === 'cancelled') {
          await kill(guest);
          return this.dropIncoming(guest, `incoming migration ${info.status}`);
        }
      }
      if (Date.now() - guest.incoming.startedMs > INCOMING_GIVE_UP_MS) {
        await kill(guest);
        return this.dropIncoming(guest, 'incoming guest never started running');
      }
    }
  }

  /** Drops a guest that never arrived, with the disk images its arrival created (a half copy). */
  private dropIncoming(guest: ManagedGuest, why: string, unexpected = false): void {
    this.forget(guest, why, unexpected);
    removeLocalImages(this, guest.spec, 'half-copied disk of an incoming guest that never arrived');
  }

  // ---------------------------------------------------------------- the calls

  /** A guest of this host by the `name` a call gives, or 400/404. */
  private guest(name: unknown): ManagedGuest {
    if (typeof name !== 'string' || !name) throw new HttpError(400, 'expected "name": the VM name');
    const guest = this.guests.get(name);
    if (!guest) throw new HttpError(404, `no guest named ${JSON.stringify(name)} on ${this.options.host}`);
    return guest;
  }

  private routes(): ControlRoutes {
    const host = this.options.host;
    return {
      streams: {
        'POST /v1/checkpoint/upload': (request, response, url) =>
          upload(this.guest(url.searchParams.get('name') ?? ''), request, response),
        'POST /v1/checkpoint/download': async (request, response) =>
          download(this.guest((await readJson(request)).name), response),
      },
      json: {
        'GET /v1/health': async () => ({ host, guests: this.guests.size }),
        'POST /v1/guests/list': async () => ({
          host,
          guests: await Promise.all([...this.guests.values()].map((guest) => describe(guest))),
        }),
        'POST /v1/guests/get': async (body) => {
          const guest = this.guest(body.name);
          const disks = guest.role === 'running' ? await localDiskSizes(guest) : [];
          return { ...(await describe(guest)), spec: guest.spec, disks };
        },
        'POST /v1/guests/start': async (body) => {
          const spec = parseSpec(body.spec);
          if (this.guests.has(spec.name))
            throw new HttpError(409, `a guest named ${JSON.stringify(spec.name)} already exists on ${host}`);
          checkImagesExist(this, spec);
          const guest = await launch(this, spec, 'running', false);
          this.log.info({ vm: spec.name, pid: guest.pid }, 'guest started');
          return describe(guest);
        },
        'POST /v1/guests/stop': async (body) => {
          const guest = this.guest(body.name);
          if (migrationInProgress(guest))
            throw new HttpError(409, `${guest.spec.name} is migrating; cancel the migration first`);
          await kill(guest);
          this.forget(guest, 'stopped on request');
          return { stopped: true };
        },
        'POST /v1/inventory': async () => ({ host, vms: await inventory(this) }),

        // -- destination side
        'POST /v1/incoming/prepare': async (body) => {
          const spec = parseSpec(body.spec);
          const mode = body.mode === 'checkpoint' ? 'checkpoint' : 'live';
          const attemptId = String(body.attemptId ?? '');
          const existing = this.guests.get(spec.name);
          if (existing) {
            if (existing.role === 'incoming' && existing.incoming?.mode === mode) {
              existing.incoming.attemptId = attemptId;
              this.store.save(existing);
              return {
                uri: existing.incoming.uri ?? null,
                tls: existing.incoming.tls ?? false,
                nbd: existing.incoming.nbd ?? null,
                reused: true,
              };
            }
            throw new HttpError(
              409,
              `a guest named ${JSON.stringify(spec.name)} already ${existing.role === 'incoming' ? 'is arriving' : 'runs'} on ${host}`,
            );
          }
          if (mode === 'checkpoint' && hasLocalDisks(spec))
            throw new HttpError(
              409,
              `${JSON.stringify(spec.name)} has local disks; checkpoint mode does not copy disks (use live migration)`,
            );
          await createIncomingImages(this, spec, body.disks);
          let guest: ManagedGuest;
          try {
            guest = await launch(this, spec, 'incoming', true);
          } catch (error) {
            removeLocalImages(this, spec, 'the incoming guest could not start');
            throw error;
          }
          guest.incoming = { mode, attemptId, startedMs: Date.now() };
          let nbd = null;
          try {
            if (mode === 'live') Object.assign(guest.incoming, await listenIncoming(this, guest));
            nbd = await exportIncomingDisks(this, guest, guest.incoming.tls ? tlsCredentialsId('server') : null);
          } catch (error) {
            await kill(guest);
            this.dropIncoming(guest, 'could not prepare the incoming migration');
            throw error;
          }
          guest.incoming.nbd = nbd ?? undefined;
          this.store.save(guest);
          const { uri, tls } = guest.incoming;
          this.log.info({ vm: spec.name, mode, uri, tls, nbd }, 'waiting for an incoming migration');
          return { uri: uri ?? null, tls: tls ?? false, nbd, reused: false };
        },
        'POST /v1/incoming/commit': async (body) => {
          const guest = this.guest(body.name);
          if (guest.role === 'running') return { running: true };
          const deadline = Date.now() + 10_000;
          while (Date.now() < deadline) {
            if ((await runStatus(guest)) === 'running') {
              this.promote(guest);
              return { running: true };
            }
            await sleep(100);
          }
          throw new HttpError(409, `${guest.spec.name} has not started running here`);
        },
        // Never kills a guest that runs: one that arrived (even if this agent's tick has not seen it
        // yet) is kept and said to run, so the caller reports the move done instead of losing the guest.
        'POST /v1/incoming/abort': async (body) => {
          const guest = this.guests.get(String(body.name));
          if (!guest) return { aborted: false, running: false };
          if (guest.role === 'incoming' && (await runStatus(guest)) === 'running') this.promote(guest);
          if (guest.role === 'running') return { aborted: false, running: true };
          if (guest.role !== 'incoming')
            throw new HttpError(
              409,
              `${guest.spec.name} is not an incoming guest here (it is ${guest.role}); not touched`,
            );
          if (body.attemptId && guest.incoming?.attemptId !== body.attemptId)
            return { aborted: false, running: false, reason: 'another attempt owns this incoming migration now' };
          await kill(guest);
          this.dropIncoming(guest, 'incoming migration aborted');
          return { aborted: true, running: false };
        },
        'POST /v1/incoming/restore': async (body) => restore(this, this.guest(body.name)),

        // -- source side
        'POST /v1/migrate/start': async (body) => startMigration(this, this.guest(body.name), body),
        'POST /v1/migrate/status': async (body) => migrationStatus(this, String(body.name)),
        'POST /v1/migrate/cancel': async (body) => {
          const guest = this.guest(body.name);
          if (!guest.migration) return { cancelled: false };
          if (body.attemptId && guest.migration.attemptId !== body.attemptId)
            return { cancelled: false, reason: 'another attempt owns this migration now' };
          if (guest.migration.status === DISK_COPY) {
            // Still copying disks: no memory migration to cancel yet; stop the mirrors.
            await cancelMirrors(guest);
            guest.migration.status = 'cancelled';
            guest.migration.error = 'cancelled while copying disks';
            return { cancelled: true };
          }
          await (await qmpOf(guest)).execute('migrate_cancel');
          return { cancelled: true };
        },
        'POST /v1/checkpoint/save': async (body) =>
          saveCheckpoint(this, this.guest(body.name), String(body.attemptId ?? '')),
        'POST /v1/checkpoint/resume': async (body) => resumeCheckpoint(this, this.guest(body.name)),
        'POST /v1/checkpoint/finish': async (body) => {
          const guest = this.guest(body.name);
          if (guest.role !== 'checkpointing')
            throw new HttpError(409, `${guest.spec.name} is not being checkpointed here`);
          await kill(guest);
          this.forget(guest, 'checkpoint restored elsewhere');
          return { finished: true };
        },
      },
    };
  }
}
