/**
 * Constraints: small filters, each returning a named SkipReason (or null when it passes), shared by
 * every policy and by `checkMove` for manual moves. Hard filters are never broken by a policy; soft
 * rules are counted (`softDelta`) and priced by the policy.
 */
import type { SkipReason } from '../src/model/index.ts';
import type { Cluster, HostLoad, VmLoad } from './cluster.ts';

export interface Refusal {
  reason: SkipReason;
  detail: string;
}

export interface VmFilterOptions {
  /** Mandatory moves (evacuation) pass over cooldown. */
  ignoreCooldown?: boolean;
}

/** Can this VM be moved at all in this round? */
export function vmRefusal(cluster: Cluster, vm: VmLoad, options: VmFilterOptions = {}): Refusal | null {
  if (vm.ignored) return { reason: 'IGNORED', detail: `${vm.name} is in rules.ignore` };
  if (vm.inFlight) return { reason: 'IN_FLIGHT', detail: `${vm.name} is already migrating` };
  if (vm.moved) return { reason: 'IN_FLIGHT', detail: `${vm.name} already moves in this round` };
  if (vm.state.busy)
    return {
      reason: 'VM_BUSY',
      detail: `${vm.name} is busy on ${vm.state.host} (${vm.state.busy}): its hypervisor would refuse to migrate it until that clears`,
    };
  if (vm.host < 0) return { reason: 'SOURCE_STALE', detail: `${vm.name} is on unknown host ${vm.state.host}` };
  const source = cluster.hosts[vm.host]!;
  if (source.state.status !== 'up')
    return {
      reason: 'SOURCE_STALE',
      detail: `${vm.name} is on ${source.name}, which is ${source.state.status}: its numbers are not trusted`,
    };
  const quarantine = vm.state.quarantinedUntilMs;
  if (quarantine !== undefined && quarantine > cluster.nowMs) {
    return {
      reason: 'QUARANTINED',
      detail: `${vm.name} is quarantined for ${Math.ceil((quarantine - cluster.nowMs) / 60_000)} more min after failed migrations`,
    };
  }
  const last = vm.state.lastMoveMs;
  if (!options.ignoreCooldown && last !== undefined && cluster.nowMs - last < cluster.settings.limits.cooldownMs) {
    return {
      reason: 'COOLDOWN',
      detail: `${vm.name} moved ${Math.round((cluster.nowMs - last) / 60_000)} min ago (cooldown ${Math.round(cluster.settings.limits.cooldownMs / 60_000)} min)`,
    };
  }
  if (vm.mustHosts && vm.mustHosts.hosts.size === 1 && vm.mustHosts.hosts.has(source.name)) {
    return { reason: 'PINNED', detail: `${vm.name} must stay on ${source.name} (rule ${vm.mustHosts.rule})` };
  }
  for (const rel of vm.affinityHard) {
    if (cluster.vms[rel.vm]!.host === vm.host) {
      return {
        reason: 'AFFINITY',
        detail: `${vm.name} must stay with ${cluster.vms[rel.vm]!.name} (rule ${rel.rule}); groups do not move together yet`,
      };
    }
  }
  return null;
}

/** Source-side limit: migrations leaving this host (in flight plus planned). */
export function sourceRefusal(cluster: Cluster, source: HostLoad): Refusal | null {
  const limits = cluster.settings.limits;
  if (source.outgoing >= limits.migrationsPerSourceHost) {
    return {
      reason: 'HOST_MIGRATION_LIMIT',
      detail: `${source.name} already has ${source.outgoing} migration(s) leaving (limit ${limits.migrationsPerSourceHost})`,
    };
  }
  if (cluster.migrations >= limits.migrationsInCluster) {
    return {
      reason: 'HOST_MIGRATION_LIMIT',
      detail: `${cluster.migrations} migrations in the cluster (limit ${limits.migrationsInCluster})`,
    };
  }
  return null;
}

export interface DestOptions {
  /** Evacuation may send a VM back where it came from. */
  ignorePingPong?: boolean;
  /** Trial placements (can this host be emptied at all?) look past the per-host migration limits. */
  ignoreLimits?: boolean;
  /**
   * A host already above its CPU limit may take more (the judgement's triage, objective.ts): a move
   * never pushes a host over its limit, but one that is over anyway may keep another under it.
   */
  allowTriage?: boolean;
}

/** One destination filter: a name for `checkMove`, whether it is a hard rule, and the check. */
export interface DestFilter {
  name: string;
  /** Hard filters refuse a manual move; soft ones can be overridden with --force. */
  hard: boolean;
  check(cluster: Cluster, vm: VmLoad, dest: HostLoad, options: DestOptions): Refusal | null;
}

/** Destination filters, cheapest and most decisive first (the order policies check them in). */
export const DEST_FILTERS: readonly DestFilter[] = [
  {
    name: 'host state',
    hard: true,
    check: (_c, _vm, dest) => {
      const state = dest.state;
      if (state.status === 'down') return { reason: 'DEST_DOWN', detail: `${dest.name} is down` };
      if (state.status === 'stale')
        return { reason: 'DEST_STALE', detail: `${dest.name} has not reported recently; its numbers are unknown` };
      if (state.maintenance) return { reason: 'DEST_MAINTENANCE', detail: `${dest.name} is in maintenance` };
      return null;
    },
  },
  {
    name: 'must-pin',
    hard: true,
    check: (_c, vm, dest) =>
      vm.mustHosts && !vm.mustHosts.hosts.has(dest.name)
        ? {
            reason: 'PINNED',
            detail: `${vm.name} must run on ${[...vm.mustHosts.hosts].join(', ')} (rule ${vm.mustHosts.rule})`,
          }
        : null,
  },
  {
    name: 'hard anti-affinity',
    hard: true,
    check: (cluster, vm, dest) => {
      for (const rel of vm.antiHard) {
        if (cluster.vms[rel.vm]!.host === dest.index)
          return {
            reason: 'ANTI_AFFINITY',
            detail: `${cluster.vms[rel.vm]!.name} is on ${dest.name} (rule ${rel.rule})`,
          };
      }
      return null;
    },
  },
  {
    name: 'hard affinity',
    hard: true,
    check: (cluster, vm, dest) => {
      for (const rel of vm.affinityHard) {
        const partnerHost = cluster.vms[rel.vm]!.host;
        if (partnerHost !== dest.index && partnerHost >= 0) {
          return {
            reason: 'AFFINITY',
            detail: `${vm.name} must share a host with ${cluster.vms[rel.vm]!.name} (rule ${rel.rule})`,
          };
        }
      }
      return null;
    },
  },
  {
    name: 'memory',
    hard: true,
    check: (_c, vm, dest) =>
      dest.memCommittedBytes + vm.memBytes > dest.memBytes
        ? {
            reason: 'DEST_MEM_FULL',
            detail: `${dest.name} has ${gib(Math.max(0, dest.memBytes - dest.memCommittedBytes))} free, ${vm.name} needs ${gib(vm.memBytes)}`,
          }
        : null,
  },
  {
    name: 'CPU capacity',
    hard: true,
    check: (_c, vm, dest, options) =>
      dest.cpuDemandCores + vm.cpuDemandCores > dest.cpuLimitCores &&
      !(options.allowTriage && dest.cpuDemandCores > dest.cpuLimitCores)
        ? {
            reason: 'DEST_CPU_FULL',
            detail: `${dest.name} would need ${(dest.cpuDemandCores + vm.cpuDemandCores).toFixed(2)} of ${dest.cpuLimitCores.toFixed(2)} cores`,
          }
        : null,
  },
  {
    name: 'ping-pong',
    hard: false,
    check: (cluster, vm, dest, options) => {
      if (options.ignorePingPong || vm.state.previousHost !== dest.name) return null;
      const last = vm.state.lastMoveMs;
      if (last !== undefined && cluster.nowMs - last >= cluster.settings.limits.pingPongWindowMs) return null;
      return {
        reason: 'PING_PONG',
        detail: `${vm.name} came from ${dest.name}${last === undefined ? '' : ` ${Math.round((cluster.nowMs - last) / 60_000)} min ago`}`,
      };
    },
  },
  {
    name: 'migrations per destination',
    hard: false,
    check: (cluster, _vm, dest, options) => {
      const limit = cluster.settings.limits.migrationsPerDestinationHost;
      return !options.ignoreLimits && dest.incoming >= limit
        ? {
            reason: 'HOST_MIGRATION_LIMIT',
            detail: `${dest.name} already has ${dest.incoming} migration(s) arriving (limit ${limit})`,
          }
        : null;
    },
  },
];

/** First refusal of a destination for a VM, or null when every filter passes. */
export function destRefusal(cluster: Cluster, vm: VmLoad, dest: HostLoad, options: DestOptions = {}): Refusal | null {
  if (dest.index === vm.host) return { reason: 'NO_DESTINATION', detail: `${vm.name} is already on ${dest.name}` };
  for (const filter of DEST_FILTERS) {
    const refusal = filter.check(cluster, vm, dest, options);
    if (refusal) return refusal;
  }
  return null;
}

/**
 * Soft rules a move breaks minus those it repairs (anti-affinity, affinity, should-pins).
 * Positive is worse. A policy adds `softDelta × softRulePenalty` to the move's cost.
 */
export function softDelta(cluster: Cluster, vm: VmLoad, dest: HostLoad): number {
  let delta = 0;
  for (const rel of vm.antiSoft) {
    const at = cluster.vms[rel.vm]!.host;
    if (at === dest.index) delta++;
    if (at === vm.host) delta--;
  }
  for (const rel of vm.affinitySoft) {
    const at = cluster.vms[rel.vm]!.host;
    if (at === vm.host) delta++;
    if (at === dest.index) delta--;
  }
  if (vm.shouldHosts) {
    const source = cluster.hosts[vm.host]!;
    if (vm.shouldHosts.hosts.has(source.name) && !vm.shouldHosts.hosts.has(dest.name)) delta++;
    if (!vm.shouldHosts.hosts.has(source.name) && vm.shouldHosts.hosts.has(dest.name)) delta--;
  }
  return delta;
}

/** The soft rules a VM would break on `dest`, named (for checkMove). */
export function softBreaks(cluster: Cluster, vm: VmLoad, dest: HostLoad): Refusal[] {
  const found: Refusal[] = [];
  for (const rel of vm.antiSoft) {
    if (cluster.vms[rel.vm]!.host === dest.index)
      found.push({
        reason: 'ANTI_AFFINITY',
        detail: `${cluster.vms[rel.vm]!.name} is on ${dest.name} (soft rule ${rel.rule})`,
      });
  }
  for (const rel of vm.affinitySoft) {
    const at = cluster.vms[rel.vm]!.host;
    if (at !== dest.index)
      found.push({
        reason: 'AFFINITY',
        detail: `${vm.name} should share a host with ${cluster.vms[rel.vm]!.name} (soft rule ${rel.rule})`,
      });
  }
  if (vm.shouldHosts && !vm.shouldHosts.hosts.has(dest.name)) {
    found.push({
      reason: 'PINNED',
      detail: `${vm.name} should run on ${[...vm.shouldHosts.hosts].join(', ')} (soft rule ${vm.shouldHosts.rule})`,
    });
  }
  return found;
}

/** Hard rules the VM breaks where it is now (a reason for a mandatory move), or null. */
export function brokenHere(cluster: Cluster, vm: VmLoad): Refusal | null {
  if (vm.host < 0) return null;
  const here = cluster.hosts[vm.host]!;
  if (vm.mustHosts && !vm.mustHosts.hosts.has(here.name)) {
    return {
      reason: 'PINNED',
      detail: `${vm.name} must run on ${[...vm.mustHosts.hosts].join(', ')} (rule ${vm.mustHosts.rule}) but is on ${here.name}`,
    };
  }
  for (const rel of vm.antiHard) {
    if (cluster.vms[rel.vm]!.host === vm.host) {
      return {
        reason: 'ANTI_AFFINITY',
        detail: `${vm.name} and ${cluster.vms[rel.vm]!.name} share ${here.name} (rule ${rel.rule})`,
      };
    }
  }
  return null;
}

export function gib(bytes: number): string {
  const value = bytes / 1024 ** 3;
  return `${value >= 10 ? value.toFixed(0) : Number(value.toFixed(1))} GiB`;
}
