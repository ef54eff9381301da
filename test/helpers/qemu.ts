/**
 * A real QEMU test guest: the Debian kernel and busybox initramfs built by deploy/setup.sh into
 * .cache/guest. Runs under TCG (a Linux guest hangs while booting under KVM on these machines).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { guestKernelArgs, qemuArgv, guestSpecSchema } from '../../src/drivers/qemu/guest.ts';
import { spawnTracked, waitFor, type Tracked } from './processes.ts';
import { tmpDir } from './tmp.ts';

export const GUEST_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../.cache/guest');

export interface GuestOptions {
  /** Share of one vCPU the guest's init burns, 0..100. */
  cpuPercent?: number;
  /** Share of guest RAM held in a tmpfs file, 0..100. */
  memPercent?: number;
  /** Share of guest RAM rewritten every second, 0..100. */
  dirtyPercent?: number;
  memMiB?: number;
  name?: string;
}

export interface Guest {
  name: string;
  dir: string;
  qmpSocket: string;
  serialLog: string;
  process: Tracked;
  /** The lines the guest printed on its serial console. */
  console(): string[];
  /** Latest `lbvm-guest: tick N`, or 0. */
  lastTick(): number;
  stop(): Promise<void>;
}

/** The kernel command line that tells the guest's init what to burn and dirty (built by the qemu driver). */
export { guestKernelArgs };

export function assertGuestImage(): void {
  for (const file of ['kernel', 'initramfs.cpio.gz']) {
    if (!fs.existsSync(path.join(GUEST_DIR, file))) {
      throw new Error(`test guest image missing: ${path.join(GUEST_DIR, file)}; run deploy/setup.sh`);
    }
  }
}

export async function startGuest(options: GuestOptions = {}): Promise<Guest> {
  assertGuestImage();
  const dir = tmpDir('lbvm-guest-');
  const name = options.name ?? 'guest';
  const qmpSocket = path.join(dir, 'qmp.sock');
  const serialLog = path.join(dir, 'serial.log');
  // The same argv the qemu driver's agent uses for a guest.
  const spec = guestSpecSchema.parse({
    name,
    memMiB: options.memMiB ?? 128,
    vcpus: 1,
    kernel: path.join(GUEST_DIR, 'kernel'),
    initrd: path.join(GUEST_DIR, 'initramfs.cpio.gz'),
    append: guestKernelArgs(options),
  });
  const process = spawnTracked(
    'qemu-system-x86_64',
    qemuArgv(spec, { qmpSocket, serialLog, pidFile: path.join(dir, 'qemu.pid'), accel: 'tcg' }),
  );
  const consoleLines = () => (fs.existsSync(serialLog) ? fs.readFileSync(serialLog, 'utf8').split('\n') : []);
  const guest: Guest = {
    name,
    dir,
    qmpSocket,
    serialLog,
    process,
    console: consoleLines,
    lastTick() {
      const ticks = consoleLines().filter((line) => line.startsWith('lbvm-guest: tick '));
      return ticks.length ? Number(ticks[ticks.length - 1]!.slice('lbvm-guest: tick '.length)) : 0;
    },
    stop: () => process.stop(),
  };
  await waitFor(
    `QEMU guest ${name} (serial log ${serialLog})`,
    () => consoleLines().some((line) => line.startsWith('lbvm-guest: up')),
    {
      process,
      timeoutMs: 90_000,
      intervalMs: 250,
    },
  );
  return guest;
}
