/**
 * consolidate (density / power saving): pack VMs onto fewer hosts, keeping `headroom` free on every
 * host that receives VMs and `spareHosts` empty hosts powered on, and name the hosts that can be
 * powered down (plan.powerDownHosts).
 *
 * Hosts are tried from the least loaded (fewest VMs, least CPU). A host is emptied only if a trial
 * placement of all its VMs succeeds (best fit: the most loaded receiver that stays under
 * min(1 − headroom, overload's low watermark) for CPU and memory, so the overload policy of the next
 * round does not undo the packing); then as many of those moves as the limits allow are planned,
 * and the rest follow in the next rounds.
 */
import type { Plan, Snapshot } from '../src/model/index.ts';
import type { Demand } from './demand.ts';
import { type Cluster, workingCluster, type HostLoad, type VmLoad } from './cluster.ts';
import {
  keepsHeadroom,
  notBeingEmptied,
  packingRisk,
  sourceRefusal,
  underWatermark,
  vmRefusal,
} from './constraints.ts';
import { byKeyThenName, describeRefusals, findDestination, reposition } from './placement.ts';
import { cpuShare, PlanBuilder } from './plan-builder.ts';
import { pct } from './format.ts';
import type { PolicySettings } from './settings.ts';

/**
 * A receiver is packed only while its next sample stays under its CPU capacity but for this chance
 * (objective.ts): the headroom is kept on the forecast, this on its spread, so hosts of noisy VMs are
 * packed less tightly than hosts of steady ones.
 */
const PACKED_RISK = 0.001;

export function consolidate(
  snapshot: Snapshot,
  settings: PolicySettings,
  budget = settings.limits.movesPerRound,
  demandByVm?: ReadonlyMap<string, Demand>,
  reuse?: Cluster,
): Plan {
  const cluster = workingCluster(snapshot, settings, demandByVm, reuse);
  const plan = new PlanBuilder('consolidate', cluster, budget);
  const { headroom, spareHosts } = settings.consolidate;
  const usable = cluster.hosts.filter((h) => h.usable);
  const emptied = new Set<number>();
  // Never pack above the overload policy's low watermark, or the next round's overload would undo it.
  // Receivers stay under the low watermark and keep the headroom, the tighter line checked first so a
  // refusal names the line that binds; and they are packed only while rarely above capacity.
  const low = settings.overload.lowWatermark;
  const lines = [
    notBeingEmptied(emptied),
    ...(low <= 1 - headroom
      ? [underWatermark('low', low), keepsHeadroom(headroom)]
      : [keepsHeadroom(headroom), underWatermark('low', low)]),
    packingRisk(PACKED_RISK),
  ];
  const donors = usable.filter((h) => h.vms.length > 0).sort(byKeyThenName((h) => h.vms.length * 1e3 + cpuShare(h)));
  for (const host of donors) {
    if (plan.remaining <= 0) break;
    if (usable.filter((h) => h.vms.length > 0 && !emptied.has(h.index)).length <= 1) break;
    const limit = sourceRefusal(cluster, host);
    if (limit) {
      plan.skip(limit, undefined, host);
      continue;
    }
    const vms = host.vms
      .map((i) => cluster.vms[i]!)
      .sort(byKeyThenName((vm: VmLoad) => -(vm.memBytes + vm.cpuDemandCores * 1e6)));
    const stuck = vms.map((vm) => [vm, vmRefusal(cluster, vm)] as const).find(([, refusal]) => refusal);
    if (stuck) {
      plan.skip(
        { reason: stuck[1]!.reason, detail: `${host.name} cannot be emptied: ${stuck[1]!.detail}` },
        stuck[0],
        host,
      );
      continue;
    }
    // Trial: can every VM go somewhere (limits aside)?
    emptied.add(host.index);
    const trial: { vm: VmLoad; dest: HostLoad }[] = [];
    let failed: string | null = null;
    const receiverKey = (h: HostLoad) => -cpuShare(h);
    const receivers = usable.slice().sort(byKeyThenName(receiverKey));
    for (const vm of vms) {
      const found = findDestination(cluster, vm, receivers, lines, { ignoreLimits: true });
      if (!found.dest) {
        failed = `${vm.name} fits nowhere with ${pct(headroom)} headroom: ${describeRefusals(found.refused)}`;
        break;
      }
      cluster.apply(vm, found.dest);
      reposition(receivers, found.dest, receiverKey);
      trial.push({ vm, dest: found.dest });
    }
    for (const step of trial.slice().reverse()) cluster.revert(step.vm, host);
    if (failed) {
      emptied.delete(host.index);
      plan.skip({ reason: 'NO_DESTINATION', detail: `${host.name} cannot be emptied: ${failed}` }, undefined, host);
      continue;
    }
    for (const { vm, dest } of trial) {
      if (plan.remaining <= 0) break;
      const refusal = sourceRefusal(cluster, host);
      if (refusal) {
        plan.notes.push(`${host.name}: ${host.vms.length} VM(s) left to move in later rounds (${refusal.detail})`);
        break;
      }
      const found = findDestination(cluster, vm, [dest], lines);
      const target =
        found.dest ?? findDestination(cluster, vm, usable.slice().sort(byKeyThenName((h) => -cpuShare(h))), lines).dest;
      if (!target) {
        plan.notes.push(`${host.name}: ${vm.name} waits for a destination (migration limits this round)`);
        break;
      }
      plan.move(vm, target, `consolidate, emptying ${host.name} (${vms.length} VM(s)) for power-down`);
    }
  }
  const empty = usable
    .filter((h) => h.vms.length === 0 && h.incoming === 0)
    .map((h) => h.name)
    .sort();
  const keep = empty.slice(0, spareHosts);
  const powerDownHosts = empty.slice(spareHosts);
  if (plan.moves.length === 0)
    plan.notes.push(`nothing to do: no further host can be emptied keeping ${pct(headroom)} headroom`);
  plan.notes.push(
    `${empty.length} host(s) empty after this round; spare kept on: ${keep.join(', ') || 'none'}; can be powered down: ${powerDownHosts.join(', ') || 'none'}`,
  );
  return plan.build({ powerDownHosts });
}
