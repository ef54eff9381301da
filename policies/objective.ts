/**
 * The judgement: what one move is worth, in one unit for every policy that weighs moves (balance and
 * overload). Two things make a cluster worse for its VMs, and a move is worth what it takes off both:
 *
 *   spread   = Σ_r w_r · Σ_hosts (use_r − mean use_r)² / Σ_r w_r        (Cluster.spread; use = predicted share)
 *   risk     = risk.weight · Σ_hosts P_h
 *   P_h      = Φ((cpu_h − cpuLimit_h) / σ_h),  σ_h = √(cpuVar_h + (risk.spreadFloor · cores_h)²)
 *   value    = (s · spread + risk) before the move − after it,  s = the threshold level's spread weight
 *
 * P_h is the chance that the host's next sample is above its CPU capacity, with the host's forecast
 * (its VMs' forecasts summed, demand.ts) as the mean and their forecast errors as independent spreads.
 * The spread is the cluster's imbalance before the square root and without dividing by the number of
 * hosts, so one move's value does not shrink as the cluster grows. A move is kept when
 *
 *   value − cost.score − softRulePenalty · (soft rules it breaks − repairs) ≥ minGain(threshold level)
 *
 * When the whole cluster wants more CPU than it has, spreading the excess over every host overloads them
 * all; P_h then favours keeping as many hosts under capacity as possible (the excess is no smaller
 * either way: Σ max(0, cpu − limit) does not grow when load moves between hosts that are both over).
 */
import type { Cluster, HostLoad, VmLoad } from './cluster.ts';
import { softDelta } from './constraints.ts';
import { overloadChance } from './risk.ts';

export interface MoveValue {
  /** Spread taken off. */
  spread: number;
  /** Weighted expected overloaded hosts taken off. */
  risk: number;
  /** spread + risk */
  value: number;
  /** value − migration cost − soft rule penalty: what the threshold is compared with. */
  net: number;
  costScore: number;
}

/** A move's value with the spread weighted by `spreadWeight` (the threshold level's, see balance.ts). */
export function moveValue(
  cluster: Cluster,
  vm: VmLoad,
  dest: HostLoad,
  costScore: number,
  spreadWeight = 1,
  spreadBefore = cluster.spread(),
): MoveValue {
  const source = cluster.hostOf(vm);
  const spread = spreadWeight === 0 ? 0 : spreadWeight * (spreadBefore - cluster.spreadAfter(vm, dest));
  const riskBefore = overloadChance(cluster, source) + overloadChance(cluster, dest);
  const riskAfter =
    overloadChance(
      cluster,
      source,
      source.cpuDemandCores - vm.cpuDemandCores,
      source.cpuVarianceCoresSq - vm.cpuVarianceCoresSq,
    ) +
    overloadChance(
      cluster,
      dest,
      dest.cpuDemandCores + vm.cpuDemandCores,
      dest.cpuVarianceCoresSq + vm.cpuVarianceCoresSq,
    );
  const risk = cluster.settings.risk.weight * (riskBefore - riskAfter);
  const value = spread + risk;
  const penalty = Math.max(0, softDelta(cluster, vm, dest)) * cluster.settings.softRulePenalty;
  return { spread, risk, value, net: value - costScore - penalty, costScore: costScore + penalty };
}

/**
 * How urgently a host should give up load: its weighted risk plus how far its use is above the
 * cluster's mean (squared, signed so the least loaded hosts sort last).
 */
export function sourceUrgency(cluster: Cluster, host: HostLoad, meanUse: number): number {
  const above = cluster.weightedUse(host) - meanUse;
  return cluster.settings.risk.weight * overloadChance(cluster, host) + Math.sign(above) * above * above;
}
