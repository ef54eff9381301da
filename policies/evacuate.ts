/**
 * evacuate: empty the hosts in maintenance, largest VMs first (the hardest to place go while there
 * is the most room), each to the least loaded host that takes it under every hard rule, preferring
 * hosts that stay under the high watermark. Evacuation is mandatory, so it passes over the
 * cooldown and the ping-pong rule; it still respects ignored VMs, quarantine, in-flight migrations
 * and the per-host and per-round limits (a host with many VMs is emptied over several rounds).
 */
import type { Plan, Snapshot } from '../src/model/index.ts';
import type { Demand } from './demand.ts';
import { type Cluster, workingCluster, type HostLoad, type VmLoad } from './cluster.ts';
import { sourceRefusal, underWatermark, vmRefusal } from './constraints.ts';
import { byKeyThenName, describeRefusals, findDestination } from './placement.ts';
import { cpuShare, memShare, PlanBuilder } from './plan-builder.ts';
import { pct } from './format.ts';
import type { PolicySettings } from './settings.ts';

export function evacuate(
  snapshot: Snapshot,
  settings: PolicySettings,
  budget = settings.limits.movesPerRound,
  demandByVm?: ReadonlyMap<string, Demand>,
  reuse?: Cluster,
): Plan {
  const cluster = workingCluster(snapshot, settings, demandByVm, reuse);
  const plan = new PlanBuilder('evacuate', cluster, budget);
  // Hosts that stay under the high watermark on CPU are preferred; any host the rules allow will do.
  const underHigh = [underWatermark('high', settings.overload.highWatermark, 'cpu')];
  const maintenance = cluster.hosts.filter((h) => h.state.maintenance).sort(byKeyThenName(() => 0));
  if (maintenance.length === 0) {
    plan.notes.push('nothing to do: no host is in maintenance');
    return plan.build();
  }
  const usable = cluster.hosts.filter((h) => h.usable);
  const sign = settings.overload.destinationOrder === 'best-fit' ? -1 : 1;
  const destinations = () => usable.slice().sort(byKeyThenName((h) => sign * (cpuShare(h) + memShare(h) / 1000)));
  for (const host of maintenance) {
    if (host.state.status !== 'up') {
      plan.notes.push(`${host.name} is in maintenance but ${host.state.status}: its VMs cannot be moved live`);
      continue;
    }
    const vms = host.vms
      .map((i) => cluster.vms[i]!)
      .sort(byKeyThenName((vm: VmLoad) => -(vm.memBytes + vm.cpuDemandCores * 1e6)));
    for (const vm of vms) {
      if (plan.remaining <= 0) {
        plan.skip(
          {
            reason: 'ROUND_MOVE_LIMIT',
            detail: `${vm.name} waits for the next round (limits.movesPerRound ${plan.budget})`,
          },
          vm,
          host,
        );
        continue;
      }
      const refusal = vmRefusal(cluster, vm, { ignoreCooldown: true }) ?? sourceRefusal(cluster, host);
      if (refusal) {
        plan.skip(refusal, vm, host);
        continue;
      }
      const order = destinations();
      let found = findDestination(cluster, vm, order, underHigh, { ignorePingPong: true });
      if (!found.dest) found = findDestination(cluster, vm, order, [], { ignorePingPong: true });
      if (!found.dest) {
        plan.skip(
          {
            reason: 'NO_DESTINATION',
            detail: `${vm.name} cannot leave ${host.name}: ${describeRefusals(found.refused)}`,
          },
          vm,
          host,
        );
        continue;
      }
      plan.move(vm, found.dest, `${host.name} in maintenance`);
    }
    const left = host.vms.length;
    plan.notes.push(
      left === 0
        ? `${host.name} (maintenance) will be empty`
        : `${host.name} (maintenance) still holds ${left} VM(s) after this round`,
    );
  }
  return plan.build();
}
