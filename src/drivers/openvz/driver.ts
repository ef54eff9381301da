/**
 * The `openvz` driver: OpenVZ / Virtuozzo containers, each host reached over ssh
 * (`drivers.openvz.hosts.<name>`: an ssh target such as root@10.0.0.1), every remote argument
 * quoted for the remote shell (see remote.ts).
 *
 * Inventory: `vzlist -j -a` (flavour `vzctl`) or `prlctl list -j -i -a` (flavour `prlctl`), and
 *            `/proc/vz/vestat` for each container's cumulative CPU time, in one ssh call.
 * Migrate:   `vzmigrate --online DEST CT` or `prlctl migrate CT DEST`, run on the source host; DEST is
 *            the destination's ssh target. No progress; it cannot be cancelled once started (an abort
 *            is logged and the migration is left to finish: killing ssh would not stop it on the host).
 */
import type { LbvmConfig } from '../../config/schema.ts';
import { ConfigError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { runFile } from '../../util/processes.ts';
import type { Driver, DriverCapabilities, HostInventory, MigrateOutcome, MigrateRequest, VmInventory } from '../driver.ts';
import { locateFromAnswers, type HostAnswer } from '../locate.ts';
import { checkSshTarget, sshArgv } from './remote.ts';

const PAGE_BYTES = 4096;
/** USER_HZ: /proc/vz/vestat counts CPU time in these ticks per second. */
const TICKS_PER_SECOND = 100;
const SEPARATOR = '--lbvm-vestat--';

export type Flavour = 'vzctl' | 'prlctl';

/** One container of `vzlist -j` (the fields LBVM reads). */
interface VzlistEntry {
  ctid: number | string;
  name?: string | null;
  hostname?: string | null;
  status?: string;
  cpus?: number | null;
  physpages?: { held?: number; limit?: number } | null;
}

/** One entry of `prlctl list -j -i` (the fields LBVM reads). */
interface PrlctlEntry {
  ID?: string;
  EnvID?: string | number;
  Name?: string;
  Type?: string;
  State?: string;
  Hardware?: { cpu?: { cpus?: number | string }; memory?: { size?: string } };
}

/** `/proc/vz/vestat`: container id -> cumulative user+nice+system CPU time in ms. */
export function parseVestat(text: string): Map<string, number> {
  const times = new Map<string, number>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || !/^\d+$/.test(fields[1]!)) continue;
    const ticks = Number(fields[1]) + Number(fields[2]) + Number(fields[3]);
    if (Number.isFinite(ticks)) times.set(fields[0]!, (ticks * 1000) / TICKS_PER_SECOND);
  }
  return times;
}

function state(text: string | undefined): VmInventory['state'] {
  switch (text?.toLowerCase()) {
    case 'running':
      return 'running';
    case 'suspended':
    case 'paused':
      return 'paused';
    case 'stopped':
    case 'mounted':
      return 'stopped';
    default:
      return 'unknown';
  }
}

/** `vzlist -j -a` -> inventory entries. Memory is the vSwap RAM limit (physpages, in 4 KiB pages). */
export function parseVzlist(text: string, host: string, cpuTimes: Map<string, number>): VmInventory[] {
  const entries = JSON.parse(text) as VzlistEntry[];
  return entries.map((entry) => {
    const id = String(entry.ctid);
    const limitPages = entry.physpages?.limit;
    // An unlimited container has LONG_MAX pages: no size to report.
    const memBytes = limitPages !== undefined && limitPages < 2 ** 40 ? limitPages * PAGE_BYTES : 0;
    const vm: VmInventory = {
      name: entry.name || id,
      host,
      vcpus: entry.cpus ?? 1,
      memBytes,
      memUsedBytes: Math.min((entry.physpages?.held ?? 0) * PAGE_BYTES, memBytes || Infinity),
      state: state(entry.status),
    };
    const cpuTimeMs = cpuTimes.get(id);
    if (cpuTimeMs !== undefined && vm.state === 'running') vm.cpuTimeMs = cpuTimeMs;
    return vm;
  });
}

/** "1024Mb", "2Gb" (prlctl's sizes) -> bytes. */
function prlctlBytes(text: string | undefined): number {
  const match = text?.match(/^(\d+(?:\.\d+)?)\s*([KMGT]?)b?$/i);
  if (!match) return 0;
  const power = { '': 0, K: 1, M: 2, G: 3, T: 4 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.round(Number(match[1]) * 1024 ** power);
}

/** `prlctl list -j -i -a` -> inventory entries (containers and VMs alike). */
export function parsePrlctlList(text: string, host: string, cpuTimes: Map<string, number>): VmInventory[] {
  const entries = JSON.parse(text) as PrlctlEntry[];
  return entries.map((entry) => {
    const id = String(entry.EnvID ?? entry.ID ?? '');
    const memBytes = prlctlBytes(entry.Hardware?.memory?.size);
    const vm: VmInventory = {
      name: entry.Name || id,
      host,
      vcpus: Number(entry.Hardware?.cpu?.cpus) || 1,
      memBytes,
      memUsedBytes: 0,
      state: state(entry.State),
    };
    const cpuTimeMs = cpuTimes.get(id);
    if (cpuTimeMs !== undefined && vm.state === 'running') vm.cpuTimeMs = cpuTimeMs;
    return vm;
  });
}

export interface OpenvzDriverOptions {
  /** Host name -> ssh target. */
  targets: Record<string, string>;
  flavour: Flavour;
  sshOptions: string[];
  ssh: string;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}

export class OpenvzDriver implements Driver {
  readonly name = 'openvz';
  readonly capabilities: DriverCapabilities = { live: true, checkpoint: false, cancel: false, progress: false, stats: true };

  constructor(private readonly options: OpenvzDriverOptions) {}

  static fromConfig(config: LbvmConfig, log: Logger): OpenvzDriver {
    const settings = config.drivers.openvz;
    const problems: string[] = [];
    if (Object.keys(settings.hosts).length === 0) problems.push('drivers.openvz.hosts: no host has an ssh target; the openvz driver needs one per host, e.g. drivers.openvz.hosts: { n1: root@10.0.0.1 }');
    for (const [host, target] of Object.entries(settings.hosts)) {
      const problem = checkSshTarget(target);
      if (problem) problems.push(`drivers.openvz.hosts.${host}: ${JSON.stringify(target)}: ${problem}`);
    }
    if (problems.length) throw new ConfigError(problems);
    return new OpenvzDriver({ targets: settings.hosts, flavour: settings.flavour, sshOptions: settings.sshOptions, ssh: settings.ssh, log });
  }

  target(host: string): string {
    const target = this.options.targets[host];
    if (!target) throw new Error(`no ssh target for host ${JSON.stringify(host)}; add it to drivers.openvz.hosts (known: ${Object.keys(this.options.targets).join(', ')})`);
    return target;
  }

  /** Runs `argv` on `host` through ssh; a failure names the host and what the remote side said. */
  private async remote(host: string, argv: string[], timeoutMs: number, label = argv[0]): Promise<string> {
    try {
      return (await runFile(this.options.ssh, sshArgv(this.options.sshOptions, this.target(host), argv), { env: this.options.env, timeoutMs })).stdout;
    } catch (error) {
      (error as Error).message = `${label} on ${host} (ssh ${this.target(host)}) failed: ${(error as Error).message}`;
      throw error;
    }
  }

  async inventory(host: string): Promise<HostInventory> {
    const list = this.options.flavour === 'vzctl' ? ['vzlist', '-j', '-a'] : ['prlctl', 'list', '-j', '-i', '-a'];
    // One connection: the listing, a separator, the CPU counters (absent where there is no
    // /proc/vz/vestat: no CPU figures then). Fixed words only, no names.
    const output = await this.remote(host, ['sh', '-c', `${list.join(' ')} && echo ${SEPARATOR} && (cat /proc/vz/vestat 2>/dev/null || true)`], 60_000, list[0]);
    const at = output.lastIndexOf(`${SEPARATOR}\n`);
    const listing = at >= 0 ? output.slice(0, at) : output;
    const cpuTimes = at >= 0 ? parseVestat(output.slice(at + SEPARATOR.length + 1)) : new Map<string, number>();
    try {
      const vms = this.options.flavour === 'vzctl' ? parseVzlist(listing, host, cpuTimes) : parsePrlctlList(listing, host, cpuTimes);
      return { host, vms };
    } catch (error) {
      throw new Error(`${list[0]} on ${host}: could not read its JSON output (${(error as Error).message}): ${listing.slice(0, 200)}`);
    }
  }

  async locate(vm: string): Promise<string | null> {
    const answers = await Promise.all(
      Object.keys(this.options.targets).map(async (host): Promise<HostAnswer> => {
        try {
          const found = (await this.inventory(host)).vms.filter((entry) => entry.name === vm);
          return { host, active: found.some((entry) => entry.state === 'running' || entry.state === 'paused'), defined: found.length > 0 };
        } catch (error) {
          return { host, active: false, defined: false, error: error as Error };
        }
      }),
    );
    return locateFromAnswers(vm, answers);
  }

  /** The command run on the source host (before quoting). */
  migrateCommand(vm: string, to: string): string[] {
    // A name starting with "-" would be read as an option by the tools' own option parsers.
    if (vm.startsWith('-') || /[\0\n\r]/.test(vm)) throw new Error(`container name ${JSON.stringify(vm)} cannot be passed to ${this.options.flavour === 'vzctl' ? 'vzmigrate' : 'prlctl'} (it starts with "-" or holds a control character); nothing was done`);
    const destination = this.target(to);
    return this.options.flavour === 'vzctl' ? ['vzmigrate', '--online', destination, vm] : ['prlctl', 'migrate', vm, destination];
  }

  async migrate(request: MigrateRequest): Promise<MigrateOutcome> {
    if (request.mode !== 'live') throw new Error(`the openvz driver migrates live only (migration.mode ${request.mode} is not supported); nothing was done`);
    if (request.signal.aborted) throw (request.signal.reason as Error) ?? new Error('cancelled');
    const command = this.migrateCommand(request.vm, request.to);
    const startedMs = Date.now();
    const onAbort = () => this.options.log.warn({ vm: request.vm, from: request.from, to: request.to }, `${command[0]} cannot be cancelled once started; it runs to its end`);
    request.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.remote(request.from, command, 0);
    } catch (error) {
      throw new Error(`live migration of ${JSON.stringify(request.vm)} from ${request.from} to ${request.to} failed: ${(error as Error).message}`);
    } finally {
      request.signal.removeEventListener('abort', onAbort);
    }
    return { totalMs: Date.now() - startedMs, downtimeMs: null, bytesCopied: 0 };
  }

  async close(): Promise<void> {}
}
