/**
 * Readers of the host's /proc: pure parsers of each file's text (tested on fixed text), and a thin
 * layer that reads the files. Counters come out raw (ticks, bytes, sectors); `host.ts` turns two
 * readings into rates.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

/** Aggregate CPU time from the first `cpu` line of /proc/stat, in USER_HZ ticks. */
export interface CpuTicks {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
}

export interface ProcStat {
  /** Logical CPUs (`cpuN` lines). */
  cpuCount: number;
  total: CpuTicks;
}

/** /proc/stat: `cpu  user nice system idle iowait irq softirq steal guest guest_nice`, then `cpuN ...`. */
export function parseProcStat(text: string): ProcStat {
  let total: CpuTicks | null = null;
  let cpuCount = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('cpu ')) {
      const values = line.trim().split(/\s+/).slice(1).map(Number);
      if (values.length < 4 || values.some((value) => !Number.isFinite(value)))
        throw new Error(`/proc/stat: unreadable cpu line: ${line}`);
      const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = values;
      total = { user, nice, system, idle, iowait, irq, softirq, steal };
    } else if (/^cpu\d+\s/.test(line)) {
      cpuCount++;
    }
  }
  if (!total || cpuCount === 0) throw new Error('/proc/stat: no cpu lines');
  return { cpuCount, total };
}

/**
 * Cores busy and stolen between two readings. Guest time is already inside user and nice, so it is
 * not added again. busy = user + nice + system + irq + softirq; all = busy + idle + iowait + steal;
 * cores = cpuCount × Δbusy / Δall (the ratio needs no USER_HZ and no wall clock).
 */
export function cpuCoresBetween(before: ProcStat, after: ProcStat): { usedCores: number; stealCores: number } | null {
  const busy = (t: CpuTicks) => t.user + t.nice + t.system + t.irq + t.softirq;
  const all = (t: CpuTicks) => busy(t) + t.idle + t.iowait + t.steal;
  const deltaAll = all(after.total) - all(before.total);
  const deltaBusy = busy(after.total) - busy(before.total);
  const deltaSteal = after.total.steal - before.total.steal;
  // Counters went backwards (reboot) or no time passed: no rate from this pair.
  if (deltaAll <= 0 || deltaBusy < 0 || deltaSteal < 0) return null;
  return {
    usedCores: (after.cpuCount * deltaBusy) / deltaAll,
    stealCores: (after.cpuCount * deltaSteal) / deltaAll,
  };
}

export interface MemInfo {
  totalBytes: number;
  usedBytes: number;
  availableBytes: number;
}

/** /proc/meminfo (kB values). used = MemTotal - MemAvailable (or - MemFree - Buffers - Cached on old kernels). */
export function parseMeminfo(text: string): MemInfo {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = line.match(/^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?/);
    if (match) values.set(match[1]!, Number(match[2]) * (line.includes('kB') ? 1024 : 1));
  }
  const total = values.get('MemTotal');
  if (total === undefined) throw new Error('/proc/meminfo: no MemTotal');
  const available =
    values.get('MemAvailable') ??
    (values.get('MemFree') ?? 0) + (values.get('Buffers') ?? 0) + (values.get('Cached') ?? 0);
  return { totalBytes: total, availableBytes: available, usedBytes: Math.max(0, total - available) };
}

/** /proc/loadavg: `0.52 0.58 0.59 1/467 12345`. */
export function parseLoadavg(text: string): { load1: number; load5: number; load15: number } {
  const [load1, load5, load15] = text.trim().split(/\s+/).map(Number);
  if (![load1, load5, load15].every((value) => Number.isFinite(value)))
    throw new Error(`/proc/loadavg: unreadable: ${text.trim()}`);
  return { load1: load1!, load5: load5!, load15: load15! };
}

export interface DeviceBytes {
  readBytes: number;
  writeBytes: number;
}

/**
 * /proc/diskstats: `major minor name reads merged sectorsRead msRead writes merged sectorsWritten ...`.
 * Sectors are 512 bytes whatever the device's sector size (see the kernel's iostats documentation).
 */
export function parseDiskstats(text: string): Map<string, DeviceBytes> {
  const devices = new Map<string, DeviceBytes>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const sectorsRead = Number(fields[5]);
    const sectorsWritten = Number(fields[9]);
    if (!Number.isFinite(sectorsRead) || !Number.isFinite(sectorsWritten)) continue;
    devices.set(fields[2]!, { readBytes: sectorsRead * 512, writeBytes: sectorsWritten * 512 });
  }
  return devices;
}

/** /proc/net/dev: `iface: rxBytes rxPackets ... (8 fields) txBytes ...`. */
export function parseNetDev(text: string): Map<string, { rxBytes: number; txBytes: number }> {
  const interfaces = new Map<string, { rxBytes: number; txBytes: number }>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon === -1 || line.includes('|')) continue;
    const name = line.slice(0, colon).trim();
    const fields = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (!name || fields.length < 9 || !Number.isFinite(fields[0]) || !Number.isFinite(fields[8])) continue;
    interfaces.set(name, { rxBytes: fields[0]!, txBytes: fields[8]! });
  }
  return interfaces;
}

/** Whole disks: a partition is named after its disk (sda1, nvme0n1p1) and is skipped when its disk is listed. */
export function isPartitionOf(name: string, disks: Iterable<string>): boolean {
  for (const disk of disks) {
    if (name !== disk && name.startsWith(disk) && /^p?\d+$/.test(name.slice(disk.length))) return true;
  }
  return false;
}

/** One reading of every counter the host sample needs, with the time it was taken. */
export interface ProcReading {
  timeMs: number;
  stat: ProcStat;
  mem: MemInfo;
  load: { load1: number; load5: number; load15: number };
  /** Summed over physical whole disks. */
  disk: DeviceBytes;
  /** Summed over physical interfaces (or every non-loopback one when /sys cannot tell). */
  net: { rxBytes: number; txBytes: number };
}

/** Names under /sys/block or /sys/class/net whose device is not virtual (loop, zram, lo, bridges, taps). */
async function physicalNames(dir: string): Promise<Set<string> | null> {
  try {
    const names = await fs.readdir(dir);
    const result = new Set<string>();
    for (const name of names) {
      const target = await fs.readlink(path.join(dir, name)).catch(() => '');
      if (target && !target.includes('/virtual/')) result.add(name);
    }
    return result;
  } catch {
    return null;
  }
}

export async function readProc(procRoot = '/proc', sysRoot = '/sys'): Promise<ProcReading> {
  const read = (file: string) => fs.readFile(path.join(procRoot, file), 'utf8');
  const [statText, memText, loadText, diskText, netText, disks, nics] = await Promise.all([
    read('stat'),
    read('meminfo'),
    read('loadavg'),
    read('diskstats').catch(() => ''),
    read('net/dev').catch(() => ''),
    physicalNames(path.join(sysRoot, 'block')),
    physicalNames(path.join(sysRoot, 'class/net')),
  ]);
  const timeMs = Date.now();
  const devices = parseDiskstats(diskText);
  const disk = { readBytes: 0, writeBytes: 0 };
  const wholeDisks =
    disks ?? new Set([...devices.keys()].filter((name) => !/^(loop|ram|zram|dm-|md|sr|nbd)/.test(name)));
  for (const [name, counters] of devices) {
    if (!wholeDisks.has(name) || isPartitionOf(name, wholeDisks)) continue;
    disk.readBytes += counters.readBytes;
    disk.writeBytes += counters.writeBytes;
  }
  const net = { rxBytes: 0, txBytes: 0 };
  for (const [name, counters] of parseNetDev(netText)) {
    if (nics ? !nics.has(name) : name === 'lo') continue;
    net.rxBytes += counters.rxBytes;
    net.txBytes += counters.txBytes;
  }
  return { timeMs, stat: parseProcStat(statText), mem: parseMeminfo(memText), load: parseLoadavg(loadText), disk, net };
}
