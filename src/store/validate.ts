/**
 * The one check every sample passes before it is written and again when it is read back: the right
 * kind, names that are non-empty strings, numbers that are finite, not negative and not absurd, and a
 * time that is neither before 2000 nor in the future (nor, checked even on write, after 2200). A
 * reader skips what fails, and what `HostCrossCheck` refuses; nothing bad reaches a policy. The result
 * is a fresh object holding only the model's fields.
 */
import {
  HOST_NUMERIC_FIELDS,
  VM_NUMERIC_FIELDS,
  VM_TEXT_FIELDS,
  type HostSample,
  type LbvmEvent,
  type Sample,
  type VmRunState,
  type VmSample,
} from '../model/index.ts';

/** Samples dated further ahead than this (clock skew between hosts) are refused as future-dated. */
export const DEFAULT_FUTURE_TOLERANCE_MS = 5 * 60_000;
/** 2000-01-01T00:00:00Z: anything older is a broken clock or a unit mistake (seconds for ms). */
const OLDEST_MS = 946_684_800_000;
/**
 * 2200-01-01T00:00:00Z: anything later is a unit mistake (microseconds for ms), checked even on write,
 * where "now" is not known: InfluxDB cannot store it (its times end in 2262) and drops it while
 * answering "dropped=0".
 */
const LATEST_MS = 7_258_118_400_000;

/**
 * Upper bounds beyond which a value is a bug, not a measurement. Generous on purpose: they catch
 * "a VM using 900 cores" and byte counts read as rates, not unusual but real machines.
 */
export const LIMITS = {
  hostCores: 4096,
  vmVcpus: 1024,
  memBytes: 64 * 1024 ** 4,
  /** A VM's local disks: 1 PiB. */
  diskBytes: 1024 ** 5,
  /** Bytes per second of disk or network: 1 TB/s. */
  rateBytesPerSec: 1e12,
  load: 100_000,
  vmCount: 100_000,
};

/** A VM's process may use a little more than its vCPUs (I/O threads, emulation): this much slack. */
export function maxVmCores(vcpus: number): number {
  return Math.max(vcpus * 1.5, vcpus + 1);
}

/** Nor can it use much more than the cores of the host it runs on (a logical host may be a little overcommitted). */
export function maxVmCoresOnHost(hostCores: number): number {
  return hostCores * 1.25 + 0.5;
}

/**
 * Memory in use beyond this is not a measurement: a VM's QEMU process holds a little more than its
 * guest's memory (device and emulation overhead), a logical host the sum of its guests (which an
 * operator may overcommit); neither holds more than these bounds.
 */
export function maxMemUsedBytes(kind: Sample['kind'], memBytes: number): number {
  return kind === 'vm' ? memBytes * 1.5 + 2 ** 30 : memBytes * 2 + 2 ** 30;
}

/** A VM's `busy` or `haState` longer than this is not a hypervisor's word but a bug. */
const MAX_TEXT_FIELD = 200;

const VM_STATES: ReadonlySet<string> = new Set<VmRunState>(['running', 'paused', 'migrating', 'stopped', 'unknown']);

/** Why a sample dated after now (plus the clock-skew tolerance) is refused. */
export function futureDated(timeMs: number, nowMs: number): string {
  return `future-dated: timeMs ${new Date(timeMs).toISOString()} is after now (${new Date(nowMs).toISOString()})`;
}

export type Verdict<T> = { ok: true; value: T } | { ok: false; reason: string };

const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

function checkNumbers(
  input: Record<string, unknown>,
  fields: readonly string[],
  required: readonly string[],
  out: Record<string, unknown>,
): string | null {
  for (const field of fields) {
    const value = input[field];
    if (value === undefined || (value === null && !required.includes(field))) {
      if (required.includes(field)) return `missing ${field}`;
      continue;
    }
    if (typeof value !== 'number') return `${field} is ${value === null ? 'null' : typeof value}, expected a number`;
    if (!Number.isFinite(value)) return `${field} is ${value}, expected a finite number`;
    if (value < 0) return `${field} is negative (${value})`;
    out[field] = value;
  }
  return null;
}

function checkName(input: Record<string, unknown>, field: string): string | null {
  const value = input[field];
  if (typeof value !== 'string' || value.length === 0) return `${field} is not a non-empty string`;
  return null;
}

export interface ValidateOptions {
  nowMs: number;
  futureToleranceMs?: number;
}

/** Checks one parsed JSON value as a sample. */
export function validateSample(input: unknown, options: ValidateOptions): Verdict<Sample> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail('not an object');
  const record = input as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  const problem = (() => {
    if (record.kind === 'host') {
      out.kind = 'host';
      const nameProblem = checkName(record, 'host');
      if (nameProblem) return nameProblem;
      out.host = record.host;
      const numbers = checkNumbers(
        record,
        HOST_NUMERIC_FIELDS,
        ['timeMs', 'cpuCores', 'cpuUsedCores', 'memBytes', 'memUsedBytes'],
        out,
      );
      if (numbers) return numbers;
      const s = out as unknown as HostSample;
      if (s.cpuCores > LIMITS.hostCores) return `cpuCores ${s.cpuCores} is absurd (> ${LIMITS.hostCores})`;
      if (s.cpuUsedCores > LIMITS.hostCores) return `cpuUsedCores ${s.cpuUsedCores} is absurd (> ${LIMITS.hostCores})`;
      if ((s.cpuStealCores ?? 0) > LIMITS.hostCores) return `cpuStealCores ${s.cpuStealCores} is absurd`;
      for (const field of ['memBytes', 'memUsedBytes', 'memAvailableBytes', 'memCommittedBytes'] as const) {
        if ((s[field] ?? 0) > LIMITS.memBytes) return `${field} ${s[field]} is absurd (> 64 TiB)`;
      }
      if (s.memUsedBytes > maxMemUsedBytes('host', s.memBytes))
        return `memUsedBytes ${s.memUsedBytes} is absurd for memBytes ${s.memBytes}`;
      for (const field of ['load1', 'load5', 'load15'] as const) {
        if ((s[field] ?? 0) > LIMITS.load) return `${field} ${s[field]} is absurd`;
      }
      if ((s.vmCount ?? 0) > LIMITS.vmCount) return `vmCount ${s.vmCount} is absurd`;
      for (const field of [
        'diskReadBytesPerSec',
        'diskWriteBytesPerSec',
        'netRxBytesPerSec',
        'netTxBytesPerSec',
      ] as const) {
        if ((s[field] ?? 0) > LIMITS.rateBytesPerSec) return `${field} ${s[field]} is absurd (> 1 TB/s)`;
      }
      return null;
    }
    if (record.kind === 'vm') {
      out.kind = 'vm';
      const nameProblem = checkName(record, 'vm') ?? checkName(record, 'host');
      if (nameProblem) return nameProblem;
      out.vm = record.vm;
      out.host = record.host;
      const numbers = checkNumbers(
        record,
        VM_NUMERIC_FIELDS,
        ['timeMs', 'vcpus', 'cpuUsedCores', 'memBytes', 'memUsedBytes'],
        out,
      );
      if (numbers) return numbers;
      const s = out as unknown as VmSample;
      if (s.vcpus > LIMITS.vmVcpus) return `vcpus ${s.vcpus} is absurd (> ${LIMITS.vmVcpus})`;
      if (s.cpuUsedCores > maxVmCores(s.vcpus)) return `cpuUsedCores ${s.cpuUsedCores} is absurd for ${s.vcpus} vCPUs`;
      if (s.memBytes > LIMITS.memBytes) return `memBytes ${s.memBytes} is absurd (> 64 TiB)`;
      if (s.memUsedBytes > LIMITS.memBytes) return `memUsedBytes ${s.memUsedBytes} is absurd (> 64 TiB)`;
      if (s.memUsedBytes > maxMemUsedBytes('vm', s.memBytes))
        return `memUsedBytes ${s.memUsedBytes} is absurd for memBytes ${s.memBytes}`;
      if ((s.localDiskBytes ?? 0) > LIMITS.diskBytes) return `localDiskBytes ${s.localDiskBytes} is absurd (> 1 PiB)`;
      for (const field of [
        'memDirtyBytesPerSec',
        'diskReadBytesPerSec',
        'diskWriteBytesPerSec',
        'netRxBytesPerSec',
        'netTxBytesPerSec',
      ] as const) {
        if ((s[field] ?? 0) > LIMITS.rateBytesPerSec) return `${field} ${s[field]} is absurd (> 1 TB/s)`;
      }
      if (record.state !== undefined && record.state !== null) {
        if (typeof record.state !== 'string' || !VM_STATES.has(record.state))
          return `state ${JSON.stringify(record.state)} is not a VM state`;
        out.state = record.state;
      }
      for (const field of VM_TEXT_FIELDS) {
        const value = record[field];
        if (value === undefined || value === null || value === '') continue;
        if (typeof value !== 'string' || value.length > MAX_TEXT_FIELD)
          return `${field} is not a string of up to ${MAX_TEXT_FIELD} characters`;
        out[field] = value;
      }
      if (record.tags !== undefined && record.tags !== null) {
        if (!Array.isArray(record.tags) || !record.tags.every((tag) => typeof tag === 'string'))
          return 'tags is not a list of strings';
        out.tags = [...record.tags];
      }
      return null;
    }
    return `kind is ${JSON.stringify(record.kind)}, expected "host" or "vm"`;
  })();
  if (problem) return fail(problem);
  const timeMs = out.timeMs as number;
  if (timeMs < OLDEST_MS) return fail(`timeMs ${timeMs} is before 2000 (seconds instead of milliseconds?)`);
  if (timeMs > LATEST_MS) return fail(`timeMs ${timeMs} is after 2200 (microseconds instead of milliseconds?)`);
  const tolerance = options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS;
  if (timeMs > options.nowMs + tolerance) return fail(futureDated(timeMs, options.nowMs));
  return { ok: true, value: out as unknown as Sample };
}

/**
 * The checks one sample cannot make alone, for a reader streaming a window: a VM using more cores
 * than the host it runs on has. Hosts are known from their samples read so far (a host's sample of a
 * round comes before its VMs' in both stores); a VM whose host is not known yet is not checked.
 */
export class HostCrossCheck {
  private readonly hostCores = new Map<string, number>();

  /** Null when the sample passes; else why it is refused. */
  check(sample: Sample): string | null {
    if (sample.kind === 'host') {
      this.hostCores.set(sample.host, sample.cpuCores);
      return null;
    }
    return this.vmCoresProblem(sample.host, sample.cpuUsedCores);
  }

  /** Null when a VM on `host` may use `cores`; else why not. */
  vmCoresProblem(host: string, cores: number): string | null {
    const hostCores = this.hostCores.get(host);
    if (hostCores !== undefined && cores > maxVmCoresOnHost(hostCores)) {
      return `cpuUsedCores ${cores} is absurd for a VM on a host of ${hostCores} cores`;
    }
    return null;
  }
}

/** Events carry free text; only the type and time are checked. */
export function validateEvent(input: unknown): Verdict<LbvmEvent> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return fail('not an object');
  const record = input as Record<string, unknown>;
  if (typeof record.type !== 'string' || record.type.length === 0) return fail('type is not a non-empty string');
  if (typeof record.timeMs !== 'number' || !Number.isFinite(record.timeMs) || record.timeMs < OLDEST_MS)
    return fail('timeMs is not a valid time');
  return { ok: true, value: record as unknown as LbvmEvent };
}

/** Counts skipped items by reason and keeps the first few as examples. */
export class SkipCounter {
  skipped = 0;
  byReason: Record<string, number> = {};
  examples: string[] = [];
  constructor(private readonly maxExamples = 20) {}

  add(where: string, reason: string): void {
    this.skipped++;
    const key = reason.replace(/-?\d[\d.e+:TZ-]*/g, 'N').slice(0, 80);
    this.byReason[key] = (this.byReason[key] ?? 0) + 1;
    if (this.examples.length < this.maxExamples) this.examples.push(`${where}: ${reason}`);
  }

  report() {
    return { skipped: this.skipped, byReason: { ...this.byReason }, examples: [...this.examples] };
  }
}

/**
 * Write-side screen: samples that would be skipped by every reader (NaN, negative, absurd) are set
 * aside before they are stored, counted and logged once. Time is not checked here: a spooled sample
 * is old on purpose, and the collector's clock is "now".
 */
export function screenSamples(
  samples: readonly Sample[],
  log: { warn: (object: object, message: string) => void } | undefined,
  store: string,
): { valid: Sample[]; rejected: number; rejectedReasons: string[] } {
  let valid: Sample[] | null = null;
  const counter = new SkipCounter(5);
  for (let index = 0; index < samples.length; index++) {
    const sample = samples[index]!;
    const verdict = validateSample(sample, { nowMs: Number.MAX_SAFE_INTEGER / 2 });
    if (verdict.ok) {
      valid?.push(sample);
      continue;
    }
    valid ??= samples.slice(0, index);
    const name =
      sample && typeof sample === 'object'
        ? `${String((sample as Sample).host)}${(sample as Sample).kind === 'vm' ? `/${String((sample as { vm?: unknown }).vm)}` : ''}`
        : '?';
    counter.add(name.length > 80 ? `${name.slice(0, 77)}...` : name, verdict.reason);
  }
  if (counter.skipped > 0) {
    log?.warn(
      { store, rejected: counter.skipped, byReason: counter.byReason, examples: counter.examples },
      `set aside ${counter.skipped} invalid samples before writing to ${store}: ${counter.examples.slice(0, 3).join('; ')}`,
    );
  }
  return {
    valid: valid ?? [...samples],
    rejected: counter.skipped,
    rejectedReasons: Object.entries(counter.byReason).map(([reason, count]) => `${count} ${reason}`),
  };
}
