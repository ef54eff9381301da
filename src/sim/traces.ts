/**
 * Trace readers for the simulator: PlanetLab (CloudSim's files) and Bitbrains GWA-T-12 (Rnd)
 * (the Azure Public Dataset's VM traces: azure.ts),
 * read into per-VM series of CPU demand in cores on a fixed 5-minute step. Quirks handled here
 * (see ../shared/traces/*\/README.md):
 * - PlanetLab: one file per VM, no extension, names may contain spaces; 288 integer percents;
 *   a VM is 1 vCPU, demand = value / 100 cores. No memory size is given: every VM gets `vmMemBytes`.
 * - Bitbrains: `;\t`-separated CSV with a header; "Timestamp [ms]" holds Unix seconds. Rows are put
 *   on the step round((t − t0) / 300 s); several rows on one step (duplicate timestamps) are averaged;
 *   a step with no row repeats the previous value (gaps). Rows with 0 cores or 0 provisioned MHz mean
 *   "off / not measured": demand 0 on that step. VMs that are off on every row are left out.
 *   demand cores = CPU usage MHz ÷ (provisioned MHz ÷ cores); memory size = the largest provisioned KB.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.ts';
import { readAzure } from './azure.ts';
import { parseBytes } from '../units.ts';

export const TRACE_FORMATS = ['planetlab', 'bitbrains', 'azure'] as const;
export type TraceFormat = (typeof TRACE_FORMATS)[number];

export interface TraceVm {
  name: string;
  vcpus: number;
  memBytes: number;
  /** CPU demand in cores, one entry per step. */
  cpuCores: Float64Array;
  /** Memory used in bytes per step, when the trace has it. */
  memUsedBytes: Float64Array | null;
  /** Size of its local disks (a migration copies them), when known: see withLocalDisks. */
  localDiskBytes?: number;
}

export interface Trace {
  name: string;
  format: TraceFormat;
  stepMs: number;
  /** Time of step 0 (epoch ms; 0 when the trace gives no clock). */
  startMs: number;
  steps: number;
  /** Sorted by name. */
  vms: TraceVm[];
  /** What the reader decided about quirks (VMs left out, gaps filled). */
  notes: string[];
  /** PlanetLab: the file names in the folder's own order (readdir, what Java's File.listFiles gives CloudSim). */
  listed?: string[];
}

const STEP_MS = 300_000;
const GiB = 1024 ** 3;

export interface ReadOptions {
  /** PlanetLab gives no VM size: memory of every VM (default 1 GiB). */
  vmMemBytes?: number;
}

export function readTrace(dir: string, format: string, options: ReadOptions = {}): Trace {
  if (!(TRACE_FORMATS as readonly string[]).includes(format)) {
    throw new UsageError(`--format: unknown trace format "${format}"; expected one of: ${TRACE_FORMATS.join(', ')}`);
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    throw new UsageError(`--trace: folder "${dir}" not found; expected a folder of ${format} trace files`);
  }
  if (!stat.isDirectory())
    throw new UsageError(`--trace: "${dir}" is not a folder; expected a folder of ${format} trace files`);
  if (format === 'azure') return readAzure(dir, options);
  return format === 'planetlab' ? readPlanetLab(dir, options) : readBitbrains(dir);
}

/** The folder's trace files in its own order (readdir: fs.readdirSync would sort them). */
function listFilesUnsorted(dir: string, filter: (name: string) => boolean): string[] {
  const names: string[] = [];
  const handle = fs.opendirSync(dir);
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      if (entry.isFile() && !entry.name.startsWith('.') && entry.name !== 'README.md' && filter(entry.name))
        names.push(entry.name);
    }
  } finally {
    handle.closeSync();
  }
  return names;
}

/**
 * Gives VMs their local disk sizes: neither PlanetLab nor Bitbrains records disk sizes, so they come
 * from a side file, a JSON object {"<vm>": size} (bytes, or "20GiB"). A VM not named keeps none
 * (shared storage); a name not in the trace, or a size that is not one, is refused.
 */
export function withLocalDisks(trace: Trace, sizes: Record<string, unknown>, source: string): Trace {
  const names = new Set(trace.vms.map((vm) => vm.name));
  const bytes = new Map<string, number>();
  for (const [vm, size] of Object.entries(sizes)) {
    if (!names.has(vm)) throw new UsageError(`${source}: VM ${JSON.stringify(vm)} is not in the trace`);
    const parsed = typeof size === 'number' || typeof size === 'string' ? parseBytes(size) : null;
    if (parsed === null)
      throw new UsageError(
        `${source}: VM ${JSON.stringify(vm)}: ${JSON.stringify(size)} is not a size (bytes, or "20GiB")`,
      );
    bytes.set(vm, parsed);
  }
  return {
    ...trace,
    vms: trace.vms.map((vm) => (bytes.has(vm.name) ? { ...vm, localDiskBytes: bytes.get(vm.name)! } : vm)),
  };
}

/** The folder's trace files (no folders, hidden files or README.md) that pass `filter`, sorted by name. */
export function listFiles(dir: string, filter: (name: string) => boolean): string[] {
  return listFilesUnsorted(dir, filter).sort();
}

export function readPlanetLab(dir: string, options: ReadOptions = {}): Trace {
  const listed = listFilesUnsorted(dir, (name) => !name.includes('.'));
  const files = listed.slice().sort();
  if (files.length === 0)
    throw new UsageError(`--trace: "${dir}" holds no PlanetLab files (one file per VM, no extension)`);
  const memBytes = options.vmMemBytes ?? GiB;
  let steps = 0;
  const vms: TraceVm[] = [];
  for (const file of files) {
    const lines = fs.readFileSync(path.join(dir, file), 'utf8').split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const series = new Float64Array(lines.length);
    lines.forEach((line, i) => {
      const value = Number(line.trim());
      if (line.trim() === '' || !Number.isFinite(value) || value < 0) {
        throw new UsageError(
          `--trace: ${path.join(dir, file)}:${i + 1}: "${line}" is not a CPU percentage; expected an integer 0..100 per line (planetlab format)`,
        );
      }
      series[i] = value / 100;
    });
    steps = Math.max(steps, series.length);
    vms.push({ name: file, vcpus: 1, memBytes, cpuCores: series, memUsedBytes: null });
  }
  // Shorter files (none in the shared days) hold their last value.
  for (const vm of vms) if (vm.cpuCores.length < steps) vm.cpuCores = padHold(vm.cpuCores, steps);
  return {
    name: path.basename(path.resolve(dir)),
    format: 'planetlab',
    stepMs: STEP_MS,
    startMs: 0,
    steps,
    vms,
    notes: [],
    listed,
  };
}

function padHold(series: Float64Array, steps: number): Float64Array {
  const out = new Float64Array(steps);
  out.set(series);
  const last = series.length ? series[series.length - 1]! : 0;
  for (let i = series.length; i < steps; i++) out[i] = last;
  return out;
}

interface Row {
  t: number;
  cores: number;
  provisionedMhz: number;
  usageMhz: number;
  memProvisionedKb: number;
  memUsageKb: number;
}

export function readBitbrains(dir: string): Trace {
  const files = listFiles(dir, (name) => name.endsWith('.csv'));
  if (files.length === 0)
    throw new UsageError(`--trace: "${dir}" holds no .csv files; expected the Bitbrains GWA-T-12 per-VM CSVs`);
  const perVm: { name: string; rows: Row[] }[] = [];
  let t0 = Number.POSITIVE_INFINITY;
  for (const file of files) {
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    const lines = text.split('\n');
    const rows: Row[] = [];
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.trim() === '') continue;
      const fields = line.split(';');
      const numbers = fields.map((f) => Number(f.trim()));
      if (numbers.length < 7 || numbers.slice(0, 7).some((n) => !Number.isFinite(n))) {
        throw new UsageError(
          `--trace: ${path.join(dir, file)}:${i + 1}: expected 11 numbers separated by ";<TAB>" (bitbrains format), got "${line.slice(0, 60)}"`,
        );
      }
      rows.push({
        t: numbers[0]!,
        cores: numbers[1]!,
        provisionedMhz: numbers[2]!,
        usageMhz: numbers[3]!,
        memProvisionedKb: numbers[5]!,
        memUsageKb: numbers[6]!,
      });
    }
    if (rows.length > 0) t0 = Math.min(t0, rows[0]!.t);
    perVm.push({ name: file.slice(0, -'.csv'.length), rows });
  }
  const notes: string[] = [];
  let steps = 0;
  for (const { rows } of perVm)
    for (const row of rows) steps = Math.max(steps, Math.round((row.t - t0) / (STEP_MS / 1000)) + 1);
  const vms: TraceVm[] = [];
  const allOff: string[] = [];
  let duplicateSteps = 0;
  let filledSteps = 0;
  for (const { name, rows } of perVm) {
    const on = rows.filter((r) => r.cores > 0 && r.provisionedMhz > 0);
    if (on.length === 0) {
      allOff.push(name);
      continue;
    }
    const sum = new Float64Array(steps);
    const memSum = new Float64Array(steps);
    const count = new Uint16Array(steps);
    const seen = new Uint8Array(steps);
    for (const row of rows) {
      const step = Math.round((row.t - t0) / (STEP_MS / 1000));
      if (seen[step]) duplicateSteps++;
      seen[step] = 1;
      if (row.cores > 0 && row.provisionedMhz > 0) {
        sum[step]! += row.usageMhz / (row.provisionedMhz / row.cores);
        memSum[step]! += row.memUsageKb * 1024;
        count[step]!++;
      }
    }
    const cpu = new Float64Array(steps);
    const mem = new Float64Array(steps);
    let lastCpu = 0;
    let lastMem = 0;
    for (let s = 0; s < steps; s++) {
      if (count[s]! > 0) {
        lastCpu = sum[s]! / count[s]!;
        lastMem = memSum[s]! / count[s]!;
      } else if (seen[s]) {
        // Only "off" rows on this step: the VM uses nothing.
        lastCpu = 0;
        lastMem = 0;
      } else filledSteps++;
      cpu[s] = lastCpu;
      mem[s] = lastMem;
    }
    const memBytes = Math.max(...on.map((r) => r.memProvisionedKb)) * 1024;
    const vcpus = Math.max(...on.map((r) => r.cores));
    vms.push({ name, vcpus, memBytes, cpuCores: cpu, memUsedBytes: mem });
  }
  if (allOff.length) notes.push(`left out ${allOff.length} VM(s) off on every row (0 cores): ${allOff.join(', ')}`);
  if (duplicateSteps)
    notes.push(
      `${duplicateSteps} row(s) fell on an already filled step (duplicate timestamps, or uneven intervals rounding to one step); averaged`,
    );
  if (filledSteps) notes.push(`${filledSteps} VM-step(s) had no row (gaps); the previous value was held`);
  vms.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    name: path.basename(path.resolve(dir)),
    format: 'bitbrains',
    stepMs: STEP_MS,
    startMs: t0 * 1000,
    steps,
    vms,
    notes,
  };
}
