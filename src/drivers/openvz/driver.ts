/**
 * The `openvz` driver: OpenVZ / Virtuozzo containers, each host reached over ssh
 * (`drivers.openvz.hosts.<name>`: an ssh target such as root@10.0.0.1), every remote argument
 * quoted for the remote shell (see remote.ts).
 *
 * Inventory: one ssh call per host runs the listing (`vzlist -j -a -o FIELDS`, flavour `vzctl`, or
 *            `prlctl list -j -i -a`, flavour `prlctl`), `cat /proc/vz/vestat` (CPU time), `vzctl
 *            --version` (OpenVZ 6 or 7) and `nproc` (the host's cores). What those tools print, and
 *            where that is written in their sources, is said at each parser below.
 * Migrate:   the source's listing gives the container's ctid and state; then, run on the source host,
 *            `vzmigrate [--online] DEST CTID` or `prlctl migrate ID DEST`: live for a running container,
 *            offline for a stopped one (nothing to keep running), refused for one in a transitional
 *            state. DEST is the destination's ssh target, without `user@` for OpenVZ 6, whose vzmigrate
 *            prepends `root@` itself. vzmigrate connects to the destination with its own ssh (`-o
 *            BatchMode=yes`), not with drivers.openvz.sshOptions: the hosts' root keys must be in each
 *            other's authorized_keys. No progress; it cannot be cancelled once started (an abort is logged
 *            and the migration is left to finish: killing ssh would not stop it on the host).
 */
import type { LbvmConfig } from '../../config/schema.ts';
import { ConfigError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type { VmRunState } from '../../model/index.ts';
import { CommandFailed, runFile } from '../../util/processes.ts';
import type {
  Driver,
  DriverCapabilities,
  HostInventory,
  MigrateOutcome,
  MigrateRequest,
  VmInventory,
} from '../driver.ts';
import { locateFromAnswers, type HostAnswer } from '../locate.ts';
import { checkSshTarget, sshArgv } from './remote.ts';

const PAGE_BYTES = 4096;
/** A UBC limit at INT_MAX or above (LONG_MAX) is "unlimited", as vzlist itself reads it (vzctl src/vzlist.c print_vswap). */
const UNLIMITED_PAGES = 2147483647;
const VESTAT_MARK = '--lbvm-vestat--';
const HOST_MARK = '--lbvm-host--';
/** The vzlist fields LBVM reads: only these are listed, so a free-text field (description, hostname) cannot spoil the output. */
const VZLIST_FIELDS = 'ctid,name,status,cpus,cpulimit,physpages';
/** A ctid LBVM passes on: a number, or OpenVZ 7's UUID-like id; never an option, never two words. */
const CTID = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

export type Flavour = 'vzctl' | 'prlctl';

/** One container of `vzlist -j` (the fields LBVM reads). */
interface VzlistEntry {
  ctid: number | string;
  name?: string | null;
  status?: string;
  cpus?: number | null;
  /** Percent of one CPU (200 = two CPUs), 0 for none. */
  cpulimit?: number | null;
  physpages?: { held?: number; limit?: number } | null;
}

/** One entry of `prlctl list -j -i` (the fields LBVM reads). */
interface PrlctlEntry {
  ID?: string;
  EnvID?: string | number;
  Name?: string;
  State?: string;
  Hardware?: { cpu?: { cpus?: number | string }; memory?: { size?: string } };
}

/** What the listing script learned about the host itself. */
export interface HostFacts {
  /** vzctl's major version (4 on OpenVZ 6, 7 on OpenVZ 7), or null when vzctl said nothing. */
  vzctlMajor: number | null;
  /** The host's CPUs (`nproc`), or null. */
  cores: number | null;
}

/** A listed container: what LBVM sees, and the id its tools take. */
export interface Container {
  vm: VmInventory;
  ctid: string;
}

export interface Listing {
  containers: Container[];
  /** Containers whose entry could not be read, by ctid (or their first characters). */
  unreadable: string[];
}

/**
 * `/proc/vz/vestat`: container id -> cumulative user+nice+system CPU time in ms. The kernel prints
 * those three columns in jiffies at CONFIG_HZ (vzkernel kernel/ve/vecalls.c vestat_seq_show:
 * `nsecs_to_jiffies(kstat.cpustat[CPUTIME_USER])` on OpenVZ 7, the raw cputime on the RHEL6 kernel),
 * not in USER_HZ; the two `uptime` columns are jiffies and then cycles or ns.
 */
export function parseVestat(text: string, hz: number): Map<string, number> {
  const times = new Map<string, number>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || !/^\d+$/.test(fields[1]!)) continue;
    const ticks = Number(fields[1]) + Number(fields[2]) + Number(fields[3]);
    if (Number.isFinite(ticks)) times.set(fields[0]!, (ticks * 1000) / hz);
  }
  return times;
}

/** `vzctl version 4.9.4` and `nproc`'s number, from the host section of the listing script. */
export function parseHostFacts(text: string): HostFacts {
  const version = text.match(/vzctl version (\d+)\./);
  const cores = text.match(/^\s*(\d+)\s*$/m);
  return { vzctlMajor: version ? Number(version[1]) : null, cores: cores ? Number(cores[1]) : null };
}

/**
 * A status word of vzlist (OpenVZ 6: running, stopped, mounted, suspended; OpenVZ 7 adds paused and
 * unknown: vzctl src/vzlist.c ve_status) or prlctl (running, paused, stopped, suspended, mounted and
 * transitional ones: starting, stopping, migrating, ...: prlctl src/Utils.cpp vmstate2str), as
 * LBVM's state and, when the container cannot be moved now, why. `suspended` is a stopped container
 * with a saved dump (vzlist.c get_mounted_status), not a paused one.
 */
export function stateOf(word: string | undefined): { state: VmRunState; busy?: string } {
  switch (word) {
    case 'running':
      return { state: 'running' };
    case 'paused':
      return { state: 'paused' };
    case 'stopped':
    case 'mounted':
    case 'suspended':
      return { state: 'stopped' };
    case 'migrating':
      return { state: 'migrating', busy: 'state: migrating' };
    default:
      return { state: 'unknown', busy: `state: ${word ?? 'unknown'}` };
  }
}

/**
 * vCPUs of a container: its CPU count, or, when it has none (vzlist prints 0: `printf("%d",
 * p->cpunum < 0 ? 0 : p->cpunum)`; prlctl prints "unlimited"), its CPU limit in percent rounded up, or
 * else all the host's cores, which is what it may use (prl-disp getVcpuNum counts the host's CPUs too).
 */
export function containerCpus(
  cpus: number | string | null | undefined,
  cpulimitPercent: number | null | undefined,
  hostCores: number | null,
): number {
  const count = Number(cpus);
  if (Number.isFinite(count) && count > 0) return count;
  if (cpulimitPercent && cpulimitPercent > 0) return Math.min(Math.ceil(cpulimitPercent / 100), hostCores ?? Infinity);
  return hostCores ?? 1;
}

/** A name the tools print for "no name" (`-` in OpenVZ 7's vzlist, vzctl src/vzlist.c print_name) is no name: the container goes by its ctid. */
function nameOf(name: string | null | undefined, ctid: string): string {
  return name && name !== '-' ? name : ctid;
}

function container(
  id: string,
  name: string | null | undefined,
  status: string | undefined,
  host: string,
  sizes: Pick<VmInventory, 'vcpus' | 'memBytes' | 'memUsedBytes'>,
  cpuTimes: Map<string, number>,
): Container {
  const { state, busy } = stateOf(status);
  const vm: VmInventory = { name: nameOf(name, id), host, ...sizes, state };
  const cpuTimeMs = cpuTimes.get(id);
  if (cpuTimeMs !== undefined && (state === 'running' || state === 'paused')) vm.cpuTimeMs = cpuTimeMs;
  if (busy) vm.busy = busy;
  return { vm, ctid: id };
}

/**
 * The containers of a JSON listing, read one by one: vzlist prints its strings unescaped (vzctl
 * src/vzlist.c print_json_str: `printf("\"%s\"", s)`), so a `"` or `\` in one container's text makes
 * that container's entry unreadable, not the others'. vzlist writes one field per line and each
 * container between a line `{` and its matching `}`; prlctl's output is split the same way.
 */
export function splitJsonEntries(text: string): { entries: unknown[]; unreadable: string[] } {
  const entries: unknown[] = [];
  const unreadable: string[] = [];
  let block: string[] = [];
  let depth = 0;
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (depth === 0) {
      if (trimmed === '{') {
        block = [line];
        depth = 1;
      }
      continue;
    }
    block.push(line);
    if (/^[}\]]/.test(trimmed)) depth--;
    else if (/[{[]$/.test(trimmed)) depth++;
    if (depth === 0) {
      const source = block.join('\n').replace(/,\s*$/, '');
      try {
        entries.push(JSON.parse(source));
      } catch {
        unreadable.push(source.match(/"(?:ctid|ID|EnvID)":\s*"?([^",\s]+)/)?.[1] ?? source.slice(0, 40));
      }
    }
  }
  if (entries.length === 0 && unreadable.length === 0 && text.trim() !== '' && text.trim() !== '[]') JSON.parse(text); // not a listing at all: say why
  return { entries, unreadable };
}

/** `vzlist -j -a -o ctid,name,status,cpus,cpulimit,physpages`. Memory is the vSwap RAM limit (physpages, 4 KiB pages). */
export function parseVzlist(
  text: string,
  host: string,
  cpuTimes: Map<string, number>,
  hostCores: number | null,
): Listing {
  const { entries, unreadable } = splitJsonEntries(text);
  const containers = (entries as VzlistEntry[]).map((entry) => {
    const id = String(entry.ctid);
    const limitPages = entry.physpages?.limit;
    const memBytes =
      limitPages !== undefined && limitPages > 0 && limitPages < UNLIMITED_PAGES ? limitPages * PAGE_BYTES : 0;
    const memUsedBytes = Math.min((entry.physpages?.held ?? 0) * PAGE_BYTES, memBytes || Infinity);
    return container(
      id,
      entry.name,
      entry.status,
      host,
      { vcpus: containerCpus(entry.cpus, entry.cpulimit, hostCores), memBytes, memUsedBytes },
      cpuTimes,
    );
  });
  return { containers, unreadable };
}

/** "1024Mb", "2Gb" (prlctl's sizes) -> bytes. */
function prlctlBytes(text: string | undefined): number {
  const match = text?.match(/^(\d+(?:\.\d+)?)\s*([KMGT]?)b?$/i);
  if (!match) return 0;
  const power = { '': 0, K: 1, M: 2, G: 3, T: 4 }[match[2]!.toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  return Math.round(Number(match[1]) * 1024 ** power);
}

/** `prlctl list -j -i -a` -> containers and VMs alike. */
export function parsePrlctlList(
  text: string,
  host: string,
  cpuTimes: Map<string, number>,
  hostCores: number | null,
): Listing {
  const { entries, unreadable } = splitJsonEntries(text);
  const containers = (entries as PrlctlEntry[]).map((entry) => {
    const id = String(entry.EnvID ?? entry.ID ?? '');
    const sizes = {
      vcpus: containerCpus(entry.Hardware?.cpu?.cpus, null, hostCores),
      memBytes: prlctlBytes(entry.Hardware?.memory?.size),
      memUsedBytes: 0,
    };
    return container(id, entry.Name, entry.State, host, sizes, cpuTimes);
  });
  return { containers, unreadable };
}

export interface OpenvzDriverOptions {
  /** Host name -> ssh target. */
  targets: Record<string, string>;
  flavour: Flavour;
  sshOptions: string[];
  ssh: string;
  /** The hosts' CONFIG_HZ (vestat's unit). */
  kernelHz: number;
  log: Logger;
  env?: NodeJS.ProcessEnv;
}

/** vzmigrate's exit codes worth explaining (vzctl bin/vzmigrate.in: MIG_ERR_*). */
const VZMIGRATE_HINTS: Record<number, (from: string, to: string) => string> = {
  2: () => 'the container is not running, which vzmigrate --online needs',
  4: (from, to) =>
    `vzmigrate on ${from} could not log in to ${to} as root: it runs its own ssh (-o BatchMode=yes), not ` +
    `LBVM's drivers.openvz.sshOptions, so ${from}'s root public key must be in ${to}'s /root/.ssh/authorized_keys`,
  9: (_from, to) => `a container with this ctid already exists on ${to}`,
  20: (from) => `the container is locked on ${from} (another vzctl or vzmigrate works on it)`,
};

export class OpenvzDriver implements Driver {
  readonly name = 'openvz';
  readonly capabilities: DriverCapabilities = {
    live: true,
    checkpoint: false,
    cancel: false,
    progress: false,
    stats: true,
    localDisks: true,
  };

  constructor(private readonly options: OpenvzDriverOptions) {}

  static fromConfig(config: LbvmConfig, log: Logger): OpenvzDriver {
    const settings = config.drivers.openvz;
    const problems: string[] = [];
    if (Object.keys(settings.hosts).length === 0)
      problems.push(
        'drivers.openvz.hosts: no host has an ssh target; the openvz driver needs one per host, e.g. drivers.openvz.hosts: { n1: root@10.0.0.1 }',
      );
    for (const [host, target] of Object.entries(settings.hosts)) {
      const problem = checkSshTarget(target);
      if (problem) problems.push(`drivers.openvz.hosts.${host}: ${JSON.stringify(target)}: ${problem}`);
    }
    if (problems.length) throw new ConfigError(problems);
    return new OpenvzDriver({
      targets: settings.hosts,
      flavour: settings.flavour,
      sshOptions: settings.sshOptions,
      ssh: settings.ssh,
      kernelHz: settings.kernelHz,
      log,
    });
  }

  target(host: string): string {
    const target = this.options.targets[host];
    if (!target)
      throw new Error(
        `no ssh target for host ${JSON.stringify(host)}; add it to drivers.openvz.hosts (known: ${Object.keys(this.options.targets).join(', ')})`,
      );
    return target;
  }

  /** Runs `argv` on `host` through ssh; a failure names the host and what the remote side said. */
  private async remote(host: string, argv: string[], timeoutMs: number, label = argv[0]): Promise<string> {
    try {
      return (
        await runFile(this.options.ssh, sshArgv(this.options.sshOptions, this.target(host), argv), {
          env: this.options.env,
          timeoutMs,
        })
      ).stdout;
    } catch (error) {
      (error as Error).message = `${label} on ${host} (ssh ${this.target(host)}) failed: ${(error as Error).message}`;
      throw error;
    }
  }

  /** The host's containers, with their ctids, and what the host is (one ssh call; fixed words only, no names). */
  async list(host: string): Promise<{ listing: Listing; facts: HostFacts }> {
    const tool = this.options.flavour === 'vzctl' ? `vzlist -j -a -o ${VZLIST_FIELDS}` : 'prlctl list -j -i -a';
    const script =
      `${tool} && echo ${VESTAT_MARK} && (cat /proc/vz/vestat 2>/dev/null || true) && echo ` +
      `${HOST_MARK} && (vzctl --version 2>/dev/null || true) && (nproc 2>/dev/null || true)`;
    const output = await this.remote(host, ['sh', '-c', script], 60_000, tool.split(' ')[0]);
    const [listing = '', vestat = '', hostText = ''] = output.split(
      new RegExp(`^(?:${VESTAT_MARK}|${HOST_MARK})$`, 'm'),
    );
    const facts = parseHostFacts(hostText);
    const cpuTimes = parseVestat(vestat, this.options.kernelHz);
    try {
      const parsed =
        this.options.flavour === 'vzctl'
          ? parseVzlist(listing, host, cpuTimes, facts.cores)
          : parsePrlctlList(listing, host, cpuTimes, facts.cores);
      if (parsed.unreadable.length) {
        this.options.log.warn(
          { host, unreadable: parsed.unreadable },
          `${tool.split(' ')[0]} on ${host} printed ${parsed.unreadable.length} container(s) that are ` +
            `not valid JSON (a " or \\ in a text field, printed unescaped); they are left out of this round`,
        );
      }
      return { listing: parsed, facts };
    } catch (error) {
      throw new Error(
        `${tool.split(' ')[0]} on ${host}: could not read its JSON output (${(error as Error).message}): ${listing.slice(0, 200)}`,
      );
    }
  }

  async inventory(host: string): Promise<HostInventory> {
    return { host, vms: (await this.list(host)).listing.containers.map((entry) => entry.vm) };
  }

  async locate(vm: string): Promise<string | null> {
    const answers = await Promise.all(
      Object.keys(this.options.targets).map(async (host): Promise<HostAnswer> => {
        try {
          const found = (await this.inventory(host)).vms.filter((entry) => entry.name === vm);
          return {
            host,
            active: found.some((entry) => entry.state === 'running' || entry.state === 'paused'),
            defined: found.length > 0,
          };
        } catch (error) {
          return { host, active: false, defined: false, error: error as Error };
        }
      }),
    );
    return locateFromAnswers(vm, answers);
  }

  /**
   * The command run on the source host (before quoting): the ctid, never the name (OpenVZ 6's
   * vzmigrate looks a name up unquoted: `vzlist -o ctid -H $VEID`), `--online` only for a running
   * container, and a destination vzmigrate can use: OpenVZ 6 runs `ssh root@$host` itself, so it takes
   * a bare host; OpenVZ 7 and prlctl take `[user@]host`.
   */
  migrateCommand(entry: Container, to: string, facts: HostFacts): string[] {
    if (!CTID.test(entry.ctid))
      throw new Error(
        `container ${JSON.stringify(entry.vm.name)} has the id ${JSON.stringify(entry.ctid)}, which cannot be passed to a migration tool; nothing was done`,
      );
    const target = this.target(to);
    if (this.options.flavour === 'prlctl') return ['prlctl', 'migrate', entry.ctid, target];
    const live = entry.vm.state === 'running' || entry.vm.state === 'paused';
    const destination = facts.vzctlMajor !== null && facts.vzctlMajor >= 7 ? target : target.replace(/^[^@]*@/, '');
    return ['vzmigrate', ...(live ? ['--online'] : []), destination, entry.ctid];
  }

  async migrate(request: MigrateRequest): Promise<MigrateOutcome> {
    if (request.mode !== 'live')
      throw new Error(
        `the openvz driver migrates live only (migration.mode ${request.mode} is not supported); nothing was done`,
      );
    if (request.signal.aborted) throw (request.signal.reason as Error) ?? new Error('cancelled');
    const { listing, facts } = await this.list(request.from);
    const found = listing.containers.filter((entry) => entry.vm.name === request.vm);
    if (found.length !== 1) {
      throw new Error(
        `${found.length ? `${found.length} containers are` : 'no container is'} named ${JSON.stringify(request.vm)} on ` +
          `${request.from}${found.length ? ` (ctids ${found.map((entry) => entry.ctid).join(', ')}): give them unique names` : ''}; nothing was done`,
      );
    }
    const entry = found[0]!;
    if (entry.vm.busy)
      throw new Error(
        `container ${JSON.stringify(request.vm)} (${entry.ctid}) on ${request.from} ` +
          `is busy (${entry.vm.busy}): it is not moved until that ends; nothing was done`,
      );
    const command = this.migrateCommand(entry, request.to, facts);
    const startedMs = Date.now();
    const onAbort = () =>
      this.options.log.warn(
        { vm: request.vm, from: request.from, to: request.to },
        `${command[0]} cannot be cancelled once started; it runs to its end`,
      );
    request.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.remote(request.from, command, 0);
    } catch (error) {
      const code = error instanceof CommandFailed && typeof error.exitCode === 'number' ? error.exitCode : null;
      const hint =
        this.options.flavour === 'vzctl' && code !== null
          ? VZMIGRATE_HINTS[code]?.(request.from, request.to)
          : undefined;
      throw new Error(
        `migration of ${JSON.stringify(request.vm)} (${entry.ctid}) from ${request.from} ` +
          `to ${request.to} failed: ${(error as Error).message}${hint ? `; ${hint}` : ''}`,
      );
    } finally {
      request.signal.removeEventListener('abort', onAbort);
    }
    if (command[0] === 'vzmigrate' && !command.includes('--online'))
      this.options.log.info({ vm: request.vm, ctid: entry.ctid }, `${request.vm} was not running: moved offline`);
    return { totalMs: Date.now() - startedMs, downtimeMs: null, bytesCopied: 0 };
  }

  async close(): Promise<void> {}
}
