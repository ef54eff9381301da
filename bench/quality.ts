/**
 * quality: LBVM against no balancing and the two baselines (src/sim/baselines.ts) on every shared
 * PlanetLab day (60 hosts × 4 cores, 64 GiB) and the Bitbrains Rnd excerpt (16-core, 1 TiB hosts,
 * as many as make the mean CPU use ≈ 55%), in one run. LBVM runs the monitor's default round
 * (config monitor.policies) with the config's defaults, at balance thresholds 1..5.
 *
 * Dominance: LBVM's curve dominates a baseline when some threshold level has fewer overloaded
 * host-steps (or both none), a lower mean imbalance AND no more migrations than the baseline.
 * Checked per trace and on the totals (migrations and overloaded host-steps summed, imbalance averaged).
 * Traces are read from ../shared/traces (the nearest ancestor folder holding shared/traces).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ThresholdLevel } from '../policies/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { simulationSettings } from '../src/sim/settings.ts';
import { simulate, type SimSummary } from '../src/sim/simulate.ts';
import { readTrace, type Trace } from '../src/sim/traces.ts';
import { sharedTraces } from '../test/helpers/traces.ts';


const TRACES = sharedTraces();
const { config } = loadConfig({ env: {}, cwd: fs.mkdtempSync('/tmp/lbvm-quality-') });
const LBVM_POLICY = config.monitor.policies.join(',');
const LEVELS: ThresholdLevel[] = [1, 2, 3, 4, 5];
const BASELINES = ['proxlb', 'xo'] as const;
const GiB = 1024 ** 3;

interface Setup {
  trace: Trace;
  hosts: number;
  hostCores: number;
  hostMemBytes: number;
}

function setups(): Setup[] {
  const list: Setup[] = [];
  const planetlab = path.join(TRACES, 'planetlab');
  for (const day of fs.readdirSync(planetlab).filter((d) => /^\d{8}$/.test(d)).sort()) {
    list.push({ trace: readTrace(path.join(planetlab, day), 'planetlab'), hosts: 60, hostCores: 4, hostMemBytes: 64 * GiB });
  }
  const bitbrains = readTrace(path.join(TRACES, 'bitbrains-rnd/2013-8'), 'bitbrains');
  let demand = 0;
  for (const vm of bitbrains.vms) for (const value of vm.cpuCores) demand += value;
  const meanDemand = demand / bitbrains.steps;
  const hostCores = 16;
  list.push({ trace: { ...bitbrains, name: 'bitbrains-rnd-2013-8' }, hosts: Math.max(2, Math.round(meanDemand / (0.55 * hostCores))), hostCores, hostMemBytes: 1024 * GiB });
  return list;
}

/** What a trace's row keeps of a run's summary (every host stays active in these runs, so meanActiveHosts is left out). */
type Row = Pick<SimSummary, 'migrations' | 'meanImbalance' | 'p95Imbalance' | 'overloadedHostSteps' | 'unservedFraction' | 'planMsMedian'>;

function row(summary: SimSummary): Row {
  const { migrations, meanImbalance, p95Imbalance, overloadedHostSteps, unservedFraction, planMsMedian } = summary;
  return { migrations, meanImbalance, p95Imbalance, overloadedHostSteps, unservedFraction, planMsMedian };
}

function dominatingLevel(results: Record<string, Row>, baseline: Row): number | null {
  for (const level of LEVELS) {
    const lbvm = results[`lbvm-${level}`]!;
    const fewerOverloads = lbvm.overloadedHostSteps < baseline.overloadedHostSteps || (lbvm.overloadedHostSteps === 0 && baseline.overloadedHostSteps === 0);
    if (fewerOverloads && lbvm.meanImbalance < baseline.meanImbalance && lbvm.migrations <= baseline.migrations) return level;
  }
  return null;
}

const started = Date.now();
const perTrace: Record<string, { vms: number; hosts: number; hostCores: number; steps: number; meanCpuUse: number; results: Record<string, Row> }> = {};
for (const setup of setups()) {
  const { trace } = setup;
  let demand = 0;
  for (const vm of trace.vms) for (const value of vm.cpuCores) demand += value;
  const meanCpuUse = demand / trace.steps / (setup.hosts * setup.hostCores);
  const results: Record<string, Row> = {};
  const runs: [string, string, ThresholdLevel][] = [['none', 'none', 3], ...BASELINES.map((b) => [b, b, 3] as [string, string, ThresholdLevel]), ...LEVELS.map((l) => [`lbvm-${l}`, LBVM_POLICY, l] as [string, string, ThresholdLevel])];
  for (const [label, policy, level] of runs) {
    const settings = simulationSettings(config, trace, level);
    const summary = simulate(trace, { hosts: setup.hosts, hostCores: setup.hostCores, hostMemBytes: setup.hostMemBytes, policy, settings, windowSamples: settings.demand.maxWindowSamples }).summary;
    results[label] = row(summary);
    process.stderr.write(`${trace.name} ${label}: ${summary.migrations} migrations, imbalance ${summary.meanImbalance}, overloaded ${summary.overloadedHostSteps}, plan ${summary.planMsMedian} ms\n`);
  }
  perTrace[trace.name] = { vms: trace.vms.length, hosts: setup.hosts, hostCores: setup.hostCores, steps: trace.steps, meanCpuUse: Number(meanCpuUse.toFixed(3)), results };
}

const labels = Object.keys(Object.values(perTrace)[0]!.results);
const totals: Record<string, { migrations: number; meanImbalance: number; overloadedHostSteps: number; unservedFraction: number }> = {};
for (const label of labels) {
  const rows = Object.values(perTrace).map((t) => t.results[label]!);
  totals[label] = {
    migrations: rows.reduce((n, r) => n + r.migrations, 0),
    meanImbalance: Number((rows.reduce((n, r) => n + r.meanImbalance, 0) / rows.length).toFixed(5)),
    overloadedHostSteps: rows.reduce((n, r) => n + r.overloadedHostSteps, 0),
    unservedFraction: Number((rows.reduce((n, r) => n + r.unservedFraction, 0) / rows.length).toFixed(6)),
  };
}
const ratio = (a: number, b: number) => (b === 0 ? (a === 0 ? 1 : null) : Number((a / b).toFixed(3)));
const ratios: Record<string, Record<string, { migrations: number | null; meanImbalance: number | null; overloadedHostSteps: number | null }>> = {};
for (const against of ['none', ...BASELINES]) {
  ratios[`vs ${against}`] = {};
  for (const level of LEVELS) {
    const lbvm = totals[`lbvm-${level}`]!;
    const base = totals[against]!;
    ratios[`vs ${against}`]![`lbvm-${level}`] = { migrations: ratio(lbvm.migrations, base.migrations), meanImbalance: ratio(lbvm.meanImbalance, base.meanImbalance), overloadedHostSteps: ratio(lbvm.overloadedHostSteps, base.overloadedHostSteps) };
  }
}
const dominance: Record<string, { totalsLevel: number | null; perTrace: Record<string, number | null>; tracesDominated: string }> = {};
for (const baseline of BASELINES) {
  const perTraceLevels = Object.fromEntries(Object.entries(perTrace).map(([name, t]) => [name, dominatingLevel(t.results, t.results[baseline]!)]));
  const count = Object.values(perTraceLevels).filter((l) => l !== null).length;
  dominance[baseline] = { totalsLevel: dominatingLevel(totals as unknown as Record<string, Row>, totals[baseline] as unknown as Row), perTrace: perTraceLevels, tracesDominated: `${count}/${Object.keys(perTrace).length}` };
}
/** Pretty JSON with every object of plain values on one line (one row per policy). */
function compact(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\{\n\s*([^{}[\]]*?)\n\s*\}/g, (_, body: string) => `{ ${body.split(/,\n\s*/).join(', ')} }`);
}
process.stdout.write(`${compact({ benchmark: 'quality', lbvmPolicy: LBVM_POLICY, seconds: Math.round((Date.now() - started) / 1000), totals, ratios, dominance, traces: perTrace })}\n`);
