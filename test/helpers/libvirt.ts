/**
 * A real libvirt daemon of the test's own: `libvirtd` (Debian libvirt-daemon) in session mode as the
 * unprivileged user `nobody`, with its runtime, config and cache folders in a temporary folder, on
 * its own socket (`qemu:///session?socket=...`). Never the system daemon. Each daemon gets its own
 * `host_uuid`, so two of them on one machine are two hosts to libvirt (a live migration between them
 * is allowed). Domains are QEMU TCG guests (`<domain type='qemu'>`) booting the test guest image.
 * `stop()` destroys its domains, stops the daemon and kills any QEMU it left behind.
 *
 * The daemon and its QEMU run as `nobody`, who cannot read inside a clone kept in a private folder
 * (`mktemp -d` is 0700): each daemon boots its guests from its own readable copy of the test guest's
 * kernel and initramfs, in its own folder, and a temporary folder `nobody` cannot reach fails at once
 * naming the folder and its mode.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { guestKernelArgs, type TestGuestLoad } from '../../src/drivers/qemu/guest.ts';
import { runFile } from '../../src/util/processes.ts';
import { spawnTracked, waitFor, type Tracked } from './processes.ts';
import { assertGuestImage, GUEST_DIR } from './qemu.ts';
import { tmpDir } from './tmp.ts';

const NOBODY = 65534;

export interface LibvirtDaemon {
  dir: string;
  /** `qemu:///session?socket=DIR/run/libvirt/libvirt-sock` */
  uri: string;
  process: Tracked;
  /** Runs `virsh -c URI ...args` (argv array) and returns its stdout. */
  virsh(args: string[]): Promise<string>;
  /** Defines and starts a TCG test guest named `name`; resolves when its console says it is up. */
  startGuest(name: string, load?: TestGuestLoad & { memMiB?: number }): Promise<{ serialLog: string }>;
  stop(): Promise<void>;
}

const daemons = new Set<string>();
/** QEMU processes a daemon started run detached from it: kill them by their pid files on exit. */
function killLeftoverQemu(dir: string): void {
  const pidDir = path.join(dir, 'run/libvirt/qemu');
  if (!fs.existsSync(pidDir)) return;
  for (const file of fs.readdirSync(pidDir).filter((name) => name.endsWith('.pid'))) {
    const pid = Number(fs.readFileSync(path.join(pidDir, file), 'utf8').trim());
    if (pid > 1) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}
process.on('exit', () => {
  for (const dir of daemons) killLeftoverQemu(dir);
});

const xml = (text: string) =>
  text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/'/g, '&apos;')
    .replace(/"/g, '&quot;');

/**
 * Fails, naming the folder and its mode, when `nobody` cannot reach `dir` (a folder on the way to it
 * lets others neither in nor through).
 */
export function assertReachableByNobody(dir: string): void {
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    const stat = fs.statSync(at);
    const searchable = stat.uid === NOBODY ? stat.mode & 0o100 : stat.mode & 0o001;
    if (!searchable) {
      throw new Error(
        `${at} (mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')}, owner uid ${stat.uid}) cannot be entered by ` +
          `nobody, whom the test libvirtd runs as; give TMPDIR a folder others may pass through (such as /tmp)`,
      );
    }
    if (at === path.dirname(at)) return;
  }
}

/** Copies the test guest's kernel and initramfs into `dir/guest`, readable by all; their paths. */
function readableGuestImage(dir: string): { kernel: string; initrd: string } {
  assertGuestImage();
  const guest = path.join(dir, 'guest');
  fs.mkdirSync(guest, { recursive: true, mode: 0o755 });
  const copy = (file: string) => {
    const target = path.join(guest, file);
    if (!fs.existsSync(target)) {
      fs.copyFileSync(path.join(GUEST_DIR, file), target);
      fs.chmodSync(target, 0o644);
    }
    return target;
  };
  return { kernel: copy('kernel'), initrd: copy('initramfs.cpio.gz') };
}

export async function startLibvirtd(): Promise<LibvirtDaemon> {
  const dir = tmpDir('lbvm-libvirtd-');
  assertReachableByNobody(path.dirname(dir));
  for (const sub of ['run', 'config/libvirt', 'cache', 'data']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config/libvirt/libvirtd.conf'), `host_uuid = "${randomUUID()}"\n`);
  fs.chmodSync(dir, 0o755);
  for (const entry of ['', 'run', 'config', 'config/libvirt', 'config/libvirt/libvirtd.conf', 'cache', 'data'])
    fs.chownSync(path.join(dir, entry), NOBODY, NOBODY);
  const env = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: dir,
    XDG_RUNTIME_DIR: path.join(dir, 'run'),
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    XDG_CACHE_HOME: path.join(dir, 'cache'),
    XDG_DATA_HOME: path.join(dir, 'data'),
  };
  // setpriv again inside: the kill-with-parent signal is cleared by the change of user, and set anew after it.
  const process = spawnTracked(
    'setpriv',
    [
      `--reuid=${NOBODY}`,
      `--regid=${NOBODY}`,
      '--clear-groups',
      '--pdeathsig',
      'KILL',
      '--',
      'libvirtd',
      '--timeout',
      '0',
    ],
    { env, cwd: dir },
  );
  daemons.add(dir);
  const socket = path.join(dir, 'run/libvirt/libvirt-sock');
  const uri = `qemu:///session?socket=${socket}`;
  const virsh = async (args: string[]) =>
    (await runFile('virsh', ['-c', uri, ...args], { timeoutMs: 60_000, cwd: dir })).stdout;
  await waitFor(
    `libvirtd in ${dir}`,
    async () => fs.existsSync(socket) && (await virsh(['uri'])).trim().startsWith('qemu:///session'),
    { process, timeoutMs: 30_000, intervalMs: 200 },
  );

  return {
    dir,
    uri,
    process,
    virsh,
    async startGuest(name, load = {}) {
      const image = readableGuestImage(dir);
      const serialLog = path.join(dir, `serial-${randomUUID()}.log`);
      const file = path.join(dir, `domain-${randomUUID()}.xml`);
      fs.writeFileSync(
        file,
        `<domain type='qemu'>
  <name>${xml(name)}</name>
  <memory unit='MiB'>${load.memMiB ?? 128}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>${xml(image.kernel)}</kernel>
    <initrd>${xml(image.initrd)}</initrd>
    <cmdline>${xml(guestKernelArgs(load))}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'><source path='${xml(serialLog)}'/><target port='0'/></serial>
    <memballoon model='virtio'/>
  </devices>
</domain>
`,
      );
      await virsh(['define', '--file', file]);
      await virsh(['start', '--domain', name]);
      const up = () => fs.existsSync(serialLog) && fs.readFileSync(serialLog, 'utf8').includes('lbvm-guest: up');
      await waitFor(`libvirt guest ${JSON.stringify(name)} (serial log ${serialLog})`, up, {
        process,
        timeoutMs: 90_000,
        intervalMs: 250,
      });
      return { serialLog };
    },
    async stop() {
      try {
        const names = (await virsh(['list', '--name'])).split('\n').filter(Boolean);
        for (const name of names) await virsh(['destroy', '--domain', name]).catch(() => {});
      } catch {
        /* the daemon is gone already */
      }
      await process.stop();
      killLeftoverQemu(dir);
      daemons.delete(dir);
    },
  };
}
