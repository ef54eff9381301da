/**
 * The guests' QEMU processes: started detached (they outlive an agent restart), reached over QMP,
 * quit (QMP `quit`, then SIGKILL), and told apart from a recycled pid by their command line.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { qemuArgv, type GuestSpec } from '../guest.ts';
import { QmpClient } from '../qmp.ts';
import { HttpError } from './http-error.ts';
import { isOurQemu } from './proc-stat.ts';
import { readOrEmpty, type AgentHost, type GuestRole, type ManagedGuest } from './state.ts';

/** Starts a guest's QEMU (paused for an incoming migration when `incoming`) and waits for its QMP socket. */
export async function launch(
  host: AgentHost,
  spec: GuestSpec,
  role: GuestRole,
  incoming: boolean,
): Promise<ManagedGuest> {
  const guest = host.store.create(spec, role);
  host.guests.set(spec.name, guest);
  const { dir } = guest;
  const qmpSocket = path.join(dir, 'qmp.sock');
  const argv = qemuArgv(spec, {
    qmpSocket,
    serialLog: path.join(dir, 'serial.log'),
    pidFile: path.join(dir, 'qemu.pid'),
    accel: host.options.accel,
    incoming,
    imagesDir: host.imagesDir,
  });
  const logFd = fs.openSync(path.join(dir, 'qemu.log'), 'a');
  const child = spawn(host.options.qemuBinary ?? 'qemu-system-x86_64', argv, {
    detached: true,
    stdio: ['ignore', logFd, logFd],
  });
  fs.closeSync(logFd);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  child.unref();
  guest.pid = child.pid ?? null;
  host.store.save(guest);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const failed = await Promise.race([spawnError, sleep(100).then(() => null)]);
    if (failed) {
      host.forget(guest, 'QEMU could not be started');
      throw new HttpError(500, `cannot start QEMU: ${failed.message}`);
    }
    if (child.exitCode !== null || child.signalCode !== null) {
      const output = readOrEmpty(path.join(dir, 'qemu.log')).slice(-2000);
      host.forget(guest, 'QEMU exited at start');
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
      await kill(guest);
      host.forget(guest, 'QMP did not come up');
      throw new HttpError(500, 'QEMU started but its QMP socket did not answer within 15 s');
    }
  }
  return guest;
}

/** The guest's QMP connection, opened again when it was closed. */
export async function qmpOf(guest: ManagedGuest): Promise<QmpClient> {
  if (guest.qmp && !guest.qmp.closed) return guest.qmp;
  guest.qmp = await QmpClient.connect(path.join(guest.dir, 'qmp.sock'));
  return guest.qmp;
}

/** Quits QEMU (QMP `quit`), then SIGKILLs it if it is still there. */
export async function kill(guest: ManagedGuest): Promise<void> {
  const pid = guest.pid;
  try {
    await (await qmpOf(guest)).execute('quit', undefined, 2000);
  } catch {
    /* gone or not answering */
  }
  guest.qmp?.close();
  guest.qmp = null;
  if (pid !== null) {
    /** Whether the process is gone within `ms`. */
    const goneWithin = async (ms: number) => {
      const deadline = Date.now() + ms;
      while (isOurQemu(pid, guest.id) && Date.now() < deadline) await sleep(20);
      return !isOurQemu(pid, guest.id);
    };
    if (!(await goneWithin(3000))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      // Until the kernel has taken it away: whoever asks next (a migration's status, a list) is
      // told the copy is gone only when no QEMU of it runs.
      await goneWithin(5000);
    }
  }
  guest.pid = null;
}

/** QEMU's run state (`query-status`), `gone` when its process is, `unknown` when QMP does not answer. */
export async function runStatus(guest: ManagedGuest): Promise<string> {
  if (guest.pid === null || !isOurQemu(guest.pid, guest.id)) return 'gone';
  try {
    return ((await (await qmpOf(guest)).execute('query-status', undefined, 3000)) as { status: string }).status;
  } catch {
    return 'unknown';
  }
}

/** Kills the QEMU named by a guest folder's pid file (an unreadable guest found at start). */
export function killPidFile(dir: string): void {
  try {
    const pid = Number(fs.readFileSync(path.join(dir, 'qemu.pid'), 'utf8').trim());
    if (pid > 0 && isOurQemu(pid, path.basename(dir))) process.kill(pid, 'SIGKILL');
  } catch {
    /* nothing to kill */
  }
}
