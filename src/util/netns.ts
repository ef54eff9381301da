/**
 * A cluster of network namespaces on this machine, for the tests, the demo (`--netns`) and the
 * `migrate` bench: each host is a namespace with its own address on one bridge, reached through a
 * veth pair whose two ends are shaped with `tc` (tbf) to the link's rate, so a host's traffic in and
 * out crosses a real, if virtual, network at a known speed. Made and torn down with Debian iproute2's
 * `ip netns`, `ip link`, `ip addr` and `tc` (run as root), always through argv arrays.
 *
 * Names say whose they are: namespaces `lbvm-<pid>-<n>-<i>`, links `lbvm<pid36>.<n36>b` (the bridge)
 * and `lbvm<pid36>.<n36>h<i>` (a host's end on the bridge; inside its namespace the other end is
 * `eth0`), where <pid> is the process that made them. A process that dies without tearing its
 * cluster down leaves them behind; the next cluster made on the machine removes every one whose
 * maker is gone (and kills what still runs in its namespaces), so a crash leaves nothing for long.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { runFile } from './processes.ts';

export interface NetnsHost {
  /** The caller's name for the host (h1, ...). Never part of a namespace or link name. */
  name: string;
  namespace: string;
  /** Its IPv4 address on the bridge. */
  address: string;
  /** Its veth end on the bridge, in the root namespace. */
  link: string;
}

export interface NetnsCluster {
  bridge: string;
  /** The bridge's own address: how the root namespace (a worker, a monitor) is reached from the hosts. */
  bridgeAddress: string;
  hosts: NetnsHost[];
  /** The links' rate in bits per second. */
  rateBitsPerSec: number;
  host(name: string): NetnsHost;
  /** `command args` run inside the host's namespace: `ip netns exec NS command args`, as an argv. */
  exec(host: string, command: string, args: string[]): { command: string; args: string[] };
  /** Shapes every link (both directions) to `rate` (`1gbit`, `10gbit`, `500mbit`, or bits per second). */
  shape(rate: string | number): Promise<void>;
  /** Pids of processes still running in the cluster's namespaces. */
  pids(): Promise<number[]>;
  /** Kills what still runs in the namespaces and removes them, the veths and the bridge. Idempotent. */
  teardown(): Promise<void>;
}

export interface NetnsOptions {
  /** Host names, in order; at most 99. */
  hosts: string[];
  /** Every link's rate: `1gbit` by default. */
  rate?: string | number;
}

const NAMESPACE_PATTERN = /^lbvm-(\d+)-\d+-\d+$/;
const LINK_PATTERN = /^lbvm([0-9a-z]+)\.[0-9a-z][bh]\d*$/;
let made = 0;

/** `1gbit`, `10gbit`, `250mbit`, `100kbit` or a number of bits per second, as bits per second. */
export function parseRate(rate: string | number): number | null {
  if (typeof rate === 'number') return Number.isFinite(rate) && rate > 0 ? rate : null;
  const match = /^(\d+(?:\.\d+)?)\s*(k|m|g)?bit$/i.exec(rate.trim());
  if (!match) return /^\d+$/.test(rate.trim()) ? Number(rate) : null;
  const scale = { k: 1e3, m: 1e6, g: 1e9 }[(match[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  return Number(match[1]) * scale;
}

async function ip(args: string[]): Promise<string> {
  return (await runFile('ip', args, { timeoutMs: 30_000 })).stdout;
}

/** Is the process that made these names still there (and still a node process, not a reused pid)? */
function makerAlive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node');
  } catch {
    return false;
  }
}

async function namespacePids(namespace: string): Promise<number[]> {
  const text = await ip(['netns', 'pids', namespace]).catch(() => '');
  return text
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => pid > 0);
}

async function removeNamespace(namespace: string): Promise<void> {
  for (const pid of await namespacePids(namespace)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  await ip(['netns', 'del', namespace]).catch(() => {});
}

/**
 * Removes namespaces and links named by this module whose maker process is gone (left by a crash).
 * Returns their names.
 */
export async function removeStaleNetns(): Promise<string[]> {
  const removed: string[] = [];
  const namespaces = (await ip(['netns', 'list']))
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter(Boolean);
  for (const namespace of namespaces) {
    const match = NAMESPACE_PATTERN.exec(namespace);
    if (!match || makerAlive(Number(match[1]))) continue;
    await removeNamespace(namespace);
    removed.push(namespace);
  }
  for (const line of (await ip(['-o', 'link', 'show'])).split('\n')) {
    const name = /^\d+:\s+([^:@\s]+)/.exec(line)?.[1];
    const match = name ? LINK_PATTERN.exec(name) : null;
    if (!name || !match || makerAlive(parseInt(match[1]!, 36))) continue;
    await ip(['link', 'del', name]).catch(() => {});
    removed.push(name);
  }
  return removed;
}

/** A /24 in 10.213.0.0/16 no interface on this machine has an address in. */
async function freeSubnet(): Promise<string> {
  const used = new Set(
    [...(await ip(['-o', '-4', 'addr', 'show'])).matchAll(/inet 10\.213\.(\d+)\./g)].map((match) => Number(match[1])),
  );
  // Start from a pid-derived place, so two makers at once rarely race for the same one.
  for (let offset = 0; offset < 256; offset++) {
    const candidate = (process.pid + offset) % 256;
    if (!used.has(candidate)) return `10.213.${candidate}`;
  }
  throw new Error('no free /24 left in 10.213.0.0/16 for a namespace cluster');
}

/** tbf at `bitsPerSec` with a bucket of 1 ms of traffic (at least 64 KiB, so a GSO packet of 64 KiB passes whole). */
function tbfArgs(bitsPerSec: number): string[] {
  const burst = Math.max(64 * 1024 + 1514, Math.round(bitsPerSec / 8 / 1000));
  return ['tbf', 'rate', `${Math.round(bitsPerSec)}bit`, 'burst', String(burst), 'latency', '20ms'];
}

export async function createNetnsCluster(options: NetnsOptions): Promise<NetnsCluster> {
  if (process.getuid?.() !== 0)
    throw new Error('a network-namespace cluster needs root (ip netns, ip link, tc); run as root');
  if (options.hosts.length === 0 || options.hosts.length > 99)
    throw new Error(`a namespace cluster has 1 to 99 hosts, not ${options.hosts.length}`);
  const rate = parseRate(options.rate ?? '1gbit');
  if (rate === null) throw new Error(`link rate ${JSON.stringify(options.rate)}: expected e.g. 1gbit, 10gbit, 500mbit`);
  await removeStaleNetns();
  const serial = made++;
  const tag = `${process.pid.toString(36)}.${(serial % 36).toString(36)}`;
  const subnet = await freeSubnet();
  const bridge = `lbvm${tag}b`;
  const hosts: NetnsHost[] = options.hosts.map((name, index) => ({
    name,
    namespace: `lbvm-${process.pid}-${serial}-${index + 1}`,
    address: `${subnet}.${index + 11}`,
    link: `lbvm${tag}h${index + 1}`,
  }));
  let tornDown = false;
  const teardown = async () => {
    if (tornDown) return;
    tornDown = true;
    process.off('exit', teardownNow);
    for (const host of hosts) await removeNamespace(host.namespace);
    for (const host of hosts) await ip(['link', 'del', host.link]).catch(() => {});
    await ip(['link', 'del', bridge]).catch(() => {});
  };
  // A normal exit without a teardown (a failed test) still cleans up; a crash is cleaned by the next maker.
  const teardownNow = () => {
    for (const host of hosts) {
      for (const args of [
        ['netns', 'pids', host.namespace],
        ['netns', 'del', host.namespace],
        ['link', 'del', host.link],
      ]) {
        try {
          const out = execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
          if (args[1] === 'pids')
            for (const pid of out
              .split('\n')
              .map(Number)
              .filter((value) => value > 0))
              process.kill(pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
    }
    try {
      execFileSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
    } catch {
      /* gone already */
    }
  };
  process.on('exit', teardownNow);
  const cluster: NetnsCluster = {
    bridge,
    bridgeAddress: `${subnet}.1`,
    hosts,
    rateBitsPerSec: rate,
    host(name) {
      const host = hosts.find((candidate) => candidate.name === name);
      if (!host) throw new Error(`no host ${JSON.stringify(name)} in the namespace cluster`);
      return host;
    },
    exec(host, command, args) {
      return { command: 'ip', args: ['netns', 'exec', cluster.host(host).namespace, command, ...args] };
    },
    async shape(value) {
      const bits = parseRate(value);
      if (bits === null) throw new Error(`link rate ${JSON.stringify(value)}: expected e.g. 1gbit, 10gbit, 500mbit`);
      for (const host of hosts) {
        // The host's end shapes what it sends; the bridge's end, what it receives.
        await runFile('tc', ['-n', host.namespace, 'qdisc', 'replace', 'dev', 'eth0', 'root', ...tbfArgs(bits)]);
        await runFile('tc', ['qdisc', 'replace', 'dev', host.link, 'root', ...tbfArgs(bits)]);
      }
      cluster.rateBitsPerSec = bits;
    },
    async pids() {
      return (await Promise.all(hosts.map((host) => namespacePids(host.namespace)))).flat();
    },
    teardown,
  };
  try {
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    await ip(['addr', 'add', `${cluster.bridgeAddress}/24`, 'dev', bridge]);
    await ip(['link', 'set', bridge, 'up']);
    for (const [index, host] of hosts.entries()) {
      const inside = `lbvm${tag}n${index + 1}`;
      await ip(['netns', 'add', host.namespace]);
      await ip(['link', 'add', host.link, 'type', 'veth', 'peer', 'name', inside]);
      await ip(['link', 'set', inside, 'netns', host.namespace]);
      await ip(['-n', host.namespace, 'link', 'set', inside, 'name', 'eth0']);
      await ip(['-n', host.namespace, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0']);
      await ip(['-n', host.namespace, 'link', 'set', 'eth0', 'up']);
      await ip(['-n', host.namespace, 'link', 'set', 'lo', 'up']);
      await ip(['link', 'set', host.link, 'master', bridge, 'up']);
    }
    await cluster.shape(rate);
  } catch (error) {
    await teardown();
    throw error;
  }
  return cluster;
}
