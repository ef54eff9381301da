/**
 * checkMove: judge one proposed move (a manual `lbm migrate`) against every rule, so it can be
 * refused naming the rule. Hard violations refuse the move; soft ones can be overridden with --force.
 */
import type { Move, SkipReason, Snapshot } from '../src/model/index.ts';
import { Cluster } from './cluster.ts';
import { DEST_FILTERS, softBreaks } from './constraints.ts';
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
  if (vm.inFlight) hard.push({ rule: 'IN_FLIGHT', detail: `${vm.name} is already migrating` });
  for (const filter of DEST_FILTERS) {
    const refusal = filter.check(cluster, vm, dest, {});
    if (refusal) (filter.hard ? hard : soft).push({ rule: refusal.reason, detail: refusal.detail });
  }
  // VM-level stability rules are soft for a manual move: an operator may override them.
  const now = cluster.nowMs;
  if (vm.ignored) soft.push({ rule: 'IGNORED', detail: `${vm.name} is in rules.ignore` });
  if (vm.state.quarantinedUntilMs !== undefined && vm.state.quarantinedUntilMs > now) {
    soft.push({
      rule: 'QUARANTINED',
      detail: `${vm.name} is quarantined for ${Math.ceil((vm.state.quarantinedUntilMs - now) / 60_000)} more min`,
    });
  }
  if (vm.state.lastMoveMs !== undefined && now - vm.state.lastMoveMs < settings.limits.cooldownMs) {
    soft.push({
      rule: 'COOLDOWN',
      detail: `${vm.name} moved ${Math.round((now - vm.state.lastMoveMs) / 60_000)} min ago (cooldown ${Math.round(settings.limits.cooldownMs / 60_000)} min)`,
    });
  }
  if (vm.host >= 0 && cluster.hosts[vm.host]!.state.status !== 'up') {
    soft.push({
      rule: 'SOURCE_STALE',
      detail: `${vm.name} is on ${cluster.hosts[vm.host]!.name}, which is ${cluster.hosts[vm.host]!.state.status}`,
    });
  }
  if (vm.host >= 0) {
    const source = cluster.hosts[vm.host]!;
    if (source.outgoing >= settings.limits.migrationsPerSourceHost) {
      soft.push({
        rule: 'HOST_MIGRATION_LIMIT',
        detail: `${source.name} already has ${source.outgoing} migration(s) leaving (limit ${settings.limits.migrationsPerSourceHost})`,
      });
    }
  }
  for (const refusal of softBreaks(cluster, vm, dest)) soft.push({ rule: refusal.reason, detail: refusal.detail });
  return { hard, soft };
}
