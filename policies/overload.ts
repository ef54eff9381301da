/**
 * overload (hot spots): act only on hosts above the high watermark: memory committed to VMs above it, or
 * CPU whose forecast plus one standard deviation of its spread is above it (a host likely enough to
 * sample above the line, not only one whose mean is).
 * Off them, the moves worth most (objective.ts: spread and overload risk taken off, plus what brings
 * the host's committed memory back toward the watermark), each to a host that stays at or under the
 * high watermark, while each nets at least the threshold level's minimum gain (balance.ts). Threshold 1
 * reports hot hosts and moves nothing (hot spots are not mandatory moves).
 *
 *   watermark relief = max(0, memory committed share − high) before − after, on the hot host
 *
 * (in shares of capacity, not squared: the watermark is the operator's line, and every point above it
 * counts the same; CPU above it is already priced by the objective's spread and risk. Pricing it twice
 * cost migrations without fewer overloads on the shared traces.)
 *
 * In a consolidating round (settings.overload.destinationOrder `best-fit`) the spread is left out, CPU
 * above the watermark is relieved like memory, and destinations are tried fullest first under the low
 * watermark, so the light hosts consolidation is emptying are not refilled.
 */
import type { Plan, Snapshot } from '../src/model/index.ts';
import { THRESHOLD_LEVELS, usableHosts, valuedMoves } from './balance.ts';
import { type Cluster, workingCluster, type HostLoad, type VmLoad } from './cluster.ts';
import { underWatermark } from './constraints.ts';
import type { Demand } from './demand.ts';
import { byKeyThenName } from './placement.ts';
import { cpuShare, describeUse, memShare, PlanBuilder } from './plan-builder.ts';
import { pct } from './format.ts';
import type { PolicySettings } from './settings.ts';

export function overload(
  snapshot: Snapshot,
  settings: PolicySettings,
  budget = settings.limits.movesPerRound,
  demandByVm?: ReadonlyMap<string, Demand>,
  reuse?: Cluster,
): Plan {
  const cluster = workingCluster(snapshot, settings, demandByVm, reuse);
  const plan = new PlanBuilder('overload', cluster, budget);
  const { highWatermark: high, lowWatermark: low } = settings.overload;
  const hosts = usableHosts(cluster);
  /** CPU as judged hot: the forecast plus one standard deviation of its error (a noisy host is hot sooner). */
  const cpuWithSpread = (h: HostLoad) => (h.cpuDemandCores + Math.sqrt(h.cpuVarianceCoresSq)) / h.cpuCores;
  const isHot = (h: HostLoad) => cpuWithSpread(h) > high || memShare(h) > high;
  /** What makes a host hot, in words: its forecast CPU, that with its spread, or its memory committed. */
  const why = (h: HostLoad) =>
    cpuShare(h) > high
      ? `CPU ${pct(cpuShare(h))}`
      : cpuWithSpread(h) > high
        ? `CPU ${pct(cpuShare(h))} (${pct(cpuWithSpread(h))} with its spread)`
        : `memory committed ${pct(memShare(h))}`;
  const hot = hosts.filter(isHot).sort(byKeyThenName((h) => -Math.max(cpuShare(h), memShare(h))));
  const describe = (h: HostLoad) => `${h.name} (${describeUse(h)})`;
  if (hot.length === 0) {
    const hottest = hosts.slice().sort(byKeyThenName((h) => -Math.max(cpuShare(h), memShare(h))))[0];
    plan.notes.push(
      hottest
        ? `nothing to do: hottest host ${describe(hottest)} is not above high ${pct(high)}`
        : 'nothing to do: no usable host',
    );
    return plan.build();
  }
  const level = settings.balance.threshold;
  if (level === 1) {
    plan.notes.push(
      `threshold 1 moves only what rules require: ${hot.length} host(s) above high ${pct(high)} left as they are: ${hot.slice(0, 5).map(describe).join(', ')}`,
    );
    return plan.build();
  }
  const bestFit = settings.overload.destinationOrder === 'best-fit';
  const limit = bestFit ? Math.min(low, high) : high;
  // CPU above the line is already priced by the objective (its spread and overload risk); memory
  // committed is not (it is a limit, not spread by default), and in a consolidating round neither is CPU.
  const over = (cpu: number, mem: number, h: HostLoad) =>
    (bestFit ? Math.max(0, cpu / h.cpuCores - high) : 0) + Math.max(0, mem / h.memBytes - high);
  valuedMoves(
    cluster,
    plan,
    isHot,
    hosts,
    THRESHOLD_LEVELS[level].minGain,
    level,
    (source) => `${source.name} ${why(source)} > high ${pct(high)}`,
    {
      // In a consolidating round under the low watermark too (the tighter line is met first).
      lines: bestFit ? [underWatermark('low', low), underWatermark('high', high)] : [underWatermark('high', high)],
      extra: (vm: VmLoad) => {
        const source = cluster.hostOf(vm);
        return (
          over(source.cpuDemandCores, source.memCommittedBytes, source) -
          over(source.cpuDemandCores - vm.cpuDemandCores, source.memCommittedBytes - vm.memBytes, source)
        );
      },
      spreadWeight: bestFit ? 0 : THRESHOLD_LEVELS[level].spreadWeight,
      firstFit: bestFit,
      destOrder: bestFit ? (h) => -(cpuShare(h) + memShare(h) / 1000) : undefined,
      hasRoom: (h) => cpuShare(h) < limit && memShare(h) < limit,
    },
  );
  for (const host of hot)
    if (isHot(host)) plan.notes.push(`${describe(host)}: ${why(host)} still above high ${pct(high)} after this plan`);
  return plan.build();
}
