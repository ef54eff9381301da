/**
 * balance: take the moves that are worth most (objective.ts: spread and overload risk taken off, less
 * the migration's cost), best first, while each is worth at least its threshold level's minimum gain.
 *
 * 1. Mandatory moves, at every threshold level: a VM that breaks a hard rule where it is (must-pin,
 *    hard anti-affinity) goes to the host that repairs it with the best imbalance; a host whose
 *    committed memory is above its size sheds VMs.
 * 2. Level 2..5: while the best allowed move (a VM on one of the most urgent hosts to one of the least
 *    loaded, or to a host already certain to be overloaded when that keeps another under capacity) has
 *        value − cost − soft rule penalty ≥ minGain(level)
 *    take it. Level 1 stops after the mandatory moves, like DRS's "conservative" setting.
 *
 * The levels follow DRS's migration threshold: level 1 applies mandatory moves only, each level to the
 * right accepts moves with a smaller improvement (vSphere Resource Management, "DRS Migration
 * Threshold"). The minimum gains are ours: each level takes about three times the migrations of the one
 * below on the shared traces (bench/README.md, "quality").
 */
import type { Plan, SkipReason, Snapshot } from '../src/model/index.ts';
import { type Cluster, workingCluster, type HostLoad, type VmLoad } from './cluster.ts';
import { brokenHere, sourceRefusal, vmRefusal, type DestFilter } from './constraints.ts';
import type { Demand } from './demand.ts';
import { moveValue, sourceUrgency, type MoveValue } from './objective.ts';
import { overloadChance } from './risk.ts';
import { byKeyThenName, describeRefusals, findDestination, sortedByKey } from './placement.ts';
import { cpuShare, describeUse, memShare, PlanBuilder } from './plan-builder.ts';
import { pct } from './format.ts';
import type { PolicySettings, ThresholdLevel } from './settings.ts';

export interface LevelRule {
  /** A discretionary move is kept only if its net value (objective.ts) is at least this. */
  minGain: number;
  /** What flattening weighs against overload risk: the higher levels even out use, the lower ones act on risk. */
  spreadWeight: number;
  /** The imbalance score a cluster at this level is expected to stay under: reports call a cluster "balanced" below it. */
  targetImbalance: number;
}

export const THRESHOLD_LEVELS: Record<ThresholdLevel, LevelRule> = {
  1: { minGain: Number.POSITIVE_INFINITY, spreadWeight: 0, targetImbalance: Number.POSITIVE_INFINITY },
  2: { minGain: 0.1, spreadWeight: 0.3, targetImbalance: 0.15 },
  3: { minGain: 0.03, spreadWeight: 1, targetImbalance: 0.1 },
  4: { minGain: 0.01, spreadWeight: 2, targetImbalance: 0.07 },
  5: { minGain: 0.003, spreadWeight: 4, targetImbalance: 0.05 },
};

/** How many of the most urgent and least loaded hosts a step looks at (keeps a step O(VMs per host)). */
export const SOURCE_HOSTS = 8;
export const DEST_HOSTS = 16;
/** Above (TARGET_MARGIN of) the level's target imbalance a move need only be worth this share of the minimum gain. */
export const ABOVE_TARGET = 0.1;
/**
 * Small gains are taken until the imbalance is this share of the target: a cluster left just under
 * its target is carried back over it by the next samples' noise (and a report would then call it
 * unbalanced).
 */
export const TARGET_MARGIN = 0.8;
/** Hosts already all but certain to be above capacity that may take load to keep another under it. */
const TRIAGE_HOSTS = 4;
const CERTAIN = 0.95;

export function balance(
  snapshot: Snapshot,
  settings: PolicySettings,
  budget = settings.limits.movesPerRound,
  demandByVm?: ReadonlyMap<string, Demand>,
  reuse?: Cluster,
): Plan {
  const cluster = workingCluster(snapshot, settings, demandByVm, reuse);
  const plan = new PlanBuilder('balance', cluster, budget);
  const level = settings.balance.threshold;
  mandatoryMoves(cluster, plan);
  if (level === 1) {
    plan.notes.push(
      `threshold 1: only mandatory moves (VMs breaking a hard rule, memory above a host's size); imbalance ${cluster.imbalance().toFixed(3)}`,
    );
    return plan.build();
  }
  const hosts = usableHosts(cluster);
  if (hosts.length < 2) {
    plan.notes.push(`nothing to do: ${hosts.length} usable host(s)`);
    return plan.build();
  }
  const rule = THRESHOLD_LEVELS[level];
  valuedMoves(
    cluster,
    plan,
    () => true,
    hosts,
    rule.minGain,
    level,
    (source) => `balance, ${source.name} is among the most urgent hosts (${describeUse(source)})`,
    { spreadWeight: rule.spreadWeight },
  );
  return plan.build();
}

export function usableHosts(cluster: Cluster): HostLoad[] {
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
    // DEST_FILTERS refuse every host where it would still break the rule (must-pin, hard anti-affinity).
    const found = findDestination(cluster, vm, ordered);
    if (!found.dest) {
      plan.skip(
        {
          reason: 'NO_DESTINATION',
          detail: `${broken.detail}; no host repairs it: ${describeRefusals(found.refused)}`,
        },
        vm,
      );
      continue;
    }
    plan.move(vm, found.dest, `mandatory, ${broken.detail}`);
  }
  // Hosts holding more committed memory than they have: the smallest VM that brings them under, else the largest.
  for (const host of hosts.filter((h) => h.memCommittedBytes > h.memBytes)) {
    while (plan.remaining > 0 && host.memCommittedBytes > host.memBytes) {
      const refusal = sourceRefusal(cluster, host);
      if (refusal) {
        plan.skip(refusal, undefined, host);
        break;
      }
      const excess = host.memCommittedBytes - host.memBytes;
      const candidates = host.vms.map((i) => cluster.vms[i]!).filter((vm) => !vmRefusal(cluster, vm));
      candidates.sort(
        byKeyThenName((vm) => (vm.memBytes >= excess ? vm.memBytes : Number.MAX_SAFE_INTEGER - vm.memBytes)),
      );
      const ordered = hosts.slice().sort(byKeyThenName((h) => memShare(h)));
      const move = candidates
        .map((vm) => ({ vm, dest: findDestination(cluster, vm, ordered).dest }))
        .find((c) => c.dest);
      if (!move) {
        plan.notes.push(
          `${host.name} has ${pct(memShare(host))} of its memory committed to VMs and no VM on it fits elsewhere`,
        );
        break;
      }
      plan.move(move.vm, move.dest!, `mandatory, ${host.name} memory committed ${pct(memShare(host))} > 100%`);
    }
  }
}

interface Candidate extends MoveValue {
  vm: VmLoad;
  dest: HostLoad;
}

export interface ValueOptions {
  /** A policy's own lines for destinations (overload: stay under the high watermark), checked after DEST_FILTERS. */
  lines?: readonly DestFilter[];
  /** Value the policy adds to the objective's (overload: watermark relief). */
  extra?: (vm: VmLoad, dest: HostLoad) => number;
  /** What the spread weighs against the risk (the level's `spreadWeight`; 0 in a consolidating round, which packs). */
  spreadWeight?: number;
  /** Each VM goes to the first destination (in the order given) that takes it: best fit when the order is fullest first. */
  firstFit?: boolean;
}

/**
 * The most valuable allowed move from `sources` to `dests` (objective.ts), or null when no move has
 * a positive value. Ties go to the first found (sources in urgency order, then VMs, then `dests` in
 * the order given), so the same snapshot gives the same plan.
 */
export function bestValuedMove(
  cluster: Cluster,
  plan: PlanBuilder,
  sources: readonly HostLoad[],
  dests: readonly HostLoad[],
  options: ValueOptions = {},
): { best: Candidate | null; refused: Map<SkipReason, number> } {
  let best: Candidate | null = null;
  const refused = new Map<SkipReason, number>();
  const spreadBefore = cluster.spread();
  for (const source of sources) {
    for (const vmIndex of source.vms) {
      const vm = cluster.vms[vmIndex]!;
      const refusal = vmRefusal(cluster, vm);
      if (refusal) {
        plan.skip(refusal, vm);
        continue;
      }
      if (vm.cpuDemandCores <= 0 && vm.memBytes <= 0) continue;
      for (const dest of dests) {
        if (dest === source) continue;
        const found = findDestination(cluster, vm, [dest], options.lines, { allowTriage: true });
        if (!found.dest) {
          for (const [reason, count] of found.refused) refused.set(reason, (refused.get(reason) ?? 0) + count);
          continue;
        }
        const value = moveValue(cluster, vm, dest, plan.cost(vm, dest).score, options.spreadWeight ?? 1, spreadBefore);
        const extra = options.extra?.(vm, dest) ?? 0;
        value.value += extra;
        value.net += extra;
        if (value.value <= 1e-12) {
          if (options.firstFit) break;
          continue;
        }
        // Strictly better only: on a tie the first found stays (sources by urgency, dests in the caller's order).
        if (!best || value.net > best.net + 1e-12) {
          best = { vm, dest, ...value };
        }
        if (options.firstFit) break;
      }
    }
  }
  return { best, refused };
}

/**
 * Takes the most valuable moves off the most urgent hosts `inPool` accepts (at most SOURCE_HOSTS of
 * them, within the source limits) to the least loaded of `hosts` (and hosts certain to be overloaded
 * anyway), while each nets at least `minGain`.
 */
export function valuedMoves(
  cluster: Cluster,
  plan: PlanBuilder,
  inPool: (host: HostLoad) => boolean,
  hosts: readonly HostLoad[],
  minGain: number,
  level: ThresholdLevel,
  why: (source: HostLoad) => string,
  options: ValueOptions & {
    destOrder?: (h: HostLoad) => number;
    /** Hosts with room at all (overload: under its limit), so the DEST_HOSTS looked at are ones that can take a VM. */
    hasRoom?: (h: HostLoad) => boolean;
    stopWhen?: () => boolean;
  } = {},
): void {
  for (;;) {
    if (options.stopWhen?.()) return;
    if (plan.remaining <= 0) {
      plan.skip({
        reason: 'ROUND_MOVE_LIMIT',
        detail: `${plan.budget} moves this round (limits.movesPerRound); imbalance still ${cluster.imbalance().toFixed(3)}`,
      });
      return;
    }
    const meanUse = hosts.reduce((total, h) => total + cluster.weightedUse(h), 0) / hosts.length;
    const ordered = sortedByKey(hosts.filter(inPool), (h) => -sourceUrgency(cluster, h, meanUse));
    const sources: HostLoad[] = [];
    for (const host of ordered) {
      if (sources.length >= SOURCE_HOSTS) break;
      const refusal = sourceRefusal(cluster, host);
      if (refusal) plan.skip(refusal, undefined, host);
      else sources.push(host);
    }
    if (sources.length === 0) {
      if (ordered.length === 0) plan.notes.push(`nothing left to relieve: imbalance ${cluster.imbalance().toFixed(3)}`);
      return;
    }
    const open = hosts.filter((h) => h.incoming < cluster.settings.limits.migrationsPerDestinationHost);
    const dests = sortedByKey(
      options.hasRoom ? open.filter(options.hasRoom) : open,
      options.destOrder ?? ((h) => cluster.weightedUse(h)),
    ).slice(0, DEST_HOSTS);
    // Triage: hosts all but certain to be over capacity anyway (CPU above its limit, so the chance is ≥ ½ first).
    const certain = open.filter(
      (h) => h.cpuDemandCores > h.cpuLimitCores && !dests.includes(h) && overloadChance(cluster, h) >= CERTAIN,
    );
    for (const h of sortedByKey(certain, (h) => -cpuShare(h)).slice(0, TRIAGE_HOSTS)) dests.push(h);
    const { best, refused } = bestValuedMove(cluster, plan, sources, dests, options);
    const score = cluster.imbalance();
    // Above the level's target the level's promise is not kept yet: smaller gains are taken too.
    const target = THRESHOLD_LEVELS[level].targetImbalance;
    const needed = score > target * TARGET_MARGIN ? minGain * ABOVE_TARGET : minGain;
    if (!best) {
      if (refused.size > 0) {
        for (const source of sources)
          plan.skip(
            { reason: 'NO_DESTINATION', detail: `no allowed move off ${source.name}: ${describeRefusals(refused)}` },
            undefined,
            source,
          );
      }
      plan.notes.push(
        score <= target
          ? `nothing to do: imbalance ${score.toFixed(3)} below threshold ${level}'s target ${target}, and no allowed move improves the cluster`
          : `stopped: imbalance ${score.toFixed(3)} (threshold ${level}'s target ${target}); no allowed move off the ` +
              `${sources.length} most urgent host(s) improves the cluster${refused.size ? ` (${describeRefusals(refused)})` : ''}`,
      );
      return;
    }
    if (best.net < needed) {
      plan.skip(
        {
          reason: 'GAIN_BELOW_COST',
          detail:
            `best move ${best.vm.name} to ${best.dest.name} is worth ${best.value.toFixed(4)} (spread ${best.spread.toFixed(4)}, ` +
            `risk ${best.risk.toFixed(4)}) − cost ${best.costScore.toFixed(4)}, below threshold ${level}'s ${needed}`,
        },
        best.vm,
      );
      plan.notes.push(
        score <= target
          ? `nothing to do: imbalance ${score.toFixed(3)} below threshold ${level}'s ` +
              `target ${target}; the best move is worth less than the level asks (${needed})`
          : `stopped: imbalance ${score.toFixed(3)} (threshold ${level}'s target ` +
              `${target}); the best remaining move is worth less than the level asks (${needed})`,
      );
      return;
    }
    const source = cluster.hostOf(best.vm);
    plan.move(
      best.vm,
      best.dest,
      why(source),
      `; worth ${best.value.toFixed(4)} (spread ${best.spread.toFixed(4)}, risk ` +
        `${best.risk.toFixed(4)}) − cost ${best.costScore.toFixed(4)} ≥ ${needed} at threshold ${level}`,
      best.value,
    );
  }
}
