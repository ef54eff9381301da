/**
 * quality: LBVM's judgement against the peers (src/sim/peers.ts: ProxLB, Xen Orchestra, DRS, oVirt,
 * the descheduler's LowNodeUtilization, Proxmox CRS) on every shared trace at two cluster sizes, mean
 * CPU use ≈ 55% and ≈ 70% (PlanetLab days on 4-core, 64 GiB hosts; the Bitbrains Rnd excerpt on 16-core,
 * 1 TiB hosts). LBVM runs the monitor's default round (config monitor.policies, default settings) at
 * thresholds 1..5, with balance alone beside it. Every run starts from the same placement (VMs dealt
 * round-robin in name order) and applies a step's moves before the next step is scored.
 *
 * Per case: each peer's point, each level's point, which level of the round dominates each peer
 * (src/sim/quality.ts), and the goals: no level with more overloaded host-steps than doing nothing;
 * every peer that moves dominated; the default level at the best peer's overloaded host-steps with at
 * most half its migrations; the ladder (each level's migrations over the one below). Totals last.
 *
 * Cases run in parallel, one process each (BENCH_JOBS, default: the machine's cores); progress on
 * stderr; QUALITY_CASES=regex keeps only matching case names (e.g. "2011030[36]").
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ThresholdLevel } from '../policies/index.ts';
import { loadConfig } from '../src/config/index.ts';
import { LEVELS, MOVING_PEERS, verdict, type CaseResult, type Point } from '../src/sim/quality.ts';
import { PEER_NAMES } from '../src/sim/peers.ts';
import { sharedTraces } from '../test/helpers/traces.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const TRACES = sharedTraces();
const SIZES = [0.55, 0.7];
// The operator's LBVM_* overrides and LBVM_CONFIG apply (the cases read them too).
const { config } = loadConfig({ env: process.env, cwd: fs.mkdtempSync(path.join(os.tmpdir(), 'lbvm-quality-')) });
const defaultLevel = config.policies.balance.threshold as ThresholdLevel;

interface Spec {
  dir: string;
  format: string;
  name?: string;
  targetUse: number;
  hostCores: number;
  hostMemGiB: number;
}

function specs(): Spec[] {
  const list: Spec[] = [];
  const planetlab = path.join(TRACES, 'planetlab');
  for (const day of fs
    .readdirSync(planetlab)
    .filter((d) => /^\d{8}$/.test(d))
    .sort()) {
    for (const targetUse of SIZES)
      list.push({ dir: path.join(planetlab, day), format: 'planetlab', targetUse, hostCores: 4, hostMemGiB: 64 });
  }
  for (const targetUse of SIZES)
    list.push({
      dir: path.join(TRACES, 'bitbrains-rnd/2013-8'),
      format: 'bitbrains',
      name: 'bitbrains-rnd-2013-8',
      targetUse,
      hostCores: 16,
      hostMemGiB: 1024,
    });
  const filter = process.env.QUALITY_CASES ? new RegExp(process.env.QUALITY_CASES) : null;
  return filter
    ? list.filter((s) => filter.test(`${s.name ?? path.basename(s.dir)}@${Math.round(s.targetUse * 100)}`))
    : list;
}

function runChild(spec: Spec): Promise<CaseResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(here, '_quality-case.ts'), JSON.stringify(spec)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(JSON.parse(out) as CaseResult)
        : reject(new Error(`case ${spec.dir} at ${spec.targetUse} exited ${code}`)),
    );
  });
}

async function runAll(list: Spec[], jobs: number): Promise<CaseResult[]> {
  const results: CaseResult[] = new Array(list.length);
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const i = next++;
      results[i] = await runChild(list[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, list.length) }, worker));
  return results;
}

const started = Date.now();
const jobs = Number(process.env.BENCH_JOBS) || os.availableParallelism();
const results = await runAll(specs(), jobs);

const labels = [...PEER_NAMES, ...LEVELS.map((l) => `round-${l}`), ...LEVELS.map((l) => `balance-${l}`)];
const cases = results.map((r) => {
  const v = verdict(r, defaultLevel);
  return {
    case: `${r.trace}@${Math.round(r.targetUse * 100)}%`,
    hosts: r.hosts,
    hostCores: r.hostCores,
    vms: r.vms,
    steps: r.steps,
    meanCpuUse: r.meanCpuUse,
    points: r.points,
    ...v,
  };
});
const totals: Record<string, Pick<Point, 'migrations' | 'meanImbalance' | 'overloadedHostSteps' | 'movedGiB'>> = {};
for (const label of labels) {
  const rows = results.map((r) => r.points[label]!);
  totals[label] = {
    migrations: rows.reduce((n, r) => n + r.migrations, 0),
    meanImbalance: Number((rows.reduce((n, r) => n + r.meanImbalance, 0) / rows.length).toFixed(5)),
    overloadedHostSteps: rows.reduce((n, r) => n + r.overloadedHostSteps, 0),
    movedGiB: Number(rows.reduce((n, r) => n + r.movedGiB, 0).toFixed(1)),
  };
}
let pairs = 0;
let dominated = 0;
let balancePairs = 0;
const undominated: string[] = [];
for (const c of cases) {
  for (const peer of MOVING_PEERS) {
    const level = c.dominatedBy[peer];
    if (level === undefined) continue;
    pairs++;
    if (level !== null) dominated++;
    else undominated.push(`${c.case} ${peer}`);
    if (c.balanceDominatedBy[peer] != null) balancePairs++;
  }
}
const goals = {
  pairsDominated: `${dominated}/${pairs}`,
  pairsDominatedByBalanceAlone: `${balancePairs}/${pairs}`,
  undominated,
  casesWithALevelWorseThanNone: cases
    .filter((c) => c.worseThanNone.length > 0)
    .map((c) => `${c.case} levels ${c.worseThanNone.join(',')}`),
  defaultLevelBeatsBestPeer: `${cases.filter((c) => c.defaultBeatsBestPeer !== false).length}/${cases.length}`,
  defaultLevelMissesBestPeer: cases
    .filter((c) => c.defaultBeatsBestPeer === false)
    .map((c) => `${c.case} (best peer ${c.bestPeer})`),
  topFlatterThanProxlb: `${cases.filter((c) => c.topFlatterThanProxlb).length}/${cases.length}`,
  ladderMedian: LEVELS.slice(1).map((_, i) => {
    const ratios = cases
      .map((c) => c.ladder[i])
      .filter((x): x is number => x !== null)
      .sort((a, b) => a - b);
    return ratios.length ? ratios[Math.floor(ratios.length / 2)]! : null;
  }),
};

/** Pretty JSON with every object of plain values on one line (one row per policy). */
function compact(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(
    /\{\n\s*([^{}[\]]*?)\n\s*\}/g,
    (_, body: string) => `{ ${body.split(/,\n\s*/).join(', ')} }`,
  );
}
process.stdout.write(
  compact({
    benchmark: 'quality',
    roundPolicy: config.monitor.policies.join(','),
    defaultLevel,
    seconds: Math.round((Date.now() - started) / 1000),
    goals,
    totals,
    cases,
  }) + '\n',
);
