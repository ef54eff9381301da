/**
 * Real `lbvm agent` processes for tests: each with its own state folder, port and host name, so
 * several make a multi-host cluster on one machine; or each in its own network namespace on its own
 * address (src/util/netns.ts), with the cluster's certificates (mutual TLS, TLS migrations). Guests' QEMU processes run detached from the
 * agent (they survive its restart), so this helper kills every QEMU it finds under its state
 * folders when the test process exits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { AgentClient } from '../../src/drivers/qemu/client.ts';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import {
  guestId,
  guestKernelArgs,
  type DiskSpec,
  type GuestSpecInput,
  type TestGuestLoad,
} from '../../src/drivers/qemu/guest.ts';
import { createLogger } from '../../src/log.ts';
import type { ClusterCerts } from '../../src/util/certs.ts';
import type { NetnsCluster } from '../../src/util/netns.ts';
import { readTls, type TlsMaterial } from '../../src/util/tls.ts';
import { cleanEnv, ROOT } from './cli.ts';
import { freePort, runFile, spawnTracked, waitFor, type Tracked } from './processes.ts';
import { assertGuestImage, GUEST_DIR } from './qemu.ts';
import { madeDirs, tmpDir } from './tmp.ts';

const stateDirs: string[] = [];
process.on('exit', () => {
  // By command line, not by pid file: tmp.ts may already have removed the state folders.
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.startsWith('qemu-system') && stateDirs.some((dir) => cmdline.includes(`${dir}/guests/`)))
        process.kill(Number(entry), 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // Make these signals run the exit hooks above (Node's default for them skips 'exit' listeners).
  if (process.listenerCount(signal) === 0)
    process.once(signal, () => process.exit(128 + (signal === 'SIGINT' ? 2 : 15)));
}

/** Pids of live QEMU processes of guests under an agent's state folder. */
export function qemuPids(stateDir: string): number[] {
  const guests = path.join(stateDir, 'guests');
  if (!fs.existsSync(guests)) return [];
  const pids: number[] = [];
  for (const entry of fs.readdirSync(guests)) {
    try {
      const pid = Number(fs.readFileSync(path.join(guests, entry, 'qemu.pid'), 'utf8').trim());
      if (pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`lbvm-${entry}`)) pids.push(pid);
    } catch {
      /* no pid file or process gone */
    }
  }
  return pids;
}

/**
 * The QEMU processes running guest `name` that this test process started (their command line holds
 * a folder of its tmpDir): other tests on the machine may run a guest of the same name at once.
 */
export function qemuProcessesOf(name: string): number[] {
  const marker = `lbvm-${guestId(name)}`;
  const ours = madeDirs();
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(marker) && cmdline.includes('qemu-system') && ours.some((dir) => cmdline.includes(dir)))
        found.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return found;
}

export interface TestAgent {
  host: string;
  /** The agent's environment (its config): change it, then stop() and start() to restart it so. */
  env: Record<string, string>;
  address: string;
  stateDir: string;
  token: string;
  client: AgentClient;
  process: Tracked;
  /** The guest's serial console lines on this host (empty when it is not here). */
  console(name: string): string[];
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export interface AgentStart {
  token?: string;
  /** Run the agent inside this cluster's namespace of the same host name, bound to its address (control port and migrations). */
  netns?: NetnsCluster;
  /**
   * The cluster's TLS: the agent serves with the certificate named like its host (made for its address)
   * and the test's client shows the one named `worker`.
   */
  certs?: ClusterCerts;
  /** tls.migration (default: true, with certs). */
  migrationTls?: boolean;
}

export async function startAgent(host: string, options: string | AgentStart = {}): Promise<TestAgent> {
  const start: AgentStart = typeof options === 'string' ? { token: options } : options;
  const token = start.token ?? 'test-token-0123456789';
  const stateDir = tmpDir(`lbvm-agent-${host}-`);
  stateDirs.push(stateDir);
  const netHost = start.netns?.host(host);
  const address = netHost ? `${netHost.address}:7300` : `127.0.0.1:${await freePort()}`;
  const env: Record<string, string> = { LBVM_AGENT_TOKEN: token, LBVM_LOG_FORMAT: 'json', LBVM_LOG_LEVEL: 'info' };
  if (netHost) env.LBVM_AGENT_MIGRATION_ADDRESS = netHost.address;
  let clientTls: TlsMaterial | undefined;
  if (start.certs) {
    const own = start.certs.files(host);
    Object.assign(env, { LBVM_TLS_CA: start.certs.ca, LBVM_TLS_CERT: own.cert, LBVM_TLS_KEY: own.key });
    env.LBVM_TLS_MIGRATION = String(start.migrationTls ?? true);
    clientTls = readTls({ ca: start.certs.ca, ...start.certs.files('worker') });
  }
  const agent: TestAgent = {
    host,
    env,
    address,
    stateDir,
    token,
    client: new AgentClient(address, token, host, clientTls),
    process: undefined as unknown as Tracked,
    console(name) {
      // Read, not tested first: a migrated guest's folder goes when its move completes, at any moment.
      try {
        return fs.readFileSync(path.join(stateDir, 'guests', guestId(name), 'serial.log'), 'utf8').split('\n');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw error;
      }
    },
    async start() {
      const argv = [
        path.join(ROOT, 'bin/lbvm.js'),
        'agent',
        '--node',
        host,
        '--listen',
        agent.address,
        '--state-dir',
        stateDir,
      ];
      const run = start.netns
        ? start.netns.exec(host, process.execPath, argv)
        : { command: process.execPath, args: argv };
      agent.process = spawnTracked(run.command, run.args, { env: cleanEnv(agent.env), cwd: stateDir });
      await waitFor(
        `lbvm agent ${host} on ${agent.address}`,
        async () => (await agent.client.health(1000)).host === host,
        {
          process: agent.process,
          timeoutMs: 30_000,
          intervalMs: 200,
        },
      );
    },
    stop: () => agent.process.stop(),
    async kill() {
      agent.process.child.kill('SIGKILL');
      await agent.process.exited;
    },
  };
  // A free port can be taken by another process (a server another test starts) between the look and
  // the agent's bind: the agent then exits saying so, and the first start tries another port.
  for (let attempt = 1; ; attempt++) {
    try {
      await agent.start();
      return agent;
    } catch (error) {
      if (netHost || attempt >= 3 || !/EADDRINUSE/.test((error as Error).message)) throw error;
      agent.address = `127.0.0.1:${await freePort()}`;
      agent.client = new AgentClient(agent.address, token, host, clientTls);
    }
  }
}

/** The qemu driver reaching these agents by their host names (logging errors only, unless given a level). */
export function driverOf(agents: TestAgent[], level: 'warn' | 'error' = 'error'): QemuDriver {
  return new QemuDriver(
    new Map(agents.map((agent) => [agent.host, agent.client])),
    createLogger({ level, format: 'json' }),
  );
}

/** The spec of the LBVM test guest (deploy/guest), as an agent starts it. */
export function testGuestSpec(
  name: string,
  load: TestGuestLoad = {},
  memMiB = 128,
  disks: Partial<DiskSpec>[] = [],
): GuestSpecInput {
  assertGuestImage();
  return {
    name,
    memMiB,
    vcpus: 1,
    kernel: path.join(GUEST_DIR, 'kernel'),
    initrd: path.join(GUEST_DIR, 'initramfs.cpio.gz'),
    append: guestKernelArgs(load),
    disks: disks as DiskSpec[],
  };
}

/** Creates an empty disk image (qemu-img create). */
export async function createImage(file: string, format: 'raw' | 'qcow2', sizeBytes: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await runFile('qemu-img', ['create', '-q', '-f', format, file, String(sizeBytes)]);
}

/** The numbers of the disk records the guest said are on its disk (`lbvm-guest: disk seq N`), in order. */
export function diskSeqs(lines: string[]): number[] {
  return lines
    .filter((line) => line.startsWith('lbvm-guest: disk seq '))
    .map((line) => Number(line.slice('lbvm-guest: disk seq '.length)));
}

/** The guest's check of its disk at boot: `ok last=M records=K` or `BAD ...`; null before it printed one. */
export function diskVerdict(lines: string[]): { ok: boolean; last: number; line: string } | null {
  const line = lines.find((candidate) => /^lbvm-guest: disk (ok|BAD) /.test(candidate));
  if (!line) return null;
  return { ok: line.includes(' disk ok '), last: Number(/last=(\d+)/.exec(line)?.[1] ?? NaN), line };
}

/** Tick numbers the guest printed on a console, in order. */
export function ticks(lines: string[]): number[] {
  return lines
    .filter((line) => line.startsWith('lbvm-guest: tick '))
    .map((line) => Number(line.slice('lbvm-guest: tick '.length)));
}

/**
 * Waits until the guest's tick counter on `agent`'s console satisfies `enough` (given the ticks so
 * far, in order) and returns them. The guest ticks about once a second, slower under TCG on a busy
 * machine: a test waits for what it asserts rather than sleeping a fixed time and counting.
 */
export async function waitTicks(
  agent: TestAgent,
  name: string,
  enough: (ticks: number[]) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<number[]> {
  let seen: number[] = [];
  await waitFor(`${what} (${name} on ${agent.host})`, () => enough((seen = ticks(agent.console(name)))), {
    timeoutMs,
    intervalMs: 250,
  }).catch((error: Error) => {
    throw new Error(`${error.message}; ticks seen: ${seen.slice(-5).join(', ') || 'none'}`);
  });
  return seen;
}

/** Waits until the guest printed "lbvm-guest: up" on `agent`. */
export async function waitBooted(agent: TestAgent, name: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(
    `guest ${name} to boot on ${agent.host}`,
    () => agent.console(name).some((line) => line.startsWith('lbvm-guest: up')),
    { timeoutMs, intervalMs: 250 },
  );
}
