/**
 * checkMove: judge one proposed move (a manual `lbm migrate`) against every rule, so it can be
 * refused naming the rule. It runs the filters of constraints.ts, all of them, and sorts what they
 * refuse by how a manual move treats each: hard violations refuse the move, soft ones can be
 * overridden with --force; the policies' own lines (watermarks, headroom) are not a manual move's.
 */
import type { Move, SkipReason, Snapshot } from '../src/model/index.ts';
import { Cluster } from './cluster.ts';
import { DEST_FILTERS, softBreaks, SOURCE_FILTERS, VM_FILTERS, type Filter, type ManualMove } from './constraints.ts';
import type { PolicySettings } from './settings.ts';

export interface Violation {
  rule: SkipReason;
  detail: string;
}

export interface MoveCheck {
  hard: Violation[];
  soft: Violation[];
}

export function checkMove(
  snapshot: Snapshot,
  move: Pick<Move, 'vm' | 'to'> & { from?: string },
  settings: PolicySettings,
): MoveCheck {
  const cluster = new Cluster(snapshot, settings);
  const hard: Violation[] = [];
  const soft: Violation[] = [];
  const vmIndex = cluster.vmByName.get(move.vm);
  const destIndex = cluster.hostByName.get(move.to);
  if (vmIndex === undefined) hard.push({ rule: 'NO_DESTINATION', detail: `unknown VM ${move.vm}` });
  if (destIndex === undefined) hard.push({ rule: 'NO_DESTINATION', detail: `unknown host ${move.to}` });
  if (vmIndex === undefined || destIndex === undefined) return { hard, soft };
  const vm = cluster.vms[vmIndex]!;
  const dest = cluster.hosts[destIndex]!;
  if (vm.host === dest.index) {
    hard.push({ rule: 'NO_DESTINATION', detail: `${vm.name} is already on ${dest.name}` });
    return { hard, soft };
  }
  const judge = (filter: Filter<unknown>, detail: string | null) => {
    const list: Record<ManualMove, Violation[] | null> = { hard, soft, destination: null, policy: null };
    if (detail !== null) list[filter.manual]?.push({ rule: filter.reason, detail });
  };
  for (const filter of VM_FILTERS) judge(filter, filter.check(cluster, vm, {}));
  const source = cluster.hosts[vm.host];
  if (source) for (const filter of SOURCE_FILTERS) judge(filter, filter.check(cluster, source));
  for (const filter of DEST_FILTERS) judge(filter, filter.check(cluster, vm, dest, {}));
  for (const refusal of softBreaks(cluster, vm, dest)) soft.push({ rule: refusal.reason, detail: refusal.detail });
  return { hard, soft };
}
