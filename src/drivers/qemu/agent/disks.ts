/**
 * Guests' disks: their image files on this host, and the disk half of a live migration.
 *
 * Shared disks (one path every host sees) need nothing here: `migrate` copies memory, and QEMU hands
 * the image over at switch-over (the source flushes and lets go, the destination takes it).
 *
 * Local disks are copied alongside the memory, the way libvirt's `--copy-storage-all` does it:
 * 1. destination: creates an empty image of the same format and size, starts QEMU with
 *    `-incoming defer` on it, and exports it writable over NBD (`nbd-server-start`, `block-export-add`);
 * 2. source: opens the export as a block node (`blockdev-add`, driver nbd) and mirrors the disk into
 *    it (`blockdev-mirror`, sync full; new guest writes are mirrored too);
 * 3. once every mirror is `ready` (in sync), the memory migration starts, with `pause-before-switchover`:
 * 4. at `pre-switchover` the guest is paused and its I/O drained; each mirror is then ended with
 *    `block-job-cancel` (which for a ready mirror finishes with the target in sync: QEMU reports
 *    BLOCK_JOB_COMPLETED, not CANCELLED), and only then `migrate-continue` lets the guest resume on
 *    the destination. A mirror that is not ready there fails the migration: the guest stays here.
 * Cancelled or failed before that: the mirrors are cancelled, the source keeps its disk and runs on,
 * and the destination agent removes the half-written images with its half-started guest.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, runFile } from '../../../util/processes.ts';
import { diskFile, diskNode, type GuestSpec } from '../guest.ts';
import type { QmpClient } from '../qmp.ts';
import { HttpError } from './http-error.ts';
import { qmpOf } from './qemu.ts';
import type { AgentHost, ManagedGuest, OutgoingMigration } from './state.ts';

/** Our own migration status while local disks are copied, before QEMU's memory migration starts. */
export const DISK_COPY = 'disk-copy';

/** A local disk's size, as the source tells the destination. */
export interface DiskSize {
  index: number;
  virtualBytes: number;
}

/** Where a destination's NBD server listens for the source's mirrors. */
export interface NbdTarget {
  host: string;
  port: number;
}

/** One mirror of an outgoing migration, as `query-block-jobs` last showed it. */
export interface MirrorState {
  index: number;
  jobId: string;
  bytesCopied: number;
  bytesTotal: number;
  ready: boolean;
}

interface BlockJob {
  device: string;
  len: number;
  offset: number;
  ready: boolean;
  status?: string;
}

function localDisks(spec: GuestSpec): number[] {
  return spec.disks.flatMap((disk, index) => (disk.storage === 'local' ? [index] : []));
}

export function hasLocalDisks(spec: GuestSpec): boolean {
  return localDisks(spec).length > 0;
}

const mirrorJob = (index: number) => `lbvm-mirror${index}`;
const mirrorTarget = (index: number) => `lbvm-mirror${index}-target`;
const exportId = (index: number) => `lbvm-export${index}`;

/** Before a guest starts here: every disk image must exist (QEMU would say so less clearly). */
export function checkImagesExist(host: AgentHost, spec: GuestSpec): void {
  spec.disks.forEach((disk, index) => {
    const file = diskFile(disk, host.imagesDir);
    if (!fs.existsSync(file))
      throw new HttpError(
        400,
        `disks.${index}.path: ${JSON.stringify(disk.path)}: no image at ${file}` +
          (disk.storage === 'local' ? " (a local disk's path is relative to the agent's images folder)" : ''),
      );
  });
}

/** The virtual size of each local disk of a running guest (QMP `query-named-block-nodes`). */
export async function localDiskSizes(guest: ManagedGuest): Promise<DiskSize[]> {
  const indexes = localDisks(guest.spec);
  if (indexes.length === 0) return [];
  const nodes = await (
    await qmpOf(guest)
  ).execute<{ 'node-name': string; image: { 'virtual-size': number } }[]>('query-named-block-nodes', { flat: true });
  return indexes.map((index) => {
    const node = nodes.find((candidate) => candidate['node-name'] === diskNode(index));
    if (!node) throw new HttpError(500, `QEMU has no block node ${diskNode(index)} for disk ${index}`);
    return { index, virtualBytes: node.image['virtual-size'] };
  });
}

/**
 * Destination, before its QEMU starts: an empty image for each local disk, of the size the source
 * gave. An image already there is someone's data: refused, never overwritten.
 */
export async function createIncomingImages(host: AgentHost, spec: GuestSpec, sizes: unknown): Promise<void> {
  const indexes = localDisks(spec);
  if (indexes.length === 0) return;
  const given = Array.isArray(sizes) ? (sizes as Partial<DiskSize>[]) : [];
  const created: string[] = [];
  try {
    for (const index of indexes) {
      const disk = spec.disks[index]!;
      const size = given.find((entry) => entry.index === index)?.virtualBytes;
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0)
        throw new HttpError(400, `expected "disks": the virtual size of local disk ${index} (${disk.path})`);
      const file = diskFile(disk, host.imagesDir);
      if (fs.existsSync(file))
        throw new HttpError(
          409,
          `local disk ${index} of ${JSON.stringify(spec.name)}: ${file} already exists on ${host.options.host}; not overwritten`,
        );
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      created.push(file);
      await runFile('qemu-img', ['create', '-q', '-f', disk.format, file, String(size)], { timeoutMs: 30_000 });
    }
  } catch (error) {
    for (const file of created) fs.rmSync(file, { force: true });
    if (error instanceof HttpError) throw error;
    throw new HttpError(500, `cannot create the destination's disk image: ${(error as Error).message}`);
  }
}

/** Removes the guest's local disk images on this host (a half copy, or the source's after the move). */
export function removeLocalImages(host: AgentHost, spec: GuestSpec, why: string): void {
  for (const index of localDisks(spec)) {
    const file = diskFile(spec.disks[index]!, host.imagesDir);
    try {
      fs.rmSync(file, { force: true });
      host.log.info({ vm: spec.name, file, why }, 'local disk image removed');
    } catch (error) {
      host.log.warn({ vm: spec.name, file, error: (error as Error).message }, 'could not remove a local disk image');
    }
  }
}

/**
 * Destination: exports each local disk of the incoming guest over NBD; where the source reaches it.
 * `tlsCreds`: the id of the incoming migration's server credentials when its stream is TLS; the NBD
 * server then takes only TLS clients with a certificate of the cluster CA (verify-peer).
 */
export async function exportIncomingDisks(
  host: AgentHost,
  guest: ManagedGuest,
  tlsCreds: string | null,
): Promise<NbdTarget | null> {
  const indexes = localDisks(guest.spec);
  if (indexes.length === 0) return null;
  const qmp = await qmpOf(guest);
  const address = host.options.migrationAddress;
  let port = 0;
  // A free port, then QEMU binds it: another process may take it in between; try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await qmp.execute('nbd-server-start', {
        addr: { type: 'inet', data: { host: address, port: String(port) } },
        ...(tlsCreds ? { 'tls-creds': tlsCreds } : {}),
      });
      break;
    } catch (error) {
      if (attempt >= 5) throw new HttpError(500, `cannot start the NBD server: ${(error as Error).message}`);
    }
  }
  for (const index of indexes) {
    await qmp.execute('block-export-add', {
      type: 'nbd',
      id: exportId(index),
      'node-name': diskNode(index),
      name: diskNode(index),
      writable: true,
    });
  }
  return { host: address, port };
}

/** Destination, once the guest runs here: the NBD server is no longer needed. */
export async function stopIncomingExports(guest: ManagedGuest): Promise<void> {
  if (!hasLocalDisks(guest.spec)) return;
  try {
    await (await qmpOf(guest)).execute('nbd-server-stop');
  } catch {
    /* already stopped (or never started: an adopted guest) */
  }
}

/**
 * Source: starts mirroring each local disk into the destination's NBD export; over TLS with the
 * client credentials `tlsCreds` (the migration's), checking the destination's certificate names the
 * address it is reached at.
 */
export async function startMirrors(
  guest: ManagedGuest,
  migration: OutgoingMigration,
  nbd: unknown,
  bytesPerSec: number,
  tlsCreds: string | null,
): Promise<void> {
  const indexes = localDisks(guest.spec);
  const target = nbd as Partial<NbdTarget> | undefined;
  if (!target || typeof target.host !== 'string' || !Number.isInteger(target.port))
    throw new HttpError(400, `${guest.spec.name} has local disks: expected "nbd": {host, port} of the destination`);
  const qmp = await qmpOf(guest);
  await cancelMirrors(guest); // leftovers of an earlier attempt
  for (const index of indexes) {
    await qmp.execute('blockdev-add', {
      driver: 'nbd',
      'node-name': mirrorTarget(index),
      server: { type: 'inet', host: target.host, port: String(target.port) },
      export: diskNode(index),
      ...(tlsCreds ? { 'tls-creds': tlsCreds, 'tls-hostname': target.host } : {}),
    });
    await qmp.execute('blockdev-mirror', {
      'job-id': mirrorJob(index),
      device: diskNode(index),
      target: mirrorTarget(index),
      sync: 'full',
      speed: bytesPerSec, // the migration's bandwidth cap holds for disks too
    });
  }
  migration.mirrorsStarted = true;
}

/** The mirrors' progress (`query-block-jobs`); a mirror that vanished before switch-over failed. */
export async function mirrorStates(guest: ManagedGuest): Promise<MirrorState[]> {
  const jobs = await (await qmpOf(guest)).execute<BlockJob[]>('query-block-jobs');
  return localDisks(guest.spec).map((index) => {
    const job = jobs.find((candidate) => candidate.device === mirrorJob(index));
    if (!job) throw new Error(`the mirror of disk ${index} stopped (the destination's NBD export went away?)`);
    return { index, jobId: mirrorJob(index), bytesCopied: job.offset, bytesTotal: job.len, ready: job.ready };
  });
}

/**
 * Source, while disks are copied (status DISK_COPY): follows the mirrors and starts the memory
 * migration once all are in sync. A mirror that fails ends the migration as failed.
 */
export async function followDiskCopy(host: AgentHost, guest: ManagedGuest, migration: OutgoingMigration) {
  if (!migration.mirrorsStarted) return; // startMirrors is still at it
  try {
    migration.mirrors = await mirrorStates(guest);
  } catch (error) {
    migration.status = 'failed';
    migration.error = (error as Error).message;
    await cancelMirrors(guest);
    host.log.warn({ vm: guest.spec.name, error: migration.error }, 'disk copy failed; the guest keeps running here');
    return;
  }
  if (!migration.mirrors.every((mirror) => mirror.ready)) return;
  const qmp = await qmpOf(guest);
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'pause-before-switchover', state: true }],
  });
  migration.status = 'setup';
  migration.memoryStartedMs = Date.now();
  await qmp.execute('migrate', { uri: migration.uri });
  host.log.info({ vm: guest.spec.name, to: migration.to }, 'disks in sync; memory migration started');
  void watchSwitchOver(host, guest, migration);
}

/**
 * The guest waits paused at `pre-switchover` until switchOver runs: rather than leave that to the
 * agent's tick (every 300 ms, all guests), this polls every 20 ms while the memory is copied.
 * The tick's own check stays as a fallback; `switching` keeps the two from both running it.
 */
async function watchSwitchOver(host: AgentHost, guest: ManagedGuest, migration: OutgoingMigration): Promise<void> {
  try {
    const qmp = await qmpOf(guest);
    while (guest.migration === migration && !migration.switching) {
      const status = (await qmp.execute<{ status?: string }>('query-migrate')).status;
      if (status === 'pre-switchover') return await switchOver(host, guest, migration);
      if (status !== 'setup' && status !== 'active') return;
      await sleep(20);
    }
  } catch (error) {
    host.log.debug({ vm: guest.spec.name, error: (error as Error).message }, 'switch-over watch ended');
  }
}

/**
 * Source, at `pre-switchover` (guest paused, I/O drained): ends every mirror in sync, then lets the
 * migration finish. A mirror not in sync cancels the migration: the guest resumes here.
 */
export async function switchOver(host: AgentHost, guest: ManagedGuest, migration: OutgoingMigration): Promise<void> {
  if (migration.switching) return;
  migration.switching = true;
  const qmp = await qmpOf(guest);
  let states: MirrorState[] = [];
  try {
    states = await mirrorStates(guest);
  } catch (error) {
    migration.error = (error as Error).message;
  }
  if (migration.error || !states.every((mirror) => mirror.ready)) {
    migration.error ??= 'a disk mirror fell out of sync at switch-over';
    host.log.warn({ vm: guest.spec.name, error: migration.error }, 'switch-over refused; cancelling the migration');
    await qmp.execute('migrate_cancel');
    return;
  }
  migration.mirrors = states;
  for (const mirror of states) await qmp.execute('block-job-cancel', { device: mirror.jobId });
  await waitJobsGone(
    qmp,
    states.map((mirror) => mirror.jobId),
  );
  for (const mirror of states) await qmp.execute('blockdev-del', { 'node-name': mirrorTarget(mirror.index) });
  await qmp.execute('migrate-continue', { state: 'pre-switchover' });
}

/** Source: stops every mirror at once (cancel, failure); the guest's own disks are untouched. */
export async function cancelMirrors(guest: ManagedGuest): Promise<void> {
  const indexes = localDisks(guest.spec);
  if (indexes.length === 0) return;
  const qmp = await qmpOf(guest);
  const jobs = await qmp.execute<BlockJob[]>('query-block-jobs');
  const ours = jobs.filter((job) => indexes.some((index) => job.device === mirrorJob(index))).map((job) => job.device);
  for (const jobId of ours) await qmp.execute('block-job-cancel', { device: jobId, force: true }).catch(() => {});
  await waitJobsGone(qmp, ours);
  for (const index of indexes)
    await qmp.execute('blockdev-del', { 'node-name': mirrorTarget(index) }).catch(() => {
      /* not added */
    });
  await qmp
    .execute('migrate-set-capabilities', { capabilities: [{ capability: 'pause-before-switchover', state: false }] })
    .catch(() => {});
}

async function waitJobsGone(qmp: QmpClient, jobIds: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (jobIds.length) {
    const jobs = await qmp.execute<BlockJob[]>('query-block-jobs');
    if (!jobs.some((job) => jobIds.includes(job.device))) return;
    if (Date.now() > deadline) throw new Error(`block jobs ${jobIds.join(', ')} did not end within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * A migration's time so far or in all: QEMU's `total-time` counts from `migrate`, which for local
 * disks starts only once they are copied; the copy before it counts too.
 */
export function migrationTotalMs(migration: OutgoingMigration, memoryTotalMs: number | undefined): number {
  if (memoryTotalMs === undefined) return Date.now() - migration.startedMs;
  return memoryTotalMs + (migration.memoryStartedMs ? migration.memoryStartedMs - migration.startedMs : 0);
}

/** Disk bytes of a migration's mirrors: copied and still to copy. */
export function diskProgress(migration: OutgoingMigration): { copied: number; total: number } {
  const mirrors = migration.mirrors ?? [];
  return {
    copied: mirrors.reduce((sum, mirror) => sum + mirror.bytesCopied, 0),
    total: mirrors.reduce((sum, mirror) => sum + mirror.bytesTotal, 0),
  };
}
