/**
 * What a QEMU guest is (its spec, stored by the agent) and the QEMU argv that runs it. Always an
 * argv array for spawn(), never a shell string. The VM's name never reaches QEMU's command line:
 * QEMU is told an id derived from it (`lbvm-<hash>`), so a name like `x; rm -rf /` or one with
 * commas (QEMU's option separator) is only ever data in LBVM's own files and messages.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';

/** QEMU's cache modes (`-drive cache=`); see CACHE_OPTIONS for what each sets. */
export const DISK_CACHE_MODES = ['none', 'directsync', 'writeback', 'writethrough', 'unsafe'] as const;
export type DiskCacheMode = (typeof DISK_CACHE_MODES)[number];

/**
 * Cache modes safe for live migration on shared storage: both bypass the host's page cache
 * (O_DIRECT), so the destination never reads a stale cached copy of what the source wrote.
 */
export const SHARED_STORAGE_CACHE_MODES: readonly DiskCacheMode[] = ['none', 'directsync'];

export const diskSpecSchema = z
  .object({
    /**
     * `shared`: an absolute path every host sees (NFS, Ceph, the tests' shared folder); a live
     * migration copies only memory. `local`: a path relative to each agent's images folder; a live
     * migration copies the disk to the destination (NBD + block mirror) alongside the memory.
     */
    storage: z.enum(['shared', 'local']).default('local'),
    path: z.string().min(1).max(4096),
    format: z.enum(['raw', 'qcow2']).default('raw'),
    cache: z.enum(DISK_CACHE_MODES).default('none'),
  })
  .strict()
  .superRefine((disk, context) => {
    const problem = (field: 'path' | 'cache', message: string) =>
      context.addIssue({ code: z.ZodIssueCode.custom, path: [field], message });
    if (disk.path.includes('\0')) problem('path', 'must not contain a NUL character');
    if (disk.storage === 'shared') {
      if (!path.isAbsolute(disk.path))
        problem('path', `a shared disk needs an absolute path, got ${JSON.stringify(disk.path)}`);
      if (!SHARED_STORAGE_CACHE_MODES.includes(disk.cache))
        problem(
          'cache',
          `${JSON.stringify(disk.cache)} on shared storage: live migration needs cache: none (or directsync), ` +
            'which bypasses the host page cache so the destination never reads stale data',
        );
    } else if (path.isAbsolute(disk.path) || disk.path.split(/[\\/]/).includes('..')) {
      problem(
        'path',
        `a local disk's path is relative to the agent's images folder, without "..", got ${JSON.stringify(disk.path)}`,
      );
    }
  });

export type DiskSpec = z.output<typeof diskSpecSchema>;

export const guestSpecSchema = z
  .object({
    name: z.string().min(1).max(16_384),
    vcpus: z.number().int().min(1).max(64).default(1),
    memMiB: z.number().int().min(16).max(1_048_576).default(128),
    /** Boot a kernel directly (the test guest); absolute paths on the agent's host. */
    kernel: z.string().min(1),
    initrd: z.string().min(1).optional(),
    append: z.string().default(''),
    /** Free-form tags reported in the inventory (rules read them). */
    tags: z.array(z.string()).default([]),
    /** virtio-blk disks, in order (the first is /dev/vda in the guest). */
    disks: z.array(diskSpecSchema).max(8).default([]),
  })
  .strict();

export type GuestSpec = z.output<typeof guestSpecSchema>;
export type GuestSpecInput = z.input<typeof guestSpecSchema>;

/** The test guest's knobs (deploy/guest/init reads them from the kernel command line). */
export interface TestGuestLoad {
  /** Share of one vCPU the guest's init burns, 0..100. */
  cpuPercent?: number;
  /** Share of guest RAM held in a tmpfs file, 0..100. */
  memPercent?: number;
  /** Share of guest RAM rewritten every second, 0..100. */
  dirtyPercent?: number;
  /**
   * What the held memory holds: `random` (the default: no page is a zero page), `zero` (QEMU sends
   * zero pages as a flag, so they cost a migration almost nothing), or `marker`: `marker`'s text over
   * and over, to look for on the wire.
   */
  fill?: 'random' | 'zero' | 'marker';
  /** The text of `fill: 'marker'`: 8 to 64 letters, digits or '-'. */
  marker?: string;
  /** false: the guest only verifies its disk's sequence at boot and writes none (an idle disk). */
  diskWrite?: boolean;
}

/** The kernel command line that tells the test guest's init what to burn and dirty. */
export function guestKernelArgs(load: TestGuestLoad): string {
  const percent = (value: number | undefined) => String(Math.max(0, Math.min(100, Math.round(value ?? 0))));
  const args = [
    'console=ttyS0 quiet panic=-1',
    `lbvm.cpu=${percent(load.cpuPercent)} lbvm.mem=${percent(load.memPercent)} lbvm.dirty=${percent(load.dirtyPercent)}`,
  ];
  if (load.diskWrite === false) args.push('lbvm.diskwrite=0');
  if (load.fill) args.push(`lbvm.fill=${load.fill}`);
  if (load.marker !== undefined) {
    if (!/^[A-Za-z0-9-]{8,64}$/.test(load.marker))
      throw new Error(`marker ${JSON.stringify(load.marker)}: expected 8 to 64 letters, digits or '-'`);
    args.push(`lbvm.marker=${load.marker}`);
  }
  return args.join(' ');
}

/** A stable id for a VM name, safe in file names and on QEMU's command line. */
export function guestId(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 20);
}

/** QEMU's option syntax treats ',' as a separator; a literal comma is written ',,'. */
export function qemuOptionValue(text: string): string {
  return text.replace(/,/g, ',,');
}

export interface QemuRuntime {
  qmpSocket: string;
  serialLog: string;
  pidFile: string;
  accel: 'tcg' | 'kvm';
  /** Start waiting for an incoming migration (`-incoming defer`, then `migrate-incoming`). */
  incoming?: boolean;
  /** The folder local disks' paths are relative to (the agent's images folder). */
  imagesDir?: string;
}

/**
 * What each cache mode sets (QEMU's documentation of `-drive cache=`): `direct` opens the image with
 * O_DIRECT, `noFlush` ignores the guest's flushes, `writeCache` tells the guest the device has a
 * volatile write cache (so it sends flushes).
 */
const CACHE_OPTIONS: Record<DiskCacheMode, { direct: boolean; noFlush: boolean; writeCache: boolean }> = {
  none: { direct: true, noFlush: false, writeCache: true },
  directsync: { direct: true, noFlush: false, writeCache: false },
  writeback: { direct: false, noFlush: false, writeCache: true },
  writethrough: { direct: false, noFlush: false, writeCache: false },
  unsafe: { direct: false, noFlush: true, writeCache: true },
};

/** The file of a guest's disk on this host: shared disks as given, local ones in the images folder. */
export function diskFile(disk: DiskSpec, imagesDir: string | undefined): string {
  if (disk.storage === 'shared') return disk.path;
  if (!imagesDir) throw new Error(`local disk ${JSON.stringify(disk.path)} needs the agent's images folder`);
  return path.join(imagesDir, disk.path);
}

/** QEMU's node name of the guest's disk `index` (its format layer): what mirrors and NBD exports name. */
export function diskNode(index: number): string {
  return `lbvm-disk${index}`;
}

function diskArgv(disk: DiskSpec, index: number, imagesDir: string | undefined): string[] {
  const cache = CACHE_OPTIONS[disk.cache];
  const file = `${diskNode(index)}-file`;
  return [
    '-blockdev',
    `driver=file,node-name=${file},filename=${qemuOptionValue(diskFile(disk, imagesDir))},` +
      `cache.direct=${cache.direct ? 'on' : 'off'},cache.no-flush=${cache.noFlush ? 'on' : 'off'}`,
    '-blockdev',
    `driver=${disk.format},node-name=${diskNode(index)},file=${file}`,
    '-device',
    `virtio-blk-pci,drive=${diskNode(index)},id=lbvm-vd${index},write-cache=${cache.writeCache ? 'on' : 'off'}`,
  ];
}

/**
 * Under TCG the guest's RAM is made 8 KiB short of its size, so it is not a whole number of 256 KiB
 * (64 pages: one word of QEMU's dirty bitmap). QEMU before 9.0 (Debian 12 ships 7.2) syncs the
 * migration's dirty bitmap of a RAM block of whole words by a fast path that forgets to re-arm the
 * TCG TLB's dirty tracking (fixed upstream by commit 03bfc2188f, "physmem: Fix migration dirty
 * bitmap coherency with TCG memory access"): stores through the TLB after the first sync are then
 * never marked dirty, never resent, and a guest that writes while it migrates arrives with stale
 * pages (seen: kernel oopses and panics right after arrival, a dirtying process killed, QEMU's dirty
 * rate reading 0 after a few moves). A block of another length takes QEMU's page-by-page path,
 * which re-arms the TLB. QEMU rounds the size to 8 KiB; KVM tracks dirty pages itself.
 */
export const TCG_RAM_SHORTFALL_KIB = 8;

export function qemuArgv(spec: GuestSpec, runtime: QemuRuntime): string[] {
  const argv = [
    '-name',
    `lbvm-${guestId(spec.name)}`,
    // Multi-threaded TCG (QEMU 7.2's default) crashed the migrated test guest in about one live
    // migration in ten while it dirtied memory fast (guest kernel panic right after arrival); with
    // single-threaded TCG we saw 25 of 25 succeed. A 1-vCPU guest loses nothing by it.
    '-accel',
    runtime.accel === 'tcg' ? 'tcg,thread=single' : runtime.accel,
    '-m',
    runtime.accel === 'tcg' ? `${spec.memMiB * 1024 - TCG_RAM_SHORTFALL_KIB}k` : String(spec.memMiB),
    '-smp',
    String(spec.vcpus),
    '-nodefaults',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    spec.kernel,
    '-serial',
    `file:${qemuOptionValue(runtime.serialLog)}`,
    '-qmp',
    `unix:${qemuOptionValue(runtime.qmpSocket)},server=on,wait=off`,
    '-pidfile',
    runtime.pidFile,
  ];
  if (spec.initrd) argv.push('-initrd', spec.initrd);
  if (spec.append) argv.push('-append', spec.append);
  spec.disks.forEach((disk, index) => argv.push(...diskArgv(disk, index, runtime.imagesDir)));
  if (runtime.incoming) argv.push('-incoming', 'defer');
  return argv;
}
