/**
 * What the libvirt driver says to `virsh` and how it reads the answers. Pure: argv arrays in, parsed
 * records out; the driver runs them with `runFile` (execFile, never a shell).
 *
 * Every domain name is given as the value of a named option (`--domain NAME`), so a VM called
 * `--undefinesource` or `x; rm -rf /` is one argument, never an option or a command.
 */
import { parseBytes } from '../../units.ts';
import type { VmInventory } from '../driver.ts';
import type { VmRunState } from '../../model/index.ts';

/** `virsh domstats --raw`: one record of `key=value` lines per domain, in the order listed. */
export function parseDomstats(text: string): Map<string, Record<string, string>> {
  const domains = new Map<string, Record<string, string>>();
  let current: Record<string, string> | null = null;
  for (const line of text.split('\n')) {
    // "Domain: 'NAME'": the name is everything between the first and the last quote of the line.
    if (line.startsWith("Domain: '") && line.endsWith("'")) {
      current = {};
      domains.set(line.slice("Domain: '".length, -1), current);
      continue;
    }
    const trimmed = line.trim();
    const equals = trimmed.indexOf('=');
    if (current && equals > 0) current[trimmed.slice(0, equals)] = trimmed.slice(equals + 1);
  }
  return domains;
}

/** `virsh list --all --id --name`: "ID NAME" per line ("-" for a domain that is not running). */
export function parseIdNames(text: string): Map<string, string> {
  const ids = new Map<string, string>();
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    ids.set(line.slice(space + 1), line.slice(0, space));
  }
  return ids;
}

/** `virsh dominfo` / `virsh domjobinfo`: "Key:   value" lines. */
export function parseColonRecord(text: string): Record<string, string> {
  const record: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) record[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return record;
}

/** "67.250 MiB", "0.000 B", "8388608 KiB" -> bytes. */
export function virshBytes(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = parseBytes(value.replace(/\s+/g, ''));
  return parsed ?? undefined;
}

/** "232          ms" -> 232 */
function virshMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = value.match(/^(\d+(?:\.\d+)?)\s*ms$/);
  return match ? Number(match[1]) : undefined;
}

export interface JobInfo {
  /** "Unbounded", "Completed", "None", "Failed", "Cancelled". */
  type: string;
  dataProcessedBytes?: number;
  dataRemainingBytes?: number;
  dataTotalBytes?: number;
  expectedDowntimeMs?: number;
  totalDowntimeMs?: number;
  elapsedMs?: number;
}

/** `virsh domjobinfo [--completed]`. */
export function parseJobInfo(text: string): JobInfo {
  const record = parseColonRecord(text);
  return {
    type: record['Job type'] ?? 'None',
    dataProcessedBytes: virshBytes(record['Data processed']),
    dataRemainingBytes: virshBytes(record['Data remaining']),
    dataTotalBytes: virshBytes(record['Data total']),
    expectedDowntimeMs: virshMs(record['Expected downtime']),
    totalDowntimeMs: virshMs(record['Total downtime']),
    elapsedMs: virshMs(record['Time elapsed']),
  };
}

/** libvirt's virDomainState numbers (state.state) -> LBVM's run states. */
export function runState(state: string | undefined): VmRunState {
  switch (state) {
    case '1': // running
    case '2': // blocked
      return 'running';
    case '3': // paused
    case '7': // pmsuspended
      return 'paused';
    case '4': // being shut down
    case '5': // shut off
    case '6': // crashed
      return 'stopped';
    default:
      return 'unknown';
  }
}

const number = (value: string | undefined): number | undefined => {
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : undefined;
};

/** Sums `PREFIX.N.FIELD` over N < PREFIX.count (all block devices, all interfaces). */
function sumIndexed(stats: Record<string, string>, prefix: 'block' | 'net', field: string): number | undefined {
  const count = number(stats[`${prefix}.count`]);
  if (count === undefined) return undefined;
  let total = 0;
  for (let index = 0; index < count; index++) total += number(stats[`${prefix}.${index}.${field}`]) ?? 0;
  return total;
}

/**
 * One domain's stats as a VmInventory. Memory: `balloon.current` (KiB) is the guest's size; use is
 * what the guest reports through the balloon driver (available - unused) when it does, else the
 * QEMU process's resident set (`balloon.rss`, capped at the size: it includes QEMU's own overhead).
 * `dominfo` fills what a hypervisor driver does not put in domstats (libvirt's test driver).
 */
export function vmFromStats(
  name: string,
  host: string,
  stats: Record<string, string>,
  dominfo?: Record<string, string>,
  id?: string,
): VmInventory {
  const kib = (value: number | undefined) => (value === undefined ? undefined : value * 1024);
  const memBytes =
    kib(number(stats['balloon.current'])) ??
    virshBytes(dominfo?.['Used memory']) ??
    virshBytes(dominfo?.['Max memory']) ??
    0;
  const available = kib(number(stats['balloon.available']));
  const unused = kib(number(stats['balloon.unused']));
  const rss = kib(number(stats['balloon.rss']));
  const state = runState(stats['state.state']);
  let memUsedBytes =
    available !== undefined && unused !== undefined
      ? available - unused
      : rss !== undefined
        ? Math.min(rss, memBytes)
        : state === 'running'
          ? memBytes
          : 0;
  memUsedBytes = Math.max(0, Math.min(memUsedBytes, memBytes));
  const vm: VmInventory = {
    name,
    host,
    vcpus: number(stats['vcpu.current']) ?? number(dominfo?.['CPU(s)']) ?? 0,
    memBytes,
    memUsedBytes,
    state,
  };
  // A running domain's id changes when it is restarted: its counters start again from zero.
  if (id && id !== '-') vm.instanceId = id;
  const cpuTimeNs = number(stats['cpu.time']);
  if (cpuTimeNs !== undefined) vm.cpuTimeMs = cpuTimeNs / 1e6;
  else if (dominfo?.['CPU time']) {
    const seconds = Number.parseFloat(dominfo['CPU time']);
    if (Number.isFinite(seconds)) vm.cpuTimeMs = seconds * 1000;
  }
  const counters = {
    diskReadBytes: sumIndexed(stats, 'block', 'rd.bytes'),
    diskWriteBytes: sumIndexed(stats, 'block', 'wr.bytes'),
    netRxBytes: sumIndexed(stats, 'net', 'rx.bytes'),
    netTxBytes: sumIndexed(stats, 'net', 'tx.bytes'),
  };
  for (const [key, value] of Object.entries(counters))
    if (value !== undefined) (vm as unknown as Record<string, number>)[key] = value;
  return vm;
}

export interface MigrateFlags {
  autoConverge: boolean;
  /** MiB/s, or undefined for no cap. */
  bandwidthMiBPerSec?: number;
  /** `--copy-storage-all`: copy local disks too. */
  copyStorage?: boolean;
}

/** `virsh -c SOURCE migrate --live --persistent --undefinesource [...] --domain VM --desturi DEST`. */
export function migrateArgv(sourceUri: string, vm: string, destinationUri: string, flags: MigrateFlags): string[] {
  const argv = ['-c', sourceUri, 'migrate', '--live', '--persistent', '--undefinesource'];
  if (flags.autoConverge) argv.push('--auto-converge');
  if (flags.copyStorage) argv.push('--copy-storage-all');
  if (flags.bandwidthMiBPerSec !== undefined) argv.push('--bandwidth', String(flags.bandwidthMiBPerSec));
  argv.push('--domain', vm, '--desturi', destinationUri);
  return argv;
}

export const domstatsArgv = (uri: string) => ['-c', uri, 'domstats', '--raw'];
export const listArgv = (uri: string) => ['-c', uri, 'list', '--all', '--id', '--name'];
export const dominfoArgv = (uri: string, vm: string) => ['-c', uri, 'dominfo', '--domain', vm];
export const domstateArgv = (uri: string, vm: string) => ['-c', uri, 'domstate', '--domain', vm];
export const jobinfoArgv = (uri: string, vm: string, completed = false) => [
  '-c',
  uri,
  'domjobinfo',
  '--domain',
  vm,
  ...(completed ? ['--completed'] : []),
];
export const jobabortArgv = (uri: string, vm: string) => ['-c', uri, 'domjobabort', '--domain', vm];

/** virsh's message for a domain that is not defined on that connection. */
export function isNoDomain(stderr: string): boolean {
  return /Domain not found|failed to get domain/i.test(stderr);
}
