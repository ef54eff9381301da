/**
 * Reader for the Azure Public Dataset's VM traces (V1, 2017, and V2, 2019; same schema), as
 * downloaded: a folder with `vmtable.csv` and one or more `vm_cpu_readings-file-*.csv`, each plain
 * or gzipped (`.csv.gz`), no header rows (one is tolerated).
 *
 * - vm_cpu_readings: `timestamp, vm id, min cpu, max cpu, avg cpu` every 300 s, the CPU columns in
 *   percent of the VM's cores. Demand = avg cpu / 100 × the VM's cores.
 * - vmtable: `vm id, subscription id, deployment id, created, deleted, max cpu, avg cpu, p95 max cpu,
 *   category, core count bucket, memory bucket (GB)`. The top buckets are written ">24" and ">64":
 *   read as 30 cores and 70 GB (the V2 schema's own values for them).
 * - Readings are put on the step round((t − t0) / 300 s). Before a VM's first reading and after its
 *   last it is not running (demand 0); a gap between readings holds the previous value. A VM with no
 *   row in vmtable, or no vmtable at all, is 1 core and `vmMemBytes`: said in the notes.
 */
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { UsageError } from '../errors.ts';
import { listFiles, type ReadOptions, type Trace, type TraceVm } from './traces.ts';

const STEP_S = 300;
const GiB = 1024 ** 3;

function readText(file: string): string {
  const bytes = fs.readFileSync(file);
  if (!file.endsWith('.gz')) return bytes.toString('utf8');
  try {
    return zlib.gunzipSync(bytes).toString('utf8');
  } catch (error) {
    throw new UsageError(`--trace: ${file}: not a gzip file (${(error as Error).message}); expected a .csv.gz`);
  }
}

/** "24", ">24", "2" → a number; the open top buckets read as the schema's stand-ins. */
function bucket(field: string, top: number): number {
  const text = field.trim();
  if (text.startsWith('>')) return top;
  return Number(text);
}

interface Size {
  cores: number;
  memGiB: number;
}

function readVmTable(file: string): Map<string, Size> {
  const sizes = new Map<string, Size>();
  readText(file)
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const fields = line.split(',');
      const cores = bucket(fields[9] ?? '', 30);
      const memGiB = bucket(fields[10] ?? '', 70);
      if (fields.length < 11 || !(cores > 0) || !(memGiB > 0)) {
        if (i === 0) return; // a header
        throw new UsageError(
          `--trace: ${file}:${i + 1}: expected 11 comma-separated fields ending in a core count and a memory` +
            ` size in GB (Azure vmtable), got "${line.slice(0, 80)}"`,
        );
      }
      sizes.set(fields[0]!.trim(), { cores, memGiB });
    });
  return sizes;
}

export function readAzure(dir: string, options: ReadOptions = {}): Trace {
  const names = listFiles(dir, (n) => /^(vm_cpu_readings.*|vmtable)\.csv(\.gz)?$/.test(n));
  const readings = names.filter((n) => n.startsWith('vm_cpu_readings'));
  if (readings.length === 0)
    throw new UsageError(
      `--trace: "${dir}" holds no vm_cpu_readings-*.csv or .csv.gz files; expected the Azure Public Dataset's` +
        ` VM CPU readings (and vmtable.csv)`,
    );
  const table = names.find((n) => /^vmtable\.csv(\.gz)?$/.test(n));
  const sizes = table ? readVmTable(path.join(dir, table)) : new Map<string, Size>();
  const notes: string[] = [];
  if (!table) notes.push('no vmtable.csv: every VM is read as 1 core with the default memory');

  const rows = new Map<string, { t: number[]; avg: number[] }>();
  let t0 = Number.POSITIVE_INFINITY;
  let tEnd = Number.NEGATIVE_INFINITY;
  for (const name of readings) {
    const file = path.join(dir, name);
    readText(file)
      .split('\n')
      .forEach((line, i) => {
        if (line.trim() === '') return;
        const fields = line.split(',');
        const t = Number(fields[0]);
        const avg = Number(fields[4]);
        if (fields.length < 5 || !Number.isFinite(t) || !Number.isFinite(avg) || avg < 0) {
          if (i === 0 && !Number.isFinite(t)) return; // a header
          throw new UsageError(
            `--trace: ${file}:${i + 1}: expected "timestamp,vm id,min cpu,max cpu,avg cpu" with numbers` +
              ` (Azure vm_cpu_readings), got "${line.slice(0, 80)}"`,
          );
        }
        const vm = fields[1]!.trim();
        let series = rows.get(vm);
        if (!series) rows.set(vm, (series = { t: [], avg: [] }));
        series.t.push(t);
        series.avg.push(avg);
        if (t < t0) t0 = t;
        if (t > tEnd) tEnd = t;
      });
  }
  const steps = rows.size ? Math.round((tEnd - t0) / STEP_S) + 1 : 0;
  const defaultMem = options.vmMemBytes ?? GiB;
  const vms: TraceVm[] = [];
  let unsized = 0;
  let duplicates = 0;
  let filled = 0;
  for (const [name, series] of rows) {
    const size = sizes.get(name);
    if (!size) unsized++;
    const cores = size?.cores ?? 1;
    const sum = new Float64Array(steps);
    const count = new Uint16Array(steps);
    let first = steps;
    let last = -1;
    for (let k = 0; k < series.t.length; k++) {
      const step = Math.round((series.t[k]! - t0) / STEP_S);
      if (count[step]! > 0) duplicates++;
      sum[step]! += (Math.min(100, series.avg[k]!) / 100) * cores;
      count[step]!++;
      first = Math.min(first, step);
      last = Math.max(last, step);
    }
    const cpu = new Float64Array(steps);
    let held = 0;
    for (let s = first; s <= last; s++) {
      if (count[s]! > 0) held = sum[s]! / count[s]!;
      else filled++;
      cpu[s] = held;
    }
    vms.push({
      name,
      vcpus: cores,
      memBytes: size ? size.memGiB * GiB : defaultMem,
      cpuCores: cpu,
      memUsedBytes: null,
    });
  }
  if (table && unsized) notes.push(`${unsized} VM(s) have no row in vmtable: read as 1 core with the default memory`);
  if (duplicates) notes.push(`${duplicates} reading(s) fell on an already filled step; averaged`);
  if (filled) notes.push(`${filled} VM-step(s) had no reading between a VM's first and last (gaps); held`);
  vms.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    name: path.basename(path.resolve(dir)),
    format: 'azure',
    stepMs: STEP_S * 1000,
    startMs: 0,
    steps,
    vms,
    notes,
  };
}
