/**
 * Pure conversions from readings to model samples: two /proc readings -> a host sample; a driver's
 * inventory plus the previous round's counters -> VM samples; guests' samples -> a logical host's
 * sample. No I/O and no clock: times come in with the readings.
 */
import type { VmInventory } from '../src/drivers/driver.ts';
import { VM_TEXT_FIELDS, type HostSample, type VmSample } from '../src/model/index.ts';
import { cpuCoresBetween, type ProcReading } from './proc.ts';

/** A rate from two counter readings, or undefined when there is no usable pair (reset, no time). */
export function rate(before: number | undefined, after: number | undefined, elapsedMs: number): number | undefined {
  if (before === undefined || after === undefined || elapsedMs <= 0 || after < before) return undefined;
  return ((after - before) * 1000) / elapsedMs;
}

/** The host sample from a previous and a current /proc reading (CPU, disk and network are averages between them). */
export function hostSampleFromProc(
  host: string,
  before: ProcReading,
  after: ProcReading,
  vmCount?: number,
  memCommittedBytes?: number,
): HostSample {
  const elapsedMs = after.timeMs - before.timeMs;
  const cpu = cpuCoresBetween(before.stat, after.stat);
  const sample: HostSample = {
    kind: 'host',
    host,
    timeMs: after.timeMs,
    cpuCores: after.stat.cpuCount,
    cpuUsedCores: cpu?.usedCores ?? 0,
    memBytes: after.mem.totalBytes,
    memUsedBytes: after.mem.usedBytes,
    memAvailableBytes: after.mem.availableBytes,
    load1: after.load.load1,
    load5: after.load.load5,
    load15: after.load.load15,
  };
  if (cpu) sample.cpuStealCores = cpu.stealCores;
  const optional = {
    diskReadBytesPerSec: rate(before.disk.readBytes, after.disk.readBytes, elapsedMs),
    diskWriteBytesPerSec: rate(before.disk.writeBytes, after.disk.writeBytes, elapsedMs),
    netRxBytesPerSec: rate(before.net.rxBytes, after.net.rxBytes, elapsedMs),
    netTxBytesPerSec: rate(before.net.txBytes, after.net.txBytes, elapsedMs),
  };
  for (const [key, value] of Object.entries(optional))
    if (value !== undefined) (sample as unknown as Record<string, number>)[key] = value;
  if (vmCount !== undefined) sample.vmCount = vmCount;
  if (memCommittedBytes !== undefined) sample.memCommittedBytes = memCommittedBytes;
  return sample;
}

/** What is kept of a VM between rounds to turn its cumulative counters into rates. */
export interface VmCounters {
  name: string;
  instanceId?: string;
  timeMs: number;
  cpuTimeMs?: number;
  diskReadBytes?: number;
  diskWriteBytes?: number;
  netRxBytes?: number;
  netTxBytes?: number;
}

/** Counters are matched by instanceId when the driver gives one (a restarted or migrated-back VM starts afresh), else by name. */
export function counterKey(vm: { name: string; instanceId?: string }): string {
  return vm.instanceId !== undefined ? `id:${vm.instanceId}` : `name:${vm.name}`;
}

export interface VmConversion {
  samples: VmSample[];
  /** Counters to keep for the next round, by counterKey. */
  counters: Record<string, VmCounters>;
  /** VMs whose CPU use could not be told this round (no previous counters, or they were reset). */
  withoutBaseline: string[];
}

/**
 * VM samples from one inventory taken at `timeMs`. CPU, disk and network come from the driver's own
 * rates when it gives them, else from the counters' change since `previous` (same instance only).
 * A VM whose CPU use cannot be told yet gets no sample this round (a made-up 0 would look idle).
 */
export function vmSamplesFromInventory(
  host: string,
  vms: readonly VmInventory[],
  timeMs: number,
  previous: Readonly<Record<string, VmCounters>>,
): VmConversion {
  const samples: VmSample[] = [];
  const counters: Record<string, VmCounters> = {};
  const withoutBaseline: string[] = [];
  for (const vm of vms) {
    const key = counterKey(vm);
    const before = previous[key];
    const elapsedMs = before ? timeMs - before.timeMs : 0;
    counters[key] = {
      name: vm.name,
      instanceId: vm.instanceId,
      timeMs,
      cpuTimeMs: vm.cpuTimeMs,
      diskReadBytes: vm.diskReadBytes,
      diskWriteBytes: vm.diskWriteBytes,
      netRxBytes: vm.netRxBytes,
      netTxBytes: vm.netTxBytes,
    };
    const cpuFromCounter =
      before?.cpuTimeMs !== undefined && vm.cpuTimeMs !== undefined
        ? rate(before.cpuTimeMs, vm.cpuTimeMs, elapsedMs)
        : undefined;
    // cpuTimeMs per second of wall time, /1000 -> cores.
    const cpuUsedCores = vm.cpuUsedCores ?? (cpuFromCounter === undefined ? undefined : cpuFromCounter / 1000);
    const stopped = vm.state === 'stopped';
    if (cpuUsedCores === undefined && !stopped) {
      withoutBaseline.push(vm.name);
      continue;
    }
    const sample: VmSample = {
      kind: 'vm',
      vm: vm.name,
      host,
      timeMs,
      vcpus: vm.vcpus,
      cpuUsedCores: cpuUsedCores ?? 0,
      memBytes: vm.memBytes,
      memUsedBytes: vm.memUsedBytes,
      state: vm.state,
    };
    const optional: Partial<VmSample> = {
      memDirtyBytesPerSec: vm.memDirtyBytesPerSec,
      localDiskBytes: vm.localDiskBytes,
      diskReadBytesPerSec: vm.diskReadBytesPerSec ?? rate(before?.diskReadBytes, vm.diskReadBytes, elapsedMs),
      diskWriteBytesPerSec: vm.diskWriteBytesPerSec ?? rate(before?.diskWriteBytes, vm.diskWriteBytes, elapsedMs),
      netRxBytesPerSec: vm.netRxBytesPerSec ?? rate(before?.netRxBytes, vm.netRxBytes, elapsedMs),
      netTxBytesPerSec: vm.netTxBytesPerSec ?? rate(before?.netTxBytes, vm.netTxBytes, elapsedMs),
    };
    for (const [field, value] of Object.entries(optional))
      if (value !== undefined) (sample as unknown as Record<string, unknown>)[field] = value;
    if (vm.tags && vm.tags.length > 0) sample.tags = [...vm.tags];
    for (const field of VM_TEXT_FIELDS) if (vm[field]) sample[field] = vm[field];
    samples.push(sample);
  }
  return { samples, counters, withoutBaseline };
}

/**
 * A logical host (several agents on one machine, each with a configured capacity): its use is the
 * sum of its guests', its capacity the configured one.
 */
export function logicalHostSample(
  host: string,
  timeMs: number,
  capacity: { cpuCores: number; memBytes: number },
  guests: readonly VmSample[],
  vmCount: number,
  memCommittedBytes?: number,
): HostSample {
  const sum = (field: keyof VmSample) =>
    guests.reduce((total, guest) => total + ((guest[field] as number | undefined) ?? 0), 0);
  const has = (field: keyof VmSample) => guests.some((guest) => guest[field] !== undefined);
  const memUsedBytes = sum('memUsedBytes');
  const sample: HostSample = {
    kind: 'host',
    host,
    timeMs,
    cpuCores: capacity.cpuCores,
    cpuUsedCores: sum('cpuUsedCores'),
    memBytes: capacity.memBytes,
    memUsedBytes,
    memAvailableBytes: Math.max(0, capacity.memBytes - memUsedBytes),
    vmCount,
    memCommittedBytes: memCommittedBytes ?? sum('memBytes'),
  };
  for (const field of [
    'diskReadBytesPerSec',
    'diskWriteBytesPerSec',
    'netRxBytesPerSec',
    'netTxBytesPerSec',
  ] as const) {
    if (has(field)) sample[field] = sum(field);
  }
  return sample;
}
