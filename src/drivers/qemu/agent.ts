/**
 * `lbvm agent`: one per host, owning that host's QEMU guests. It defines, starts, stops and lists
 * them, reports their use, and carries out its half of each migration (source or destination).
 *
 * - State lives under `stateDir/guests/<id>/` (spec.json, state.json, qmp.sock, serial.log,
 *   qemu.pid); `<id>` is a hash of the VM's name, so no name ever becomes a path. QEMU runs
 *   detached: an agent restart re-adopts running guests (it never restarts them), finishes what a
 *   migration left (a source left in `postmigrate` is quit; a destination that never started
 *   running is killed), and forgets nothing it did not see end.
 * - The control port (HTTP, JSON) is bound to `agent.listen` and every call must carry
 *   `Authorization: Bearer <token>` (the shared token from `$LBVM_AGENT_TOKEN`); a call without it
 *   is refused with 401 before its body is read, and starts nothing. The token is never logged.
 * - Migrations are owned by the agent, not by the caller: once started, the source agent follows
 *   `query-migrate` itself, so a worker that dies does not leave a half-done move; a later attempt
 *   re-attaches to it (same destination) and a cancel from an attempt that no longer owns it is
 *   ignored.
 */
import { spawn } from 'node:child_process';
import { timingSafeEqual, createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log.ts';
import type { VmRunState } from '../../model/index.ts';
import type { VmInventory } from '../driver.ts';
import { guestId, guestSpecSchema, qemuArgv, type GuestSpec } from './guest.ts';
import { QmpClient, type MigrateInfo } from './qmp.ts';
import { parseHostPort } from '../../util/address.ts';
import { makeDirs } from '../../util/dirs.ts';

export interface AgentOptions {
  /** This host's name (config `node`). */
  host: string;
  /** host:port to bind the control port to (port 0: any free port). */
  listen: string;
  stateDir: string;
  token: string;
  accel: 'tcg' | 'kvm';
  /** Address an incoming migration listens on. */
  migrationAddress: string;
  log: Logger;
  qemuBinary?: string;
}

export type GuestRole = 'running' | 'incoming' | 'checkpointing' | 'stopped';

interface OutgoingMigration {
  to: string;
  uri: string;
  attemptId: string;
  startedMs: number;
  status: string;
  info: MigrateInfo;
  error?: string;
  autoConverge: boolean;
  dirtyBytesPerSec: number | null;
}

interface ManagedGuest {
  spec: GuestSpec;
  id: string;
  dir: string;
  role: GuestRole;
  pid: number | null;
  qmp: QmpClient | null;
  migration?: OutgoingMigration;
  incoming?: { mode: 'live' | 'checkpoint'; uri?: string; attemptId: string; startedMs: number };
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_JSON_BODY = 1024 * 1024;
/** An incoming guest that has not started running after this long is given up and killed. */
const INCOMING_GIVE_UP_MS = 15 * 60_000;

export class Agent {
  private readonly guests = new Map<string, ManagedGuest>();
  private server: http.Server | null = null;
  private loop: NodeJS.Timeout | null = null;
  private readonly guestsDir: string;
  private readonly tokenHash: Buffer;
  private ticking = false;
  address: { host: string; port: number } | null = null;

  constructor(readonly options: AgentOptions) {
    if (!options.token) throw new Error('the agent token is empty');
    this.guestsDir = path.join(options.stateDir, 'guests');
    this.tokenHash = createHash('sha256').update(options.token).digest();
  }

  get log(): Logger {
    return this.options.log;
  }

  async start(): Promise<{ host: string; port: number }> {
    makeDirs(this.guestsDir, 0o700);
    await this.adoptAll();
    const address = parseHostPort(this.options.listen, 0);
    if (!address) throw new Error(`expected host:port, got ${JSON.stringify(this.options.listen)}`);
    const { host, port } = address;
    this.server = http.createServer((request, response) => {
      this.handle(request, response).catch((error: Error) => {
        const status = error instanceof HttpError ? error.status : 500;
        if (status >= 500) this.log.warn({ error: error.message, url: request.url }, 'control call failed');
        if (!response.headersSent) {
          response.writeHead(status, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ error: error.message }));
        } else response.destroy();
      });
    });
    this.server.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    const bound = this.server.address() as net.AddressInfo;
    this.address = { host, port: bound.port };
    this.loop = setInterval(() => void this.tick(), 300);
    this.log.info(
      { host: this.options.host, listen: `${host}:${bound.port}`, guests: this.guests.size },
      'agent listening',
    );
    return this.address;
  }

  /** Stops serving; guests keep running (a restarted agent re-adopts them). */
  async stop(): Promise<void> {
    if (this.loop) clearInterval(this.loop);
    for (const guest of this.guests.values()) guest.qmp?.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  // ---------------------------------------------------------------- state on disk

  private dirOf(name: string): string {
    return path.join(this.guestsDir, guestId(name));
  }

  private save(guest: ManagedGuest): void {
    const state = { role: guest.role, pid: guest.pid, incoming: guest.incoming ?? null };
    fs.writeFileSync(path.join(guest.dir, 'state.json.tmp'), JSON.stringify(state));
    fs.renameSync(path.join(guest.dir, 'state.json.tmp'), path.join(guest.dir, 'state.json'));
  }

  private forget(guest: ManagedGuest, why: string, unexpected = false): void {
    if (unexpected) {
      // Keep the evidence in the agent's log before the folder goes.
      const tail = (file: string) =>
        safeRead(path.join(guest.dir, file))
          .split('\n')
          .filter((line) => !line.startsWith('lbvm-guest: tick'))
          .slice(-15)
          .join('\n');
      this.log.warn(
        { vm: guest.spec.name, why, qemuLog: tail('qemu.log'), console: tail('serial.log') },
        'guest ended unexpectedly',
      );
    }
    guest.qmp?.close();
    this.guests.delete(guest.spec.name);
    fs.rmSync(guest.dir, { recursive: true, force: true });
    this.log.info({ vm: guest.spec.name, why }, 'guest removed from this host');
  }

  private async adoptAll(): Promise<void> {
    for (const entry of fs.readdirSync(this.guestsDir)) {
      const dir = path.join(this.guestsDir, entry);
      let spec: GuestSpec;
      let state: { role: GuestRole; pid: number | null; incoming: ManagedGuest['incoming'] | null };
      try {
        spec = guestSpecSchema.parse(JSON.parse(fs.readFileSync(path.join(dir, 'spec.json'), 'utf8')));
        state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
      } catch (error) {
        this.log.warn({ dir, error: (error as Error).message }, 'unreadable guest state; removing it');
        killPidFile(dir);
        fs.rmSync(dir, { recursive: true, force: true });
        continue;
      }
      const guest: ManagedGuest = {
        spec,
        id: entry,
        dir,
        role: state.role,
        pid: state.pid,
        qmp: null,
        incoming: state.incoming ?? undefined,
      };
      this.guests.set(spec.name, guest);
      const alive = guest.pid !== null && isOurQemu(guest.pid, guest.id);
      if (!alive) {
        if (guest.role === 'incoming') {
          this.forget(guest, 'a half-started incoming guest whose QEMU is gone (found at agent start)');
        } else {
          guest.role = 'stopped';
          guest.pid = null;
          this.save(guest);
          this.log.warn({ vm: spec.name }, 'guest was not running when the agent started; kept as stopped');
        }
        continue;
      }
      let status = 'unknown';
      try {
        guest.qmp = await QmpClient.connect(path.join(dir, 'qmp.sock'));
        status = ((await guest.qmp.execute('query-status')) as { status: string }).status;
      } catch (error) {
        this.log.warn({ vm: spec.name, error: (error as Error).message }, 'cannot reach an adopted guest over QMP');
      }
      if (guest.role === 'incoming' && status !== 'running') {
        await this.kill(guest);
        this.forget(guest, `a half-started incoming guest (status ${status}) found at agent start: cleaned up`);
      } else if (guest.role === 'incoming') {
        guest.role = 'running';
        guest.incoming = undefined;
        this.save(guest);
        this.log.info({ vm: spec.name }, 'an incoming guest finished arriving while the agent was away; adopted');
      } else if (status === 'postmigrate' && guest.role === 'running') {
        await this.kill(guest);
        this.forget(guest, 'migrated away while the agent was away; the source copy was quit');
      } else {
        this.log.info({ vm: spec.name, pid: guest.pid, status, role: guest.role }, 'adopted a running guest');
      }
    }
  }

  // ---------------------------------------------------------------- QEMU processes

  private async launch(spec: GuestSpec, role: GuestRole, incoming: boolean): Promise<ManagedGuest> {
    const id = guestId(spec.name);
    const dir = this.dirOf(spec.name);
    fs.rmSync(dir, { recursive: true, force: true });
    makeDirs(dir, 0o700);
    fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(spec));
    const guest: ManagedGuest = { spec, id, dir, role, pid: null, qmp: null };
    this.guests.set(spec.name, guest);
    this.save(guest);
    const qmpSocket = path.join(dir, 'qmp.sock');
    const argv = qemuArgv(spec, {
      qmpSocket,
      serialLog: path.join(dir, 'serial.log'),
      pidFile: path.join(dir, 'qemu.pid'),
      accel: this.options.accel,
      incoming,
    });
    const logFd = fs.openSync(path.join(dir, 'qemu.log'), 'a');
    const child = spawn(this.options.qemuBinary ?? 'qemu-system-x86_64', argv, {
      detached: true,
      stdio: ['ignore', logFd, logFd],
    });
    fs.closeSync(logFd);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.unref();
    guest.pid = child.pid ?? null;
    this.save(guest);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const failed = await Promise.race([spawnError, sleep(100).then(() => null)]);
      if (failed) {
        this.forget(guest, 'QEMU could not be started');
        throw new HttpError(500, `cannot start QEMU: ${failed.message}`);
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        const output = safeRead(path.join(dir, 'qemu.log')).slice(-2000);
        this.forget(guest, 'QEMU exited at start');
        throw new HttpError(500, `QEMU exited at start (${child.exitCode ?? child.signalCode}): ${output}`);
      }
      if (fs.existsSync(qmpSocket)) {
        try {
          guest.qmp = await QmpClient.connect(qmpSocket);
          break;
        } catch {
          /* not listening yet */
        }
      }
      if (Date.now() > deadline) {
        await this.kill(guest);
        this.forget(guest, 'QMP did not come up');
        throw new HttpError(500, 'QEMU started but its QMP socket did not answer within 15 s');
      }
    }
    return guest;
  }

  private async qmpOf(guest: ManagedGuest): Promise<QmpClient> {
    if (guest.qmp && !guest.qmp.closed) return guest.qmp;
    guest.qmp = await QmpClient.connect(path.join(guest.dir, 'qmp.sock'));
    return guest.qmp;
  }

  /** Quits QEMU (QMP `quit`), then SIGKILLs it if it is still there. */
  private async kill(guest: ManagedGuest): Promise<void> {
    const pid = guest.pid;
    try {
      await (await this.qmpOf(guest)).execute('quit', undefined, 2000);
    } catch {
      /* gone or not answering */
    }
    guest.qmp?.close();
    guest.qmp = null;
    if (pid !== null) {
      const deadline = Date.now() + 3000;
      while (isOurQemu(pid, guest.id) && Date.now() < deadline) await sleep(50);
      if (isOurQemu(pid, guest.id)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    guest.pid = null;
  }

  private async status(guest: ManagedGuest): Promise<string> {
    if (guest.pid === null || !isOurQemu(guest.pid, guest.id)) return 'gone';
    try {
      return ((await (await this.qmpOf(guest)).execute('query-status', undefined, 3000)) as { status: string }).status;
    } catch {
      return 'unknown';
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
        return this.forget(guest, 'incoming QEMU exited (migration failed or cancelled)', true);
      if (guest.role !== 'stopped') {
        guest.role = 'stopped';
        guest.pid = null;
        guest.qmp?.close();
        this.save(guest);
        const tail = (file: string) =>
          safeRead(path.join(guest.dir, file))
            .split('\n')
            .filter((line) => !line.startsWith('lbvm-guest: tick'))
            .slice(-15)
            .join('\n');
        this.log.warn(
          { vm: guest.spec.name, qemuLog: tail('qemu.log'), console: tail('serial.log') },
          'guest QEMU exited',
        );
      }
      return;
    }
    if (
      guest.migration &&
      ['setup', 'active', 'cancelling', 'pre-switchover', 'device', 'wait-unplug', 'postcopy-active'].includes(
        guest.migration.status,
      )
    ) {
      const info = await (await this.qmpOf(guest)).execute<MigrateInfo>('query-migrate');
      guest.migration.info = info;
      guest.migration.status = info.status ?? 'none';
      if (info.status === 'completed') {
        this.log.info(
          { vm: guest.spec.name, to: guest.migration.to, totalMs: info['total-time'], downtimeMs: info.downtime },
          'live migration completed; quitting the source copy',
        );
        const migration = guest.migration;
        await this.kill(guest);
        this.forget(guest, `migrated to ${migration.to}`);
        this.departed.set(guest.spec.name, migration);
      } else if (info.status === 'failed' || info.status === 'cancelled') {
        guest.migration.error = info['error-desc'] ?? info.status;
        this.log.warn(
          { vm: guest.spec.name, to: guest.migration.to, error: guest.migration.error },
          'live migration ended without moving the guest; it keeps running here',
        );
      }
    }
    if (guest.role === 'incoming' && guest.incoming) {
      const status = await this.status(guest);
      if (status === 'running') return this.promote(guest);
      if (guest.incoming.mode === 'live') {
        const info = await (await this.qmpOf(guest)).execute<MigrateInfo>('query-migrate').catch(() => null);
        if (info?.status === 'failed' || info?.status === 'cancelled') {
          await this.kill(guest);
          return this.forget(guest, `incoming migration ${info.status}`);
        }
      }
      if (Date.now() - guest.incoming.startedMs > INCOMING_GIVE_UP_MS) {
        await this.kill(guest);
        return this.forget(guest, 'incoming guest never started running');
      }
    }
  }

  /** Source-side record of guests that left, so a late status call still learns the outcome. */
  private readonly departed = new Map<string, OutgoingMigration>();

  private promote(guest: ManagedGuest): void {
    guest.role = 'running';
    guest.incoming = undefined;
    this.save(guest);
    this.log.info({ vm: guest.spec.name }, 'incoming guest is running here now');
  }

  // ---------------------------------------------------------------- control port

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    if (!this.authorized(request.headers.authorization)) {
      // Refused before the body is read: nothing is parsed, nothing is started.
      response.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
      response.end(
        JSON.stringify({
          error: 'missing or wrong agent token (Authorization: Bearer <token>, from $LBVM_AGENT_TOKEN)',
        }),
      );
      request.resume();
      return;
    }
    const url = new URL(request.url ?? '/', 'http://agent');
    const route = `${request.method} ${url.pathname}`;
    if (route === 'POST /v1/checkpoint/upload')
      return this.upload(url.searchParams.get('name') ?? '', request, response);
    if (route === 'POST /v1/checkpoint/download') return this.download(await readJson(request), response);
    const body = request.method === 'POST' ? await readJson(request) : {};
    const handler = this.routes[route];
    if (!handler) throw new HttpError(404, `no such call: ${route}`);
    const result = await handler(body);
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(result ?? {}));
  }

  private authorized(header: string | undefined): boolean {
    if (!header?.startsWith('Bearer ')) return false;
    const given = createHash('sha256').update(header.slice('Bearer '.length)).digest();
    return timingSafeEqual(given, this.tokenHash);
  }

  private guest(name: unknown): ManagedGuest {
    if (typeof name !== 'string' || !name) throw new HttpError(400, 'expected "name": the VM name');
    const guest = this.guests.get(name);
    if (!guest) throw new HttpError(404, `no guest named ${JSON.stringify(name)} on ${this.options.host}`);
    return guest;
  }

  private readonly routes: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
    'GET /v1/health': async () => ({ host: this.options.host, guests: this.guests.size }),
    'POST /v1/guests/list': async () => ({
      host: this.options.host,
      guests: await Promise.all([...this.guests.values()].map((guest) => this.describe(guest))),
    }),
    'POST /v1/guests/get': async (body) => {
      const guest = this.guest(body.name);
      return { ...(await this.describe(guest)), spec: guest.spec };
    },
    'POST /v1/guests/start': async (body) => {
      const spec = parseSpec(body.spec);
      if (this.guests.has(spec.name))
        throw new HttpError(409, `a guest named ${JSON.stringify(spec.name)} already exists on ${this.options.host}`);
      const guest = await this.launch(spec, 'running', false);
      this.log.info({ vm: spec.name, pid: guest.pid }, 'guest started');
      return this.describe(guest);
    },
    'POST /v1/guests/stop': async (body) => {
      const guest = this.guest(body.name);
      if (guest.migration && guest.migration.status === 'active')
        throw new HttpError(409, `${guest.spec.name} is migrating; cancel the migration first`);
      await this.kill(guest);
      this.forget(guest, 'stopped on request');
      return { stopped: true };
    },
    'POST /v1/inventory': async () => ({ host: this.options.host, vms: await this.inventory() }),

    // -- destination side
    'POST /v1/incoming/prepare': async (body) => {
      const spec = parseSpec(body.spec);
      const mode = body.mode === 'checkpoint' ? 'checkpoint' : 'live';
      const attemptId = String(body.attemptId ?? '');
      const existing = this.guests.get(spec.name);
      if (existing) {
        if (existing.role === 'incoming' && existing.incoming?.mode === mode) {
          existing.incoming.attemptId = attemptId;
          this.save(existing);
          return { uri: existing.incoming.uri ?? null, reused: true };
        }
        throw new HttpError(
          409,
          `a guest named ${JSON.stringify(spec.name)} already ${existing.role === 'incoming' ? 'is arriving' : 'runs'} on ${this.options.host}`,
        );
      }
      const guest = await this.launch(spec, 'incoming', true);
      guest.incoming = { mode, attemptId, startedMs: Date.now() };
      if (mode === 'live') {
        guest.incoming.uri = await this.listenIncoming(guest, this.options.migrationAddress);
      }
      this.save(guest);
      this.log.info({ vm: spec.name, mode, uri: guest.incoming.uri }, 'waiting for an incoming migration');
      return { uri: guest.incoming.uri ?? null, reused: false };
    },
    'POST /v1/incoming/commit': async (body) => {
      const guest = this.guest(body.name);
      if (guest.role === 'running') return { running: true };
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        const status = await this.status(guest);
        if (status === 'running') {
          this.promote(guest);
          return { running: true };
        }
        await sleep(100);
      }
      throw new HttpError(409, `${guest.spec.name} has not started running here`);
    },
    'POST /v1/incoming/abort': async (body) => {
      const guest = this.guests.get(String(body.name));
      if (!guest) return { aborted: false };
      if (guest.role !== 'incoming')
        throw new HttpError(409, `${guest.spec.name} is not an incoming guest here (it is ${guest.role}); not touched`);
      await this.kill(guest);
      this.forget(guest, 'incoming migration aborted');
      return { aborted: true };
    },
    'POST /v1/incoming/restore': async (body) => this.restore(this.guest(body.name)),

    // -- source side
    'POST /v1/migrate/start': async (body) => this.startMigration(body),
    'POST /v1/migrate/status': async (body) => this.migrationStatus(String(body.name)),
    'POST /v1/migrate/cancel': async (body) => {
      const guest = this.guest(body.name);
      if (!guest.migration) return { cancelled: false };
      if (body.attemptId && guest.migration.attemptId !== body.attemptId)
        return { cancelled: false, reason: 'another attempt owns this migration now' };
      await (await this.qmpOf(guest)).execute('migrate_cancel');
      return { cancelled: true };
    },
    'POST /v1/checkpoint/save': async (body) =>
      this.saveCheckpoint(this.guest(body.name), String(body.attemptId ?? '')),
    'POST /v1/checkpoint/resume': async (body) => {
      const guest = this.guest(body.name);
      if (guest.role !== 'checkpointing') return { resumed: false };
      await (await this.qmpOf(guest)).execute('cont');
      guest.role = 'running';
      this.save(guest);
      fs.rmSync(path.join(guest.dir, 'checkpoint.bin'), { force: true });
      this.log.info({ vm: guest.spec.name }, 'checkpoint abandoned; the guest runs on here');
      return { resumed: true };
    },
    'POST /v1/checkpoint/finish': async (body) => {
      const guest = this.guest(body.name);
      if (guest.role !== 'checkpointing') throw new HttpError(409, `${guest.spec.name} is not being checkpointed here`);
      await this.kill(guest);
      this.forget(guest, 'checkpoint restored elsewhere');
      return { finished: true };
    },
  };

  private async describe(guest: ManagedGuest) {
    return {
      name: guest.spec.name,
      role: guest.role,
      status: await this.status(guest),
      pid: guest.pid,
      vcpus: guest.spec.vcpus,
      memBytes: guest.spec.memMiB * 1024 * 1024,
      migrating:
        guest.migration &&
        ['setup', 'active', 'cancelling', 'device', 'pre-switchover'].includes(guest.migration.status)
          ? { to: guest.migration.to, status: guest.migration.status }
          : null,
    };
  }

  private async listenIncoming(guest: ManagedGuest, address: string): Promise<string> {
    const qmp = await this.qmpOf(guest);
    await qmp.execute('migrate-incoming', { uri: `tcp:${address}:0` });
    const info = await qmp.execute<MigrateInfo>('query-migrate');
    const port = info['socket-address']?.find((socket) => socket.port)?.port;
    if (!port) throw new HttpError(500, 'QEMU did not report the port of its incoming migration');
    return `tcp:${address}:${port}`;
  }

  private async startMigration(body: Record<string, unknown>) {
    const guest = this.guest(body.name);
    const to = String(body.to ?? '');
    const uri = String(body.uri ?? '');
    const attemptId = String(body.attemptId ?? '');
    if (!/^tcp:[^\s]+:\d+$/.test(uri)) throw new HttpError(400, 'expected "uri": tcp:HOST:PORT');
    if (guest.role !== 'running')
      throw new HttpError(409, `${guest.spec.name} is ${guest.role} here; cannot migrate it`);
    const current = guest.migration;
    if (current && ['setup', 'active', 'cancelling', 'device', 'pre-switchover'].includes(current.status)) {
      if (current.to === to) {
        current.attemptId = attemptId; // a later attempt takes over the running migration
        return { attached: true };
      }
      throw new HttpError(409, `${guest.spec.name} is already migrating to ${current.to}`);
    }
    const qmp = await this.qmpOf(guest);
    const downtimeLimitMs = Math.max(1, Math.round(Number(body.downtimeLimitMs ?? 300)));
    const bandwidth = Math.max(1, Math.round(Number(body.bandwidthBytesPerSec ?? 1024 ** 3)));
    const dirtyBytesPerSec = await measureDirtyRate(qmp);
    // Auto-converge throttles the guest's vCPUs when it dirties memory faster than the link copies
    // it; unknown dirty rate: enable it (it does nothing while the migration converges anyway).
    const autoConverge = dirtyBytesPerSec === null || dirtyBytesPerSec >= bandwidth;
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [{ capability: 'auto-converge', state: autoConverge }],
    });
    await qmp.execute('migrate-set-parameters', { 'downtime-limit': downtimeLimitMs, 'max-bandwidth': bandwidth });
    guest.migration = {
      to,
      uri,
      attemptId,
      startedMs: Date.now(),
      status: 'setup',
      info: {},
      autoConverge,
      dirtyBytesPerSec,
    };
    await qmp.execute('migrate', { uri });
    this.log.info(
      { vm: guest.spec.name, to, uri, downtimeLimitMs, bandwidth, autoConverge, dirtyBytesPerSec },
      'live migration started',
    );
    return { attached: false, autoConverge, dirtyBytesPerSec };
  }

  private migrationStatus(name: string) {
    const guest = this.guests.get(name);
    const migration = guest?.migration ?? this.departed.get(name);
    if (!migration) throw new HttpError(404, `no migration of ${JSON.stringify(name)} on ${this.options.host}`);
    const info = migration.info;
    return {
      status: migration.status,
      to: migration.to,
      attemptId: migration.attemptId,
      bytesCopied: info.ram?.transferred ?? 0,
      bytesRemaining: info.ram?.remaining ?? 0,
      bytesTotal: info.ram?.total ?? 0,
      expectedDowntimeMs: info['expected-downtime'] ?? null,
      downtimeMs: info.downtime ?? null,
      totalMs: info['total-time'] ?? Date.now() - migration.startedMs,
      error: migration.error ?? null,
      autoConverge: migration.autoConverge,
      dirtyBytesPerSec: migration.dirtyBytesPerSec,
    };
  }

  // ---------------------------------------------------------------- checkpoint mode

  /** Stops the guest and saves its whole state into checkpoint.bin (through a local socket: no shell). */
  private async saveCheckpoint(guest: ManagedGuest, attemptId: string) {
    if (guest.role !== 'running' && guest.role !== 'checkpointing')
      throw new HttpError(409, `${guest.spec.name} is ${guest.role} here`);
    const file = path.join(guest.dir, 'checkpoint.bin');
    const qmp = await this.qmpOf(guest);
    const startedMs = Date.now();
    const sink = net.createServer();
    const received = new Promise<void>((resolve, reject) => {
      sink.once('connection', (socket) => {
        pipeline(socket, fs.createWriteStream(file)).then(resolve, reject);
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', () => resolve()));
    const port = (sink.address() as net.AddressInfo).port;
    try {
      guest.role = 'checkpointing';
      this.save(guest);
      await qmp.execute('stop');
      await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'auto-converge', state: false }] });
      await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 4 * 1024 ** 3 });
      await qmp.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
      let info: MigrateInfo = {};
      for (;;) {
        info = await qmp.execute<MigrateInfo>('query-migrate');
        if (info.status === 'completed') break;
        if (info.status === 'failed' || info.status === 'cancelled')
          throw new HttpError(500, `saving the checkpoint failed: ${info['error-desc'] ?? info.status}`);
        await sleep(50);
      }
      await received;
      const bytes = fs.statSync(file).size;
      this.log.info({ vm: guest.spec.name, bytes, attemptId }, 'checkpoint saved');
      return { bytes, saveMs: Date.now() - startedMs };
    } catch (error) {
      // The guest keeps running here.
      await qmp.execute('cont').catch(() => {});
      guest.role = 'running';
      this.save(guest);
      throw error;
    } finally {
      sink.close();
    }
  }

  private async download(body: Record<string, unknown>, response: http.ServerResponse): Promise<void> {
    const guest = this.guest(body.name);
    const file = path.join(guest.dir, 'checkpoint.bin');
    if (guest.role !== 'checkpointing' || !fs.existsSync(file))
      throw new HttpError(409, `no saved checkpoint of ${guest.spec.name} here`);
    response.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(fs.statSync(file).size),
    });
    await pipeline(fs.createReadStream(file), response);
  }

  private async upload(name: string, request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    const guest = this.guest(name);
    if (guest.role !== 'incoming' || guest.incoming?.mode !== 'checkpoint')
      throw new HttpError(409, `${name} is not waiting for a checkpoint here`);
    const file = path.join(guest.dir, 'checkpoint.bin');
    await pipeline(request, fs.createWriteStream(file));
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ bytes: fs.statSync(file).size }));
  }

  /** Feeds the uploaded checkpoint into the waiting QEMU, then resumes the guest here. */
  private async restore(guest: ManagedGuest) {
    if (guest.role !== 'incoming' || guest.incoming?.mode !== 'checkpoint')
      throw new HttpError(409, `${guest.spec.name} is not waiting for a checkpoint here`);
    const file = path.join(guest.dir, 'checkpoint.bin');
    if (!fs.existsSync(file)) throw new HttpError(409, `no checkpoint of ${guest.spec.name} uploaded yet`);
    const uri = await this.listenIncoming(guest, '127.0.0.1');
    const port = Number(uri.split(':').pop());
    const socket = net.createConnection({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    await pipeline(fs.createReadStream(file), socket);
    const qmp = await this.qmpOf(guest);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const status = ((await qmp.execute('query-status')) as { status: string }).status;
      if (status === 'running') break;
      if (status === 'paused' || status === 'postmigrate') {
        await qmp.execute('cont');
        continue;
      }
      const info = await qmp.execute<MigrateInfo>('query-migrate');
      if (info.status === 'failed')
        throw new HttpError(500, `restoring the checkpoint failed: ${info['error-desc'] ?? 'failed'}`);
      if (Date.now() > deadline) throw new HttpError(500, `restoring the checkpoint did not finish (status ${status})`);
      await sleep(50);
    }
    fs.rmSync(file, { force: true });
    this.promote(guest);
    return { running: true };
  }

  // ---------------------------------------------------------------- inventory

  private async inventory(): Promise<VmInventory[]> {
    const result: VmInventory[] = [];
    for (const guest of this.guests.values()) {
      if (guest.role === 'incoming') continue; // not here yet
      const status = await this.status(guest);
      const entry: VmInventory = {
        name: guest.spec.name,
        host: this.options.host,
        vcpus: guest.spec.vcpus,
        memBytes: guest.spec.memMiB * 1024 * 1024,
        memUsedBytes: 0,
        state: runState(status, guest),
        tags: guest.spec.tags,
      };
      if (guest.pid !== null && status !== 'gone') {
        const proc = readProcStats(guest.pid);
        if (proc) {
          entry.instanceId = `${guest.pid}:${proc.startTime}`;
          entry.cpuTimeMs = proc.cpuTimeMs;
          entry.memUsedBytes = proc.rssBytes;
          if (proc.readBytes !== null) entry.diskReadBytes = proc.readBytes;
          if (proc.writeBytes !== null) entry.diskWriteBytes = proc.writeBytes;
        }
        try {
          const balloon = (await (await this.qmpOf(guest)).execute('query-balloon', undefined, 2000)) as {
            actual: number;
          };
          entry.memUsedBytes = balloon.actual;
        } catch {
          /* no balloon device: RSS stands */
        }
      }
      result.push(entry);
    }
    return result;
  }
}

function runState(status: string, guest: ManagedGuest): VmRunState {
  if (guest.migration && ['setup', 'active', 'device'].includes(guest.migration.status)) return 'migrating';
  if (status === 'running') return 'running';
  if (status === 'paused' || status === 'postmigrate' || status === 'suspended' || status === 'prelaunch')
    return 'paused';
  if (status === 'inmigrate' || status === 'finish-migrate') return 'migrating';
  if (status === 'gone' || status === 'shutdown') return 'stopped';
  return 'unknown';
}

interface ProcStats {
  startTime: string;
  cpuTimeMs: number;
  rssBytes: number;
  readBytes: number | null;
  writeBytes: number | null;
}

const CLOCK_TICKS_PER_SEC = 100;
const PAGE_SIZE = 4096;

/** utime+stime and starttime from /proc/<pid>/stat, RSS from statm, bytes from /proc/<pid>/io. */
export function readProcStats(pid: number): ProcStats | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const startTime = fields[19]!;
    const rssPages = Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    let readBytes: number | null = null;
    let writeBytes: number | null = null;
    try {
      const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
      readBytes = Number(io.match(/^read_bytes: (\d+)/m)?.[1] ?? NaN);
      writeBytes = Number(io.match(/^write_bytes: (\d+)/m)?.[1] ?? NaN);
      if (!Number.isFinite(readBytes)) readBytes = null;
      if (!Number.isFinite(writeBytes)) writeBytes = null;
    } catch {
      /* /proc/<pid>/io needs the same user or CAP_SYS_PTRACE */
    }
    return {
      startTime,
      cpuTimeMs: ((utime + stime) * 1000) / CLOCK_TICKS_PER_SEC,
      rssBytes: rssPages * PAGE_SIZE,
      readBytes,
      writeBytes,
    };
  } catch {
    return null;
  }
}

/** True when `pid` is alive and is the QEMU of guest `id` (not a recycled pid). */
export function isOurQemu(pid: number, id: string): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(`lbvm-${id}`)) return false;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function killPidFile(dir: string): void {
  try {
    const pid = Number(fs.readFileSync(path.join(dir, 'qemu.pid'), 'utf8').trim());
    if (pid > 0 && isOurQemu(pid, path.basename(dir))) process.kill(pid, 'SIGKILL');
  } catch {
    /* nothing to kill */
  }
}

/** The guest's dirty rate in bytes/s (QMP calc-dirty-rate over 1 s), or null when QEMU cannot tell. */
async function measureDirtyRate(qmp: QmpClient): Promise<number | null> {
  try {
    // 4096 sampled pages per GiB (QEMU's maximum; the default 512 misses slow dirtiers).
    await qmp.execute('calc-dirty-rate', { 'calc-time': 1, 'sample-pages': 4096 });
    for (let i = 0; i < 40; i++) {
      await sleep(100);
      const reply = (await qmp.execute('query-dirty-rate')) as { status: string; 'dirty-rate'?: number };
      if (reply.status === 'measured') return (reply['dirty-rate'] ?? 0) * 1024 * 1024;
    }
  } catch {
    /* older QEMU or not supported with this accelerator */
  }
  return null;
}

function parseSpec(value: unknown): GuestSpec {
  const parsed = guestSpecSchema.safeParse(value);
  if (!parsed.success)
    throw new HttpError(
      400,
      `invalid guest spec: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`,
    );
  return parsed.data;
}

async function readJson(request: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_JSON_BODY) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'expected a JSON object');
  }
}

function safeRead(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
