/**
 * What a QEMU guest is (its spec, stored by the agent) and the QEMU argv that runs it. Always an
 * argv array for spawn(), never a shell string. The VM's name never reaches QEMU's command line:
 * QEMU is told an id derived from it (`lbvm-<hash>`), so a name like `x; rm -rf /` or one with
 * commas (QEMU's option separator) is only ever data in LBVM's own files and messages.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

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
}

/** The kernel command line that tells the test guest's init what to burn and dirty. */
export function guestKernelArgs(load: TestGuestLoad): string {
  const percent = (value: number | undefined) => String(Math.max(0, Math.min(100, Math.round(value ?? 0))));
  const args = [
    'console=ttyS0 quiet panic=-1',
    `lbvm.cpu=${percent(load.cpuPercent)} lbvm.mem=${percent(load.memPercent)} lbvm.dirty=${percent(load.dirtyPercent)}`,
  ];
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
}

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
    String(spec.memMiB),
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
  if (runtime.incoming) argv.push('-incoming', 'defer');
  return argv;
}
