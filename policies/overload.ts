/**
 * overload (hot spots): act only on hosts whose predicted CPU or memory use is above the high
 * watermark. For each, choose the cheapest set of VMs (least memory to copy) whose removal brings it
 * under the high watermark, each to the least loaded host that stays under the low watermark.
 *
 * Cheapest set: a small covering knapsack, solved greedily, then improved:
 *   relief(vm) = min(cpu, needCpu)/needCpu + min(mem, needMem)/needMem     (0..2; ≥ 1 covers a need)
 *   candidates in order of memBytes / relief (memory copied per unit of relief), placed while not covered;
 *   then any chosen VM whose removal keeps the host covered is dropped (largest memory first);
 *   then a single VM that covers alone with less memory than the whole set replaces it.
 * When the host may only send k more migrations this round (limits), the set is cut to k.
 */
import type { Plan, Snapshot } from '../src/model/index.ts';
import { Cluster, type HostLoad, type VmLoad } from './cluster.ts';
import { sourceRefusal, vmRefusal, type Refusal } from './constraints.ts';
import { byKeyThenName, describeRefusals, findDestination, reposition } from './placement.ts';
import { cpuShare, memShare, pct, PlanBuilder } from './plan-builder.ts';
import type { PolicySettings } from './settings.ts';

export function overload(snapshot: Snapshot, settings: PolicySettings, budget = settings.limits.movesPerRound, demandByVm?: ReadonlyMap<string, number>): Plan {
  const cluster = new Cluster(snapshot, settings, settings.weights, demandByVm);
  const plan = new PlanBuilder('overload', cluster, budget);
  const { highWatermark: high, lowWatermark: low } = settings.overload;
  const usable = cluster.hosts.filter((h) => h.usable);
  const hot = usable.filter((h) => cpuShare(h) > high || memShare(h) > high).sort(byKeyThenName((h) => -Math.max(cpuShare(h), memShare(h))));
  if (hot.length === 0) {
    const hottest = usable.slice().sort(byKeyThenName((h) => -Math.max(cpuShare(h), memShare(h))))[0];
    plan.notes.push(
      hottest
        ? `nothing to do: hottest host ${hottest.name} is at CPU ${pct(cpuShare(hottest))}, mem ${pct(memShare(hottest))}, not above high ${pct(high)}`
        : 'nothing to do: no usable host',
    );
    return plan.build();
  }
  // Destinations: least loaded first (CPU, then memory), or most loaded first for best fit.
  const underLow = (vm: VmLoad) => (dest: HostLoad): Refusal | null =>
    (dest.cpu + vm.cpu) / dest.cpuCores > low || (dest.mem + vm.mem) / dest.memBytes > low
      ? { reason: 'DEST_OVER_LOW_WATERMARK', detail: `${dest.name} would be above low ${pct(low)}` }
      : null;
  // Destinations, kept sorted across all hot hosts: every change of a host's load repositions it
  // (one binary insertion) instead of re-sorting a thousand hosts for each hot one.
  const sign = settings.overload.destinationOrder === 'best-fit' ? -1 : 1;
  const destKey = (h: HostLoad) => sign * (cpuShare(h) + memShare(h) / 1000);
  const order = usable.slice().sort(byKeyThenName(destKey));
  const moved = (...hosts: HostLoad[]) => {
    for (const h of hosts) if (h.usable) reposition(order, h, destKey);
  };
  for (const host of hot) {
    if (plan.remaining <= 0) {
      plan.skip({ reason: 'ROUND_MOVE_LIMIT', detail: `${host.name} still above high ${pct(high)}: ${plan.budget} moves this round (limits.movesPerRound)` }, undefined, host);
      continue;
    }
    const limitRefusal = sourceRefusal(cluster, host);
    if (limitRefusal) {
      plan.skip(limitRefusal, undefined, host);
      continue;
    }
    const allowed = Math.min(plan.remaining, cluster.settings.limits.migrationsPerSourceHost - host.outgoing, cluster.settings.limits.migrationsInCluster - cluster.migrations);
    const needCpu = Math.max(0, host.cpu - high * host.cpuCores);
    const needMem = Math.max(0, host.mem - high * host.memBytes);
    const relief = (vm: VmLoad) => (needCpu > 0 ? Math.min(vm.cpu, needCpu) / needCpu : 0) + (needMem > 0 ? Math.min(vm.mem, needMem) / needMem : 0);
    const covered = () => host.cpu <= high * host.cpuCores + 1e-9 && host.mem <= high * host.memBytes + 1e-9;
    const candidates: VmLoad[] = [];
    for (const index of host.vms) {
      const vm = cluster.vms[index]!;
      const refusal = vmRefusal(cluster, vm);
      if (refusal) plan.skip(refusal, vm);
      else if (relief(vm) > 0) candidates.push(vm);
    }
    candidates.sort(byKeyThenName((vm) => vm.mem / relief(vm)));
    // Greedy placement (tentative: applied to the working state, reverted below).
    const picked: { vm: VmLoad; dest: HostLoad }[] = [];
    for (const vm of candidates) {
      if (covered()) break;
      const found = findDestination(cluster, vm, order, underLow(vm), { ignoreLimits: true });
      if (!found.dest) {
        plan.skip({ reason: 'NO_DESTINATION', detail: `no host for ${vm.name} stays under low ${pct(low)}: ${describeRefusals(found.refused)}` }, vm);
        continue;
      }
      cluster.apply(vm, found.dest);
      picked.push({ vm, dest: found.dest });
      moved(found.dest, host);
    }
    // Drop VMs the set does not need, largest memory first.
    for (const pick of picked.slice().sort((a, b) => b.vm.mem - a.vm.mem || (a.vm.name < b.vm.name ? -1 : 1))) {
      if (!covered()) break;
      cluster.revert(pick.vm, host);
      if (covered()) picked.splice(picked.indexOf(pick), 1);
      else cluster.apply(pick.vm, pick.dest);
      moved(pick.dest, host);
    }
    const wasCovered = covered();
    for (const pick of picked.slice().reverse()) {
      cluster.revert(pick.vm, host);
      moved(pick.dest, host);
    }
    let chosen = picked;
    // A single VM that covers alone, with less memory than the set.
    const setMem = picked.reduce((total, pick) => total + pick.vm.mem, 0);
    const singles = candidates.filter((vm) => (needCpu === 0 || vm.cpu >= needCpu) && (needMem === 0 || vm.mem >= needMem) && (!wasCovered || vm.mem < setMem || allowed < picked.length));
    for (const vm of singles.sort(byKeyThenName((vm) => vm.mem))) {
      const found = findDestination(cluster, vm, order, underLow(vm));
      if (found.dest) {
        chosen = [{ vm, dest: found.dest }];
        break;
      }
    }
    if (chosen.length > allowed) {
      // Keep the biggest relief first when the limits cut the set.
      chosen = chosen.slice().sort((a, b) => relief(b.vm) - relief(a.vm) || (a.vm.name < b.vm.name ? -1 : 1)).slice(0, allowed);
      plan.notes.push(`${host.name}: the set to bring it under high is cut to ${allowed} move(s) by the migration limits`);
    }
    if (chosen.length === 0) {
      plan.notes.push(`${host.name} is above high ${pct(high)} (CPU ${pct(cpuShare(host))}, mem ${pct(memShare(host))}) but no VM can go anywhere under low ${pct(low)}`);
      continue;
    }
    const what = cpuShare(host) > high ? `CPU ${pct(cpuShare(host))} > high ${pct(high)}` : `memory ${pct(memShare(host))} > high ${pct(high)}`;
    for (const pick of chosen) {
      // The destination was chosen against the state before this host's moves; re-check it now.
      let dest: HostLoad | null = pick.dest;
      const recheck = findDestination(cluster, pick.vm, [pick.dest], underLow(pick.vm));
      if (!recheck.dest) dest = findDestination(cluster, pick.vm, order, underLow(pick.vm)).dest;
      if (!dest) {
        plan.skip({ reason: 'NO_DESTINATION', detail: `no host for ${pick.vm.name} stays under low ${pct(low)}` }, pick.vm);
        continue;
      }
      plan.move(pick.vm, dest, `${host.name} ${what}`);
      moved(dest, host);
    }
    if (!covered()) plan.notes.push(`${host.name} still above high ${pct(high)} after this round (CPU ${pct(cpuShare(host))}, mem ${pct(memShare(host))})`);
  }
  return plan.build();
}
