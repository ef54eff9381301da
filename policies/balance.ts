/**
 * balance: flatten the cluster (lower the imbalance score) move by move, DRS-like.
 *
 * 1. Mandatory moves, at every threshold level: a VM that breaks a hard rule where it is (must-pin,
 *    hard anti-affinity) goes to the best host that repairs it; a host whose predicted CPU or memory
 *    is above its capacity sheds VMs (only moves that also lower the score).
 * 2. Level 2..5: while the score is above the level's target, take the move (VM from one of the most
 *    loaded hosts to one of the least loaded) with the best net value and keep it only if
 *        gain > ratio(level) × (cost + softRulePenalty × soft rules broken)
 *    where gain is the drop of the imbalance score and cost comes from the VM's memory and dirty
 *    rate (cost.ts). Level 1 stops after the mandatory moves, like DRS's "conservative" setting.
 *
 * The levels follow DRS's migration threshold: priority-1 recommendations are mandatory, each level
 * to the right accepts moves with a smaller improvement (vSphere Resource Management, "DRS
 * Migration Threshold"). Our target and ratio per level are ours, tuned on the shared traces.
 */
import type { Plan, Snapshot } from '../src/model/index.ts';
import { Cluster, type HostLoad, type VmLoad } from './cluster.ts';
import { brokenHere, softDelta, sourceRefusal, vmRefusal } from './constraints.ts';
import { byKeyThenName, describeRefusals, findDestination } from './placement.ts';
import { cpuShare, memShare, pct, PlanBuilder } from './plan-builder.ts';
import type { PolicySettings, ThresholdLevel } from './settings.ts';

export interface LevelRule {
  /** Below this imbalance score, no discretionary move is made. */
  targetImbalance: number;
  /** A move is kept only if its gain exceeds this many times its cost. */
  gainOverCost: number;
}

export const THRESHOLD_LEVELS: Record<ThresholdLevel, LevelRule> = {
  1: { targetImbalance: Number.POSITIVE_INFINITY, gainOverCost: Number.POSITIVE_INFINITY },
  2: { targetImbalance: 0.15, gainOverCost: 8 },
  3: { targetImbalance: 0.1, gainOverCost: 4 },
  4: { targetImbalance: 0.05, gainOverCost: 2 },
  5: { targetImbalance: 0.02, gainOverCost: 1 },
};

/** How many of the most and least loaded hosts a step looks at (keeps a step O(VMs per host)). */
const SOURCE_HOSTS = 8;
const DEST_HOSTS = 16;

export function balance(snapshot: Snapshot, settings: PolicySettings, budget = settings.limits.movesPerRound, demandByVm?: ReadonlyMap<string, number>): Plan {
  const cluster = new Cluster(snapshot, settings, settings.weights, demandByVm);
  const plan = new PlanBuilder('balance', cluster, budget);
  const level = settings.balance.threshold;
  mandatoryMoves(cluster, plan);
  if (level === 1) {
    plan.notes.push(`threshold 1: only mandatory moves (VMs breaking a hard rule); imbalance ${cluster.imbalance().toFixed(3)}`);
    return plan.build();
  }
  overCapacityMoves(cluster, plan);
  discretionaryMoves(cluster, plan, THRESHOLD_LEVELS[level], level);
  return plan.build();
}

function usableHosts(cluster: Cluster): HostLoad[] {
  return cluster.hosts.filter((h) => h.usable);
}

function mandatoryMoves(cluster: Cluster, plan: PlanBuilder): void {
  const hosts = usableHosts(cluster);
  // VMs breaking a hard rule where they are.
  for (const vm of cluster.vms) {
    if (plan.remaining <= 0) break;
    const broken = brokenHere(cluster, vm);
    if (!broken) continue;
    const refusal = vmRefusal(cluster, vm, { ignoreCooldown: true }) ?? sourceRefusal(cluster, cluster.hostOf(vm));
    if (refusal) {
      plan.skip(refusal, vm);
      continue;
    }
    const ordered = hosts.slice().sort(byKeyThenName((h) => cluster.imbalanceAfter(vm, h)));
    const found = findDestination(cluster, vm, ordered, (dest) => (brokenAfter(cluster, vm, dest) ? { reason: broken.reason, detail: 'would still break the rule' } : null));
    if (!found.dest) {
      plan.skip({ reason: 'NO_DESTINATION', detail: `${broken.detail}; no host repairs it: ${describeRefusals(found.refused)}` }, vm);
      continue;
    }
    plan.move(vm, found.dest, `mandatory, ${broken.detail}`);
  }
}

/** Hosts whose predicted demand is above capacity shed VMs (level 2 and up: a large, certain gain). */
function overCapacityMoves(cluster: Cluster, plan: PlanBuilder): void {
  const hosts = usableHosts(cluster);
  const over = hosts.filter((h) => h.cpu > h.cpuLimitCores || h.mem > h.memBytes).sort(byKeyThenName((h) => -Math.max(cpuShare(h), memShare(h))));
  for (const host of over) {
    while (plan.remaining > 0 && (host.cpu > host.cpuLimitCores || host.mem > host.memBytes)) {
      const refusal = sourceRefusal(cluster, host);
      if (refusal) {
        plan.skip(refusal, undefined, host);
        break;
      }
      const best = bestMove(cluster, plan, [host], hosts, 0);
      if (!best) {
        plan.notes.push(`${host.name} is above capacity (CPU ${pct(cpuShare(host))}, mem ${pct(memShare(host))}) and no move off it lowers the imbalance`);
        break;
      }
      const what = host.cpu > host.cpuLimitCores ? `CPU ${pct(cpuShare(host))} > capacity ${pct(host.cpuLimitCores / host.cpuCores)}` : `memory ${pct(memShare(host))} > 100%`;
      plan.move(best.vm, best.dest, `${host.name} ${what}`);
    }
  }
}

/** Would the VM still break a hard rule on `dest`? (anti-affinity partners there, or not a must host) */
function brokenAfter(cluster: Cluster, vm: VmLoad, dest: HostLoad): boolean {
  if (vm.mustHosts && !vm.mustHosts.hosts.has(dest.name)) return true;
  return vm.antiHard.some((rel) => cluster.vms[rel.vm]!.host === dest.index);
}

interface Candidate {
  vm: VmLoad;
  dest: HostLoad;
  gain: number;
  costScore: number;
  net: number;
}

/**
 * The best single move from `sources` to `dests` by net value gain − ratio × (cost + soft penalty),
 * among moves that lower the score. Ratio 0 ranks by gain alone (mandatory moves).
 */
function bestMove(cluster: Cluster, plan: PlanBuilder, sources: readonly HostLoad[], dests: readonly HostLoad[], ratio: number): Candidate | null {
  const before = cluster.imbalance();
  let best: Candidate | null = null;
  for (const source of sources) {
    for (const vmIndex of source.vms) {
      const vm = cluster.vms[vmIndex]!;
      const refusal = vmRefusal(cluster, vm);
      if (refusal) {
        plan.skip(refusal, vm);
        continue;
      }
      for (const dest of dests) {
        if (dest === source) continue;
        const gain = before - cluster.imbalanceAfter(vm, dest);
        if (gain <= 1e-12) continue;
        if (best && ratio === 0 && gain <= best.gain) continue;
        const found = findDestination(cluster, vm, [dest], () => null);
        if (!found.dest) continue;
        const costScore = plan.cost(vm, dest).score + Math.max(0, softDelta(cluster, vm, dest)) * cluster.settings.softRulePenalty;
        const net = gain - ratio * costScore;
        if (!best || net > best.net + 1e-15 || (Math.abs(net - best.net) <= 1e-15 && (vm.name + dest.name) < (best.vm.name + best.dest.name))) {
          best = { vm, dest, gain, costScore, net };
        }
      }
    }
  }
  return best;
}

function discretionaryMoves(cluster: Cluster, plan: PlanBuilder, rule: LevelRule, level: ThresholdLevel): void {
  const hosts = usableHosts(cluster);
  if (hosts.length < 2) {
    plan.notes.push(`nothing to do: ${hosts.length} usable host(s)`);
    return;
  }
  for (;;) {
    const score = cluster.imbalance();
    if (score <= rule.targetImbalance) {
      plan.notes.push(
        plan.moves.length === 0
          ? `nothing to do: imbalance ${score.toFixed(3)} below threshold ${level}'s target ${rule.targetImbalance} (CPU σ ${cluster.deviation(0).toFixed(3)}, mem σ ${cluster.deviation(1).toFixed(3)})`
          : `imbalance ${score.toFixed(3)} now below threshold ${level}'s target ${rule.targetImbalance}`,
      );
      return;
    }
    if (plan.remaining <= 0) {
      plan.skip({ reason: 'ROUND_MOVE_LIMIT', detail: `${plan.budget} moves this round (limits.movesPerRound); imbalance still ${score.toFixed(3)}` });
      return;
    }
    const ordered = hosts.slice().sort(byKeyThenName((h) => cluster.weightedUse(h)));
    const sources: HostLoad[] = [];
    for (let i = ordered.length - 1; i >= 0 && sources.length < SOURCE_HOSTS; i--) {
      const refusal = sourceRefusal(cluster, ordered[i]!);
      if (refusal) plan.skip(refusal, undefined, ordered[i]!);
      else sources.push(ordered[i]!);
    }
    const dests = ordered.filter((h) => h.incoming < cluster.settings.limits.migrationsPerDestinationHost).slice(0, DEST_HOSTS);
    const best = bestMove(cluster, plan, sources, dests, rule.gainOverCost);
    if (!best) {
      plan.notes.push(`nothing to do: imbalance ${score.toFixed(3)} above target ${rule.targetImbalance} but no allowed move lowers it`);
      return;
    }
    if (best.net <= 0) {
      plan.skip(
        {
          reason: 'GAIN_BELOW_COST',
          detail: `best move ${best.vm.name} to ${best.dest.name} gains ${best.gain.toFixed(4)}, below ${rule.gainOverCost} × cost ${best.costScore.toFixed(4)} (threshold ${level})`,
        },
        best.vm,
      );
      plan.notes.push(`stopped: imbalance ${score.toFixed(3)}; the best remaining move does not pay for its migration at threshold ${level}`);
      return;
    }
    const source = cluster.hostOf(best.vm);
    plan.move(
      best.vm,
      best.dest,
      `balance, ${source.name} is among the most loaded (CPU ${pct(cpuShare(source))}, mem ${pct(memShare(source))})`,
      `; kept as gain > ${rule.gainOverCost} × cost at threshold ${level}`,
    );
  }
}
