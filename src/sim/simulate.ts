/**
 * The trace-driven simulator. Hosts h0 … h{N-1} of equal size, or of the sizes `hostSpecs` gives; VMs
 * placed by `placement` or `initial`, or dealt round-robin in sorted name order. At step t the policy
 * sees the demands up to and including t (a window of the last `windowSamples`) of the VMs still
 * running (a VM is gone from its `departures` step on); its moves apply before step t+1 is scored.
 * Migrations finish within a step (nothing stays in flight), and each moved VM carries lastMoveMs and
 * previousHost, so cooldowns and ping-pong rules work as in the monitor. A `meter` (energy.ts) is told
 * each step's placement and moves.
 *
 * Scores per step, on the actual (not predicted) demand of that step:
 *   imbalance = population standard deviation over all hosts of CPU demand ÷ cores
 *   overloaded host-step: a host whose CPU demand > its cores
 *   unserved = Σ_hosts max(0, demand − cores) ÷ Σ demand (over all steps)
 *   active hosts = hosts holding at least one VM
 */
import { performance } from 'node:perf_hooks';
import { POLICIES, isPolicyName, planRound, type PolicyName, type PolicySettings } from '../../policies/index.ts';
import { UsageError } from '../errors.ts';
import type { HostState, Plan, Snapshot, VmState } from '../model/index.ts';
import { isPeerName, PEER_NAMES, peerPlanner } from './peers.ts';
import type { Trace } from './traces.ts';

export interface SimOptions {
  hosts: number;
  hostCores: number;
  hostMemBytes: number;
  /** Hosts of their own sizes, h0 … in order (then `hosts`, `hostCores` and `hostMemBytes` are not read). */
  hostSpecs?: readonly HostSpec[];
  /** VM → host name (`h0`…); otherwise round-robin in sorted name order. */
  initial?: Record<string, string>;
  /** Host index of each VM (in the trace's order) at step 0, in place of `initial`. */
  placement?: Int32Array;
  /** Step from which each VM is gone (finished), or -1: it is neither scored nor planned from then on. */
  departures?: Int32Array;
  /** First step the planner runs at (default 0). */
  firstPlanStep?: number;
  /** Told each scored step and each applied move (the energy meter). */
  meter?: SimMeter;
  /** A peer (`none`, `proxlb`, `xo`, `drs`, `ovirt`, `lownode`, `crs`), a policy name, or several joined by commas (run as one round). */
  policy: string;
  settings: PolicySettings;
  /** Window entries the policy sees (default: the settings' maxWindowSamples); peers see at least an hour. */
  windowSamples?: number;
  /** A planner to use instead of `policy` (the label still names it), e.g. to record plans. */
  planner?: (snapshot: Snapshot) => Plan;
  /** Called after each step's plan with the moves that will apply before the next step. */
  onStep?: (t: number, moves: { vm: string; from: string; to: string }[]) => void;
}

export interface SimSummary {
  trace: string;
  vms: number;
  hosts: number;
  steps: number;
  policy: string;
  migrations: number;
  meanImbalance: number;
  p95Imbalance: number;
  overloadedHostSteps: number;
  unservedFraction: number;
  meanActiveHosts: number;
  planMsMedian: number;
  planMsP99: number;
  /** Memory copied by the migrations (each moved VM's configured size), GiB. */
  movedGiB: number;
  /** Candidates the planner passed over, counted by named reason over all steps (once per VM or host and step). */
  refusedByReason: Record<string, number>;
  /** What the run could not fix and how to fix it (a start no move can mend), the trace reader's notes. */
  notes: string[];
}

export interface SimResult {
  summary: SimSummary;
  /** Imbalance per step (for the chart). */
  imbalance: number[];
  migrationsPerStep: number[];
}

export interface HostSpec {
  cpuCores: number;
  memBytes: number;
}

/** Something that follows the run: each scored step's placement and running VMs, then each move applied after it. */
export interface SimMeter {
  score(t: number, placement: Int32Array, running: Uint8Array): void;
  moved(vm: number, from: number, to: number): void;
}

type Planner = (snapshot: Snapshot) => Plan;

export function plannerFor(
  policy: string,
  settings: PolicySettings,
  stepMs = settings.demand.sampleIntervalMs,
): Planner {
  if (isPeerName(policy)) return peerPlanner(policy, { stepMs });
  const names = policy.split(',').map((n) => n.trim());
  const bad = names.filter((n) => !isPolicyName(n));
  if (bad.length > 0 || names.length === 0) {
    throw new UsageError(
      `--policy: unknown policy "${bad.join(',') || policy}"; expected one of: ` +
        `${[...Object.keys(POLICIES), ...PEER_NAMES].join(', ')} (or several policies joined by commas)`,
    );
  }
  if (names.length === 1) {
    const run = POLICIES[names[0] as PolicyName].run;
    return (snapshot) => run(snapshot, settings);
  }
  return (snapshot) => planRound(snapshot, settings, names as PolicyName[]);
}

export function hostName(index: number): string {
  return `h${index}`;
}

/** Checks `initial` against the trace and the host count; returns a host index per VM. */
export function initialPlacement(trace: Trace, hosts: number, initial?: Record<string, string>): Int32Array {
  const placement = new Int32Array(trace.vms.length);
  if (!initial) {
    trace.vms.forEach((_, i) => (placement[i] = i % hosts));
    return placement;
  }
  const index = new Map(trace.vms.map((vm, i) => [vm.name, i]));
  placement.fill(-1);
  for (const [vm, host] of Object.entries(initial)) {
    const at = index.get(vm);
    if (at === undefined)
      throw new UsageError(
        `--initial: VM "${vm}" is not in the trace ${trace.name}; expected one of its ${trace.vms.length} VM names`,
      );
    const match = typeof host === 'string' ? /^h(\d+)$/.exec(host) : null;
    if (!match || Number(match[1]) >= hosts) {
      throw new UsageError(`--initial: VM "${vm}" placed on "${String(host)}"; expected a host h0 … h${hosts - 1}`);
    }
    placement[at] = Number(match[1]);
  }
  // VMs the file does not place are dealt round-robin, like the default.
  let next = 0;
  for (let i = 0; i < placement.length; i++) if (placement[i] === -1) placement[i] = next++ % hosts;
  return placement;
}

/**
 * What no move can mend at the start, with the fix: hosts given more VM memory than they have (every
 * move onto them is refused, and if the VMs need more than all hosts have, any move is).
 */
export function startProblems(
  trace: Trace,
  hostCount: number,
  hostMemBytes: number | readonly number[],
  placement: Int32Array,
): string[] {
  const GiB = 1024 ** 3;
  const memOf = (h: number) => (typeof hostMemBytes === 'number' ? hostMemBytes : hostMemBytes[h]!);
  const committed = new Float64Array(hostCount);
  let total = 0;
  for (let i = 0; i < trace.vms.length; i++) {
    committed[placement[i]!]! += trace.vms[i]!.memBytes;
    total += trace.vms[i]!.memBytes;
  }
  const over = Array.from(committed)
    .map((bytes, h) => ({ h, bytes }))
    .filter((x) => x.bytes > memOf(x.h));
  if (over.length === 0) return [];
  if (typeof hostMemBytes !== 'number')
    return [
      `memory overcommitted at the start: ${over.length} of ${hostCount} hosts hold more VM memory than they have ` +
        `(${hostName(over[0]!.h)}: ${Math.round(over[0]!.bytes / GiB)} GiB); no move may land on them (DEST_MEM_FULL)`,
    ];
  const worst = over.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  const fit = Math.ceil((1.25 * Math.max(...committed)) / GiB);
  const round = (bytes: number) => Math.round(bytes / GiB).toLocaleString('en-US');
  const allOver = total > hostCount * hostMemBytes;
  return [
    `memory overcommitted at the start: ${over.length} of ${hostCount} hosts hold more VM memory than their ${round(hostMemBytes)} GiB ` +
      `(${hostName(worst.h)}: ${round(worst.bytes)} GiB); the trace's VMs provision ${round(total)} GiB in all` +
      (allOver
        ? `, more than the ${round(hostCount * hostMemBytes)} GiB of all hosts together, so every move is refused (DEST_MEM_FULL)`
        : ', and no move may land on those hosts (DEST_MEM_FULL)') +
      '. ' +
      `Give hosts their real memory: --host-mem-gib ${fit} or more`,
  ];
}

export function simulate(trace: Trace, options: SimOptions): SimResult {
  const hostCount = options.hostSpecs?.length ?? options.hosts;
  const cores = options.hostSpecs?.map((h) => h.cpuCores) ?? new Array<number>(hostCount).fill(options.hostCores);
  const mem = options.hostSpecs?.map((h) => h.memBytes) ?? new Array<number>(hostCount).fill(options.hostMemBytes);
  const planner = options.planner ?? plannerFor(options.policy, options.settings, trace.stepMs);
  // ProxLB reads the last hour: every planner is given at least that much.
  const window = Math.max(
    options.windowSamples ?? options.settings.demand.maxWindowSamples,
    Math.ceil(3_600_000 / trace.stepMs),
  );
  const placement = options.placement
    ? Int32Array.from(options.placement)
    : initialPlacement(trace, hostCount, options.initial);
  const notes = [
    ...trace.notes,
    ...startProblems(trace, hostCount, options.hostSpecs ? mem : options.hostMemBytes, placement),
  ];
  const departures = options.departures;
  const running = new Uint8Array(trace.vms.length).fill(1);
  const lastMoveMs: (number | undefined)[] = new Array(trace.vms.length).fill(undefined);
  const previousHost: (string | undefined)[] = new Array(trace.vms.length).fill(undefined);
  const vmIndex = new Map(trace.vms.map((vm, i) => [vm.name, i]));
  const imbalanceSeries: number[] = [];
  const migrationsPerStep: number[] = [];
  const planMs: number[] = [];
  let overloadedHostSteps = 0;
  let unserved = 0;
  let totalDemand = 0;
  let activeHostSum = 0;
  let movedBytes = 0;
  const refused = new Map<string, number>();
  const demand = new Float64Array(hostCount);
  const count = new Int32Array(hostCount);
  for (let t = 0; t < trace.steps; t++) {
    if (departures) for (let i = 0; i < running.length; i++) if (departures[i] === t) running[i] = 0;
    // Score step t with the placement decided at t − 1.
    demand.fill(0);
    count.fill(0);
    for (let i = 0; i < trace.vms.length; i++) {
      if (!running[i]) continue;
      demand[placement[i]!]! += trace.vms[i]!.cpuCores[t]!;
      count[placement[i]!]!++;
    }
    let sum = 0;
    let sumSq = 0;
    for (let h = 0; h < hostCount; h++) {
      const use = demand[h]! / cores[h]!;
      sum += use;
      sumSq += use * use;
      totalDemand += demand[h]!;
      if (demand[h]! > cores[h]! + 1e-9) {
        overloadedHostSteps++;
        unserved += demand[h]! - cores[h]!;
      }
      if (count[h]! > 0) activeHostSum++;
    }
    const mean = sum / hostCount;
    imbalanceSeries.push(Math.sqrt(Math.max(0, sumSq / hostCount - mean * mean)));
    options.meter?.score(t, placement, running);
    const applied: { vm: string; from: string; to: string }[] = [];
    if (t >= (options.firstPlanStep ?? 0)) {
      // Plan with what is known at t.
      const nowMs = trace.startMs + t * trace.stepMs;
      const snapshot = buildSnapshot(trace, t, window, placement, running, lastMoveMs, previousHost, {
        cores,
        mem,
        nowMs,
      });
      const started = performance.now();
      const plan = planner(snapshot);
      planMs.push(performance.now() - started);
      for (const move of plan.moves) {
        const i = vmIndex.get(move.vm);
        const match = /^h(\d+)$/.exec(move.to);
        if (
          i === undefined ||
          !running[i] ||
          !match ||
          Number(match[1]) >= hostCount ||
          hostName(placement[i]!) !== move.from
        )
          continue;
        const to = Number(match[1]);
        options.meter?.moved(i, placement[i]!, to);
        placement[i] = to;
        movedBytes += trace.vms[i]!.memBytes + (trace.vms[i]!.localDiskBytes ?? 0);
        lastMoveMs[i] = nowMs;
        previousHost[i] = move.from;
        applied.push({ vm: move.vm, from: move.from, to: move.to });
      }
      for (const skip of plan.skipped) refused.set(skip.reason, (refused.get(skip.reason) ?? 0) + 1);
    }
    migrationsPerStep.push(applied.length);
    options.onStep?.(t, applied);
  }
  const sorted = imbalanceSeries.slice().sort((a, b) => a - b);
  const planSorted = planMs.slice().sort((a, b) => a - b);
  const summary: SimSummary = {
    trace: trace.name,
    vms: trace.vms.length,
    hosts: hostCount,
    steps: trace.steps,
    policy: options.policy,
    migrations: migrationsPerStep.reduce((a, b) => a + b, 0),
    meanImbalance: round(imbalanceSeries.reduce((a, b) => a + b, 0) / Math.max(1, imbalanceSeries.length), 5),
    p95Imbalance: round(quantile(sorted, 0.95), 5),
    overloadedHostSteps,
    unservedFraction: round(totalDemand > 0 ? unserved / totalDemand : 0, 6),
    meanActiveHosts: round(activeHostSum / Math.max(1, trace.steps), 3),
    planMsMedian: round(quantile(planSorted, 0.5), 3),
    planMsP99: round(quantile(planSorted, 0.99), 3),
    movedGiB: round(movedBytes / 1024 ** 3, 2),
    refusedByReason: Object.fromEntries([...refused.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))),
    notes,
  };
  return { summary, imbalance: imbalanceSeries, migrationsPerStep };
}

function buildSnapshot(
  trace: Trace,
  t: number,
  window: number,
  placement: Int32Array,
  running: Uint8Array,
  lastMoveMs: (number | undefined)[],
  previousHost: (string | undefined)[],
  cluster: { cores: readonly number[]; mem: readonly number[]; nowMs: number },
): Snapshot {
  const from = Math.max(0, t - window + 1);
  const memUsed = new Float64Array(cluster.cores.length);
  const vms: VmState[] = [];
  trace.vms.forEach((vm, i) => {
    if (!running[i]) return;
    const used = vm.memUsedBytes ? vm.memUsedBytes[t]! : vm.memBytes;
    memUsed[placement[i]!]! += used;
    const state: VmState = {
      name: vm.name,
      host: hostName(placement[i]!),
      vcpus: vm.vcpus,
      memBytes: vm.memBytes,
      cpuUsedWindowCores: Array.from(vm.cpuCores.subarray(from, t + 1)),
      memUsedBytes: used,
      memDirtyBytesPerSec: 0,
      tags: [],
    };
    if (vm.localDiskBytes) state.localDiskBytes = vm.localDiskBytes;
    if (lastMoveMs[i] !== undefined) state.lastMoveMs = lastMoveMs[i];
    if (previousHost[i] !== undefined) state.previousHost = previousHost[i];
    vms.push(state);
  });
  const hosts: HostState[] = [];
  for (let h = 0; h < cluster.cores.length; h++) {
    // No host-level series in a trace: the policy sums its VMs' windows.
    hosts.push({
      name: hostName(h),
      cpuCores: cluster.cores[h]!,
      memBytes: cluster.mem[h]!,
      cpuUsedWindowCores: [],
      memUsedBytes: memUsed[h]!,
      status: 'up',
      maintenance: false,
      lastSampleMs: cluster.nowMs,
    });
  }
  return { nowMs: cluster.nowMs, seed: t, hosts, vms, rules: { groups: [], pins: [], ignoredVms: [] }, inFlight: [] };
}

function quantile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[index]!;
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
