/**
 * Live migrations, source side: started with the parameters the caller gives, then followed by the
 * agent itself (`query-migrate` every tick), so a worker that dies does not leave a half-done move;
 * a later attempt re-attaches to it (same destination). Destination side: the port QEMU listens on.
 */
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
import type { AgentHost, ManagedGuest, OutgoingMigration } from './state.ts';

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

/** Starts a live migration of `guest` to a destination waiting at `body.uri`, or re-attaches to it. */
export async function startMigration(host: AgentHost, guest: ManagedGuest, body: Record<string, unknown>) {
  const to = String(body.to ?? '');
  const uri = String(body.uri ?? '');
  const attemptId = String(body.attemptId ?? '');
  if (!/^tcp:[^\s]+:\d+$/.test(uri)) throw new HttpError(400, 'expected "uri": tcp:HOST:PORT');
  if (guest.role !== 'running') throw new HttpError(409, `${guest.spec.name} is ${guest.role} here; cannot migrate it`);
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
    // Local disks are copied first (disks.ts). Never 'setup' meanwhile: QEMU's query-migrate still
    // shows the last migration (for a guest that arrived here, its incoming one: 'completed').
    status: hasLocalDisks(guest.spec) ? DISK_COPY : 'setup',
    info: {},
    autoConverge,
    dirtyBytesPerSec,
  };
  if (guest.migration.status === DISK_COPY) {
    try {
      await startMirrors(guest, guest.migration, body.nbd, bandwidth); // the memory follows (disks.ts)
    } catch (error) {
      guest.migration = undefined;
      await cancelMirrors(guest).catch(() => {});
      throw error;
    }
  } else await qmp.execute('migrate', { uri });
  host.log.info(
    { vm: guest.spec.name, to, uri, downtimeLimitMs, bandwidth, autoConverge, dirtyBytesPerSec },
    'live migration started',
  );
  return { attached: false, autoConverge, dirtyBytesPerSec };
}

/** Follows a migration under way one step: a completed one quits the source copy, a failed one keeps it. */
export async function followMigration(host: AgentHost, guest: ManagedGuest): Promise<void> {
  const migration = migrationInProgress(guest);
  if (!migration) return;
  if (migration.status === DISK_COPY) return followDiskCopy(host, guest, migration);
  const info = await (await qmpOf(guest)).execute<MigrateInfo>('query-migrate');
  migration.info = info;
  migration.status = info.status ?? 'none';
  if (info.status === 'pre-switchover') return switchOver(host, guest, migration);
  if (info.status === 'completed') {
    host.log.info(
      { vm: guest.spec.name, to: migration.to, totalMs: info['total-time'], downtimeMs: info.downtime },
      'live migration completed; quitting the source copy',
    );
    await kill(guest);
    removeLocalImages(host, guest.spec, `copied to ${migration.to}`);
    host.forget(guest, `migrated to ${migration.to}`);
    host.departed.set(guest.spec.name, migration);
  } else if (info.status === 'failed' || info.status === 'cancelled') {
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

/** Destination side: QEMU (started with `-incoming defer`) listens on `address`, any port; its URI. */
export async function listenIncoming(guest: ManagedGuest, address: string): Promise<string> {
  const qmp = await qmpOf(guest);
  await qmp.execute('migrate-incoming', { uri: `tcp:${address}:0` });
  const info = await qmp.execute<MigrateInfo>('query-migrate');
  const port = info['socket-address']?.find((socket) => socket.port)?.port;
  if (!port) throw new HttpError(500, 'QEMU did not report the port of its incoming migration');
  return `tcp:${address}:${port}`;
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
