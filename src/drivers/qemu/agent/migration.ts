/**
 * Live migrations, source side: started with the parameters the caller gives, then followed by the
 * agent itself (`query-migrate` every tick), so a worker that dies does not leave a half-done move;
 * a later attempt re-attaches to it (same destination). Destination side: the port QEMU listens on.
 *
 * Every migration stream a guest's QEMU takes part in (live source, live destination, checkpoint save
 * and restore) is set up by `prepareStream`: the capabilities, the parameters and the stream's
 * security, in one place. A stream that leaves the host is TLS with the agent's certificate
 * (`tls-creds-x509` objects, QEMU's `tls-creds` and `tls-hostname` migration parameters) whenever the
 * agent has one and `tls.migration` is on; a stream through a socket in the guest's own folder
 * (checkpoint mode, whose copy between hosts goes over the agents' HTTPS) is not.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MigrateInfo, QmpClient } from '../qmp.ts';
import {
  cancelMirrors,
  DISK_COPY,
  diskProgress,
  followDiskCopy,
  hasLocalDisks,
  migrationTotalMs,
  removeLocalImages,
  startMirrors,
  switchOver,
} from './disks.ts';
import { HttpError } from './http-error.ts';
import { kill, qmpOf } from './qemu.ts';
import type { AgentHost, AgentOptions, ManagedGuest, OutgoingMigration } from './state.ts';

/**
 * QEMU's migration states (qapi/migration.json, MigrationStatus) in which a migration is still under
 * way: the agent keeps following it, the guest reads as migrating, and it can be neither stopped nor
 * migrated elsewhere. The others are `none`, and the ends: `completed`, `failed`, `cancelled`.
 */
export const MIGRATION_IN_PROGRESS: ReadonlySet<string> = new Set([
  DISK_COPY, // ours: local disks are mirrored first (disks.ts)
  'setup',
  'active',
  'cancelling',
  'pre-switchover',
  'device',
  'wait-unplug',
  'postcopy-active',
]);

/** The guest's outgoing migration while it is under way, else null. */
export function migrationInProgress(guest: ManagedGuest): OutgoingMigration | null {
  return guest.migration && MIGRATION_IN_PROGRESS.has(guest.migration.status) ? guest.migration : null;
}

/** What a migration stream is, for `prepareStream`. */
export type Stream =
  /** Live, source side: to `address` (the destination's, which its certificate must name). */
  | { kind: 'outgoing'; address: string; downtimeLimitMs: number; bandwidthBytesPerSec: number; autoConverge: boolean }
  /** Live, destination side. */
  | { kind: 'incoming' }
  /** Checkpoint save or restore: through a socket in the guest's folder, as fast as it goes. */
  | { kind: 'local' };

/** Whether this agent's migration streams between hosts are TLS. */
export function migrationTls(host: AgentHost): boolean {
  return Boolean(host.options.tls?.migration);
}

/**
 * Sets the guest's QEMU up for one migration stream: capabilities, parameters and TLS. QEMU keeps
 * migration parameters for the life of the process, and a guest that arrived over TLS (server
 * credentials) may leave again (client credentials) or be checkpointed (none), so every stream sets
 * all of them afresh. Returns whether the stream is TLS.
 */
export async function prepareStream(host: AgentHost, qmp: QmpClient, stream: Stream): Promise<boolean> {
  const tls = stream.kind !== 'local' && migrationTls(host);
  const credentials = tls ? await tlsCredentials(host, qmp, stream.kind === 'outgoing' ? 'client' : 'server') : '';
  const capabilities = [{ capability: 'auto-converge', state: stream.kind === 'outgoing' && stream.autoConverge }];
  await qmp.execute('migrate-set-capabilities', { capabilities });
  const parameters: Record<string, unknown> = {
    'tls-creds': credentials,
    // The destination's certificate must name the address the source connects to.
    'tls-hostname': tls && stream.kind === 'outgoing' ? stream.address : '',
  };
  if (stream.kind === 'outgoing') {
    parameters['downtime-limit'] = stream.downtimeLimitMs;
    parameters['max-bandwidth'] = stream.bandwidthBytesPerSec;
  } else if (stream.kind === 'local') {
    parameters['max-bandwidth'] = LOCAL_BANDWIDTH;
  }
  await qmp.execute('migrate-set-parameters', parameters);
  return tls;
}

/** A local stream is a copy in memory and to disk: no cap (QEMU's default is 128 MiB/s). */
const LOCAL_BANDWIDTH = 64 * 1024 ** 3;

/**
 * The id of a `tls-creds-x509` object holding the agent's certificates as QEMU wants them
 * (`tls/` in the agent's state folder: ca-cert.pem, and the agent's certificate and key as
 * server-*.pem and client-*.pem), added to the guest's QEMU now. An older one of the same id is
 * replaced, so certificates renewed on disk (and copied there at the agent's start) are used.
 * `verify-peer`: the destination accepts only a source with a certificate signed by the cluster CA.
 * Kept apart from `prepareStream` for other streams that will use the same credentials (NBD).
 */
export async function tlsCredentials(host: AgentHost, qmp: QmpClient, endpoint: 'client' | 'server'): Promise<string> {
  if (!host.options.tls) throw new HttpError(500, 'this agent has no TLS certificates (tls.ca, tls.cert, tls.key)');
  const dir = qemuTlsDir(host.options);
  const id = tlsCredentialsId(endpoint);
  await qmp.execute('object-del', { id }).catch(() => {});
  await qmp.execute('object-add', { 'qom-type': 'tls-creds-x509', id, dir, endpoint, 'verify-peer': true });
  return id;
}

/** The id of the credentials object `tlsCredentials` makes (the NBD disk streams use the migration's). */
export function tlsCredentialsId(endpoint: 'client' | 'server'): string {
  return `lbvm-tls-${endpoint}`;
}

/** The folder of the agent's certificates as QEMU reads them. */
export function qemuTlsDir(options: Pick<AgentOptions, 'stateDir'>): string {
  return path.resolve(options.stateDir, 'tls');
}

/**
 * Copies the agent's TLS files into `dir` under the names QEMU's `tls-creds-x509` reads (the key
 * twice, mode 0600, in the agent's own 0700 state folder). Done at the agent's start.
 */
export function writeQemuTlsDir(dir: string, files: { ca: string; cert: string; key: string }): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const copy = (from: string, to: string, mode: number) => {
    fs.writeFileSync(path.join(dir, `${to}.tmp`), fs.readFileSync(from), { mode });
    fs.renameSync(path.join(dir, `${to}.tmp`), path.join(dir, to));
  };
  copy(files.ca, 'ca-cert.pem', 0o644);
  for (const role of ['server', 'client']) {
    copy(files.cert, `${role}-cert.pem`, 0o644);
    copy(files.key, `${role}-key.pem`, 0o600);
  }
}

/** Starts a live migration of `guest` to a destination waiting at `body.uri`, or re-attaches to it. */
export async function startMigration(host: AgentHost, guest: ManagedGuest, body: Record<string, unknown>) {
  const to = String(body.to ?? '');
  const uri = String(body.uri ?? '');
  const attemptId = String(body.attemptId ?? '');
  const address = /^tcp:(.+):\d+$/.exec(uri)?.[1]?.replace(/^\[(.*)\]$/, '$1');
  if (!address || /\s/.test(uri)) throw new HttpError(400, 'expected "uri": tcp:HOST:PORT');
  if (guest.role !== 'running') throw new HttpError(409, `${guest.spec.name} is ${guest.role} here; cannot migrate it`);
  // Both ends must agree, or the handshake fails with an unhelpful QEMU error (or memory goes in the clear).
  const destinationTls = body.tls === true;
  if (destinationTls !== migrationTls(host))
    throw new HttpError(
      409,
      `the destination ${to} ${destinationTls ? 'expects' : 'does not accept'} a TLS migration stream and ` +
        `${host.options.host} ${migrationTls(host) ? 'sends' : 'does not send'} one: give every agent the same ` +
        'tls.ca, a certificate (tls.cert, tls.key) and the same tls.migration',
    );
  const current = migrationInProgress(guest);
  if (current) {
    if (current.to === to) {
      current.attemptId = attemptId; // a later attempt takes over the running migration
      return { attached: true };
    }
    throw new HttpError(409, `${guest.spec.name} is already migrating to ${current.to}`);
  }
  const qmp = await qmpOf(guest);
  const downtimeLimitMs = Math.max(1, Math.round(Number(body.downtimeLimitMs ?? 300)));
  const bandwidth = Math.max(1, Math.round(Number(body.bandwidthBytesPerSec ?? 1024 ** 3)));
  const dirtyBytesPerSec = await measureDirtyRate(qmp);
  // Auto-converge, always: QEMU throttles the guest's vCPUs only once it dirtied more than half of what
  // was sent in two second-long periods (its own count of dirty pages), so a migration that converges
  // is left alone. Deciding from the sampled dirty rate instead left it off for a guest whose rate the
  // sample under-read, and that migration never ended (bench migrate --netns, 60%/s on 1 Gbit/s). The
  // rate is still measured: the caller's report of what it moved.
  const autoConverge = true;
  const tls = await prepareStream(host, qmp, {
    kind: 'outgoing',
    address,
    downtimeLimitMs,
    bandwidthBytesPerSec: bandwidth,
    autoConverge,
  });
  guest.migration = {
    to,
    uri,
    attemptId,
    startedMs: Date.now(),
    // Local disks are copied first (disks.ts). Never 'setup' meanwhile: QEMU's query-migrate still
    // shows the last migration (for a guest that arrived here, its incoming one: 'completed').
    status: hasLocalDisks(guest.spec) ? DISK_COPY : 'setup',
    info: {},
    autoConverge,
    dirtyBytesPerSec,
  };
  if (guest.migration.status === DISK_COPY) {
    try {
      // The memory follows (disks.ts); the disks go over TLS when the memory does, with its credentials.
      await startMirrors(guest, guest.migration, body.nbd, bandwidth, tls ? tlsCredentialsId('client') : null);
    } catch (error) {
      guest.migration = undefined;
      await cancelMirrors(guest).catch(() => {});
      throw error;
    }
  } else await qmp.execute('migrate', { uri });
  host.log.info(
    { vm: guest.spec.name, to, uri, downtimeLimitMs, bandwidth, autoConverge, dirtyBytesPerSec, tls },
    'live migration started',
  );
  return { attached: false, autoConverge, dirtyBytesPerSec, tls };
}

/** Follows a migration under way one step: a completed one quits the source copy, a failed one keeps it. */
export async function followMigration(host: AgentHost, guest: ManagedGuest): Promise<void> {
  const migration = migrationInProgress(guest);
  if (!migration) return;
  if (migration.status === DISK_COPY) return followDiskCopy(host, guest, migration);
  const info = await (await qmpOf(guest)).execute<MigrateInfo>('query-migrate');
  migration.info = info;
  if (info.status === 'completed') {
    host.log.info(
      { vm: guest.spec.name, to: migration.to, totalMs: info['total-time'], downtimeMs: info.downtime },
      'live migration completed; quitting the source copy',
    );
    // Said 'completed' only once the source copy is gone: the driver reports the move done on that
    // word, and a caller then finds no QEMU of the guest here (quitting it takes up to seconds, and a
    // status asked meanwhile answers with the status before, still under way).
    await kill(guest);
    removeLocalImages(host, guest.spec, `copied to ${migration.to}`);
    host.forget(guest, `migrated to ${migration.to}`);
    host.departed.set(guest.spec.name, migration);
    migration.status = 'completed';
    return;
  }
  migration.status = info.status ?? 'none';
  if (info.status === 'pre-switchover') return switchOver(host, guest, migration);
  if (info.status === 'failed' || info.status === 'cancelled') {
    migration.error ??= info['error-desc'] ?? info.status;
    await cancelMirrors(guest);
    host.log.warn(
      { vm: guest.spec.name, to: migration.to, error: migration.error },
      'live migration ended without moving the guest; it keeps running here',
    );
  }
}

/** A migration's progress and outcome, also for a guest that has left (`departed`). */
export function migrationStatus(host: AgentHost, name: string) {
  const migration = host.guests.get(name)?.migration ?? host.departed.get(name);
  if (!migration) throw new HttpError(404, `no migration of ${JSON.stringify(name)} on ${host.options.host}`);
  const info = migration.info;
  const disk = diskProgress(migration);
  return {
    status: migration.status,
    /** The source's guest: `running`, `stopped` (its QEMU gone), ..., or `departed` (it left). */
    sourceRole: host.guests.get(name)?.role ?? 'departed',
    to: migration.to,
    attemptId: migration.attemptId,
    bytesCopied: (info.ram?.transferred ?? 0) + disk.copied,
    bytesRemaining: (info.ram?.remaining ?? 0) + disk.total - disk.copied,
    bytesTotal: (info.ram?.total ?? 0) + disk.total,
    diskBytesCopied: disk.copied,
    diskBytesTotal: disk.total,
    expectedDowntimeMs: info['expected-downtime'] ?? null,
    downtimeMs: info.downtime ?? null,
    totalMs: migrationTotalMs(migration, info['total-time']),
    error: migration.error ?? null,
    autoConverge: migration.autoConverge,
    dirtyBytesPerSec: migration.dirtyBytesPerSec,
  };
}

/**
 * Destination side: QEMU (started with `-incoming defer`) listens on the agent's migration address,
 * any port, set up for the stream (TLS when the agent has it). Its URI, and whether it is TLS.
 */
export async function listenIncoming(host: AgentHost, guest: ManagedGuest): Promise<{ uri: string; tls: boolean }> {
  const qmp = await qmpOf(guest);
  const tls = await prepareStream(host, qmp, { kind: 'incoming' });
  const address = host.options.migrationAddress;
  const bracketed = address.includes(':') ? `[${address}]` : address;
  await qmp.execute('migrate-incoming', { uri: `tcp:${bracketed}:0` });
  const info = await qmp.execute<MigrateInfo>('query-migrate');
  const port = info['socket-address']?.find((socket) => socket.port)?.port;
  if (!port) throw new HttpError(500, 'QEMU did not report the port of its incoming migration');
  return { uri: `tcp:${bracketed}:${port}`, tls };
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
