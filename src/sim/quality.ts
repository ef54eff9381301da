/**
 * The yardstick behind `npm run bench -- quality`: LBVM's default round at its five threshold levels
 * (and balance alone beside it) against every peer (src/sim/peers.ts) on a trace at a given mean CPU
 * use, and the verdicts the judgement is held to. Pure functions of results, plus `runCase`, which
 * replays one trace at one size (CPU-bound, no I/O).
 *
 * Dominance (a Pareto test on the three things an operator weighs): a level dominates a peer when
 * it has no more overloaded host-steps, no higher mean imbalance and no more migrations, all at once.
 */
import type { ThresholdLevel } from '../../policies/index.ts';
import type { LbvmConfig } from '../config/schema.ts';
import { PEER_NAMES, type PeerName } from './peers.ts';
import { simulationSettings } from './settings.ts';
import { simulate, type SimSummary } from './simulate.ts';
import type { Trace } from './traces.ts';

export const LEVELS: readonly ThresholdLevel[] = [1, 2, 3, 4, 5];
/** Peers that can move VMs (`none` is the reference point, not a peer to beat). */
export const MOVING_PEERS = PEER_NAMES.filter((p): p is Exclude<PeerName, 'none'> => p !== 'none');

export interface Point {
  migrations: number;
  meanImbalance: number;
  overloadedHostSteps: number;
  unservedFraction: number;
  /** Memory copied by the migrations (GiB). */
  movedGiB: number;
  planMsMedian: number;
}

export interface CaseSetup {
  trace: Trace;
  /** Target mean CPU use (share of all cores over the whole trace) the host count was chosen for. */
  targetUse: number;
  hosts: number;
  hostCores: number;
  hostMemBytes: number;
}

export interface CaseResult {
  trace: string;
  targetUse: number;
  meanCpuUse: number;
  vms: number;
  hosts: number;
  hostCores: number;
  steps: number;
  /** `none`, each peer, `round-1..5` (the default round), `balance-1..5` (balance alone). */
  points: Record<string, Point>;
}

/** Mean CPU demand (cores) over the trace. */
export function meanDemandCores(trace: Trace): number {
  let demand = 0;
  for (const vm of trace.vms) for (const value of vm.cpuCores) demand += value;
  return demand / Math.max(1, trace.steps);
}

/** As many hosts of `hostCores` as make the trace's mean CPU use ≈ `targetUse` (at least 2). */
export function hostsFor(trace: Trace, hostCores: number, targetUse: number): number {
  return Math.max(2, Math.round(meanDemandCores(trace) / (targetUse * hostCores)));
}

export function point(summary: SimSummary): Point {
  const { migrations, meanImbalance, overloadedHostSteps, unservedFraction, planMsMedian } = summary;
  return { migrations, meanImbalance, overloadedHostSteps, unservedFraction, movedGiB: summary.movedGiB, planMsMedian };
}

/** Replays one case: `none`, every peer, the round at each level, balance alone at each level. */
export function runCase(
  setup: CaseSetup,
  config: LbvmConfig,
  roundPolicy: string,
  onRun?: (label: string, summary: SimSummary) => void,
): CaseResult {
  const { trace } = setup;
  const points: Record<string, Point> = {};
  const runs: [string, string, ThresholdLevel][] = [
    ...PEER_NAMES.map((p): [string, string, ThresholdLevel] => [p, p, 3]),
    ...LEVELS.map((l): [string, string, ThresholdLevel] => [`round-${l}`, roundPolicy, l]),
    ...LEVELS.map((l): [string, string, ThresholdLevel] => [`balance-${l}`, 'balance', l]),
  ];
  for (const [label, policy, level] of runs) {
    const settings = simulationSettings(config, trace, level);
    const summary = simulate(trace, {
      hosts: setup.hosts,
      hostCores: setup.hostCores,
      hostMemBytes: setup.hostMemBytes,
      policy,
      settings,
    }).summary;
    points[label] = point(summary);
    onRun?.(label, summary);
  }
  const meanCpuUse = meanDemandCores(trace) / (setup.hosts * setup.hostCores);
  return {
    trace: trace.name,
    targetUse: setup.targetUse,
    meanCpuUse: Number(meanCpuUse.toFixed(3)),
    vms: trace.vms.length,
    hosts: setup.hosts,
    hostCores: setup.hostCores,
    steps: trace.steps,
    points,
  };
}

export function dominates(a: Point, b: Point): boolean {
  return (
    a.overloadedHostSteps <= b.overloadedHostSteps && a.meanImbalance <= b.meanImbalance && a.migrations <= b.migrations
  );
}

/** The lowest level of `prefix` (`round` or `balance`) that dominates `peer`, or null. */
export function dominatingLevel(points: Record<string, Point>, peer: Point, prefix = 'round'): ThresholdLevel | null {
  for (const level of LEVELS) if (dominates(points[`${prefix}-${level}`]!, peer)) return level;
  return null;
}

export interface CaseVerdict {
  /** Per moving peer: the dominating level of the default round (null: not dominated); peers that moved nothing are left out. */
  dominatedBy: Partial<Record<PeerName, ThresholdLevel | null>>;
  /** The same for balance alone. */
  balanceDominatedBy: Partial<Record<PeerName, ThresholdLevel | null>>;
  /** Levels with more overloaded host-steps than doing nothing. */
  worseThanNone: ThresholdLevel[];
  /** The moving peer with the fewest overloaded host-steps (then the fewest migrations). */
  bestPeer: PeerName | null;
  /** Does the default level reach the best peer's overloaded host-steps with at most half its migrations? */
  defaultBeatsBestPeer: boolean | null;
  /** Migrations of each level over the one below it (null where the one below moved nothing). */
  ladder: (number | null)[];
  /** Is level 5's mean imbalance below ProxLB's? */
  topFlatterThanProxlb: boolean;
}

export function verdict(result: CaseResult, defaultLevel: ThresholdLevel): CaseVerdict {
  const { points } = result;
  const dominatedBy: CaseVerdict['dominatedBy'] = {};
  const balanceDominatedBy: CaseVerdict['balanceDominatedBy'] = {};
  for (const peer of MOVING_PEERS) {
    if (points[peer]!.migrations === 0) continue;
    dominatedBy[peer] = dominatingLevel(points, points[peer]!, 'round');
    balanceDominatedBy[peer] = dominatingLevel(points, points[peer]!, 'balance');
  }
  const none = points.none!;
  const worseThanNone = LEVELS.filter((l) => points[`round-${l}`]!.overloadedHostSteps > none.overloadedHostSteps);
  const moving = MOVING_PEERS.filter((p) => points[p]!.migrations > 0);
  const bestPeer =
    moving
      .slice()
      .sort(
        (a, b) =>
          points[a]!.overloadedHostSteps - points[b]!.overloadedHostSteps ||
          points[a]!.migrations - points[b]!.migrations,
      )[0] ?? null;
  const mine = points[`round-${defaultLevel}`]!;
  const defaultBeatsBestPeer =
    bestPeer === null
      ? null
      : mine.overloadedHostSteps <= points[bestPeer]!.overloadedHostSteps &&
        mine.migrations <= points[bestPeer]!.migrations / 2;
  const ladder = LEVELS.slice(1).map((l) => {
    const below = points[`round-${l - 1}`]!.migrations;
    return below === 0 ? null : Number((points[`round-${l}`]!.migrations / below).toFixed(2));
  });
  return {
    dominatedBy,
    balanceDominatedBy,
    worseThanNone,
    bestPeer,
    defaultBeatsBestPeer,
    ladder,
    topFlatterThanProxlb: points['round-5']!.meanImbalance < points.proxlb!.meanImbalance,
  };
}

export { simulationSettings };
