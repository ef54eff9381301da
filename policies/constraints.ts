/**
 * Constraints: the one registry of filters every policy and `checkMove` (a manual move) share. Each
 * filter has a name, the reason it refuses with, how a manual move treats that refusal, and a check
 * that returns the refusal's detail, or null when the candidate passes.
 *
 * - VM_FILTERS: may this VM move at all in this round?
 * - SOURCE_FILTERS: may one more migration leave its host (and start in the cluster)?
 * - DEST_FILTERS: may it go to that host? The rules and limits every placement keeps.
 * - Policy lines (`underWatermark`, `keepsHeadroom`, `notBeingEmptied`, `packingRisk`): where a
 *   policy wants its own placements to stay, beyond the rules; a manual move never meets them.
 *
 * Policies stop at the first refusal, so each list runs cheapest and most decisive first; checkMove
 * runs them all and names every rule a move breaks. Soft placement rules (soft affinity and
 * anti-affinity, should-pins) are not filters: a policy prices them (`softDelta`), checkMove names
 * them (`softBreaks`).
 */
import type { Snapshot, SkipReason } from '../src/model/index.ts';
import type { PolicySettings } from './settings.ts';
import type { Cluster, HostLoad, VmLoad } from './cluster.ts';
import { migrationCost } from './cost.ts';
import { gib, pct } from './format.ts';
import { overloadChance } from './risk.ts';

export interface Refusal {
  reason: SkipReason;
  detail: string;
}

/**
 * What a filter's refusal means for a manual move (`lbm migrate`, checkMove): `hard` refuses it,
 * `soft` refuses it unless --force; `destination` leaves it to the destination filters, which say
 * where the VM may go instead; `policy` is a policy's own line, not a rule: never a manual move's.
 */
export type ManualMove = 'hard' | 'soft' | 'destination' | 'policy';

export interface Filter<Check> {
  name: string;
  reason: SkipReason;
  manual: ManualMove;
  /** The refusal's detail, or null when the candidate passes. */
  check: Check;
}

export interface VmFilterOptions {
  /** Mandatory moves (evacuation, repairing a hard rule) pass over cooldown. */
  ignoreCooldown?: boolean;
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

export type VmFilter = Filter<(cluster: Cluster, vm: VmLoad, options: VmFilterOptions) => string | null>;
export type SourceFilter = Filter<(cluster: Cluster, source: HostLoad) => string | null>;
export type DestFilter = Filter<(cluster: Cluster, vm: VmLoad, dest: HostLoad, options: DestOptions) => string | null>;

const minutes = (ms: number) => Math.round(ms / 60_000);

/**
 * All the rules of time (quarantine, cooldown, ping-pong) read of the clock for a VM at `nowMs`: a
 * plan made at another time with the same facts for every VM is the same plan (`lbm plan` takes the
 * round's plan on that ground, src/monitor/published.ts).
 */
export function timeFacts(
  state: { lastMoveMs?: number; quarantinedUntilMs?: number },
  nowMs: number,
  limits: { cooldownMs: number; pingPongWindowMs: number },
) {
  const until = state.quarantinedUntilMs;
  const last = state.lastMoveMs;
  return {
    quarantinedMoreMin: until !== undefined && until > nowMs ? Math.ceil((until - nowMs) / 60_000) : null,
    coolingDown: last !== undefined && nowMs - last < limits.cooldownMs,
    movedMinAgo: last === undefined ? null : minutes(nowMs - last),
    pingPongOver: last !== undefined && nowMs - last >= limits.pingPongWindowMs,
  };
}

/**
 * What a plan depends on besides the hosts' and VMs' numbers (which a published snapshot keeps):
 * the policies and their settings, the rules, maintenance, the hosts not up, the moves in flight,
 * and what the rules of time make of each VM that moved or failed (timeFacts). The same
 * text for the round and for `lbm` means the round's plan is the one `lbm` would make now.
 */
export function planInputs(policies: readonly string[], settings: PolicySettings, snapshot: Snapshot): string {
  const times: unknown[] = [];
  for (const vm of snapshot.vms)
    if (vm.lastMoveMs !== undefined || vm.quarantinedUntilMs !== undefined)
      times.push([vm.name, timeFacts(vm, snapshot.nowMs, settings.limits)]);
  return JSON.stringify({
    times,
    policies,
    settings,
    rules: snapshot.rules,
    maintenance: snapshot.hosts.filter((host) => host.maintenance).map((host) => host.name),
    notUp: snapshot.hosts.filter((host) => host.status !== 'up').map((host) => [host.name, host.status]),
    inFlight: snapshot.inFlight.map((job) => [job.vm, job.from, job.to, job.state, job.jobId]).sort(),
  });
}

/** Can this VM be moved at all in this round? In the order policies check them. */
export const VM_FILTERS: readonly VmFilter[] = [
  {
    name: 'ignored',
    reason: 'IGNORED',
    manual: 'soft',
    check: (_c, vm) => (vm.ignored ? `${vm.name} is in rules.ignore` : null),
  },
  {
    name: 'in flight',
    reason: 'IN_FLIGHT',
    manual: 'hard',
    check: (_c, vm) =>
      vm.inFlight ? `${vm.name} is already migrating` : vm.moved ? `${vm.name} already moves in this round` : null,
  },
  {
    name: 'busy',
    reason: 'VM_BUSY',
    manual: 'hard',
    check: (_c, vm) =>
      vm.state.busy
        ? `${vm.name} is busy on ${vm.state.host} (${vm.state.busy}): its hypervisor would refuse to migrate it until that clears`
        : null,
  },
  {
    name: 'local disks',
    reason: 'DRIVER_CANNOT_MOVE_DISKS',
    manual: 'hard',
    check: (cluster, vm) =>
      vm.state.localDiskBytes && !cluster.settings.movesLocalDisks
        ? `${vm.name} has ${gib(vm.state.localDiskBytes)} of local disks and the driver cannot copy them ` +
          '(its capabilities say no local disks; libvirt: drivers.libvirt.copyStorage)'
        : null,
  },
  {
    name: 'converges',
    reason: 'WOULD_NOT_CONVERGE',
    manual: 'soft',
    check: (cluster, vm) =>
      migrationCost(vm.memBytes, vm.state.memDirtyBytesPerSec, 0, 0, cluster.settings.cost).converges === false
        ? `${vm.name} dirties ${Math.round(vm.state.memDirtyBytesPerSec / 2 ** 20)} MiB/s of memory, as fast as a migration copies it, ` +
          'and auto-converge is off: a live migration would never end (drivers.libvirt.autoConverge, or checkpoint mode)'
        : null,
  },
  {
    name: 'source host state',
    reason: 'SOURCE_STALE',
    manual: 'soft',
    check: (cluster, vm) => {
      if (vm.host < 0) return `${vm.name} is on unknown host ${vm.state.host}`;
      const source = cluster.hosts[vm.host]!;
      return source.state.status === 'up'
        ? null
        : `${vm.name} is on ${source.name}, which is ${source.state.status}: its numbers are not trusted`;
    },
  },
  {
    name: 'quarantine',
    reason: 'QUARANTINED',
    manual: 'soft',
    check: (cluster, vm) => {
      const { quarantinedMoreMin } = timeFacts(vm.state, cluster.nowMs, cluster.settings.limits);
      return quarantinedMoreMin !== null
        ? `${vm.name} is quarantined for ${quarantinedMoreMin} more min after failed migrations`
        : null;
    },
  },
  {
    name: 'cooldown',
    reason: 'COOLDOWN',
    manual: 'soft',
    check: (cluster, vm, options) => {
      const facts = timeFacts(vm.state, cluster.nowMs, cluster.settings.limits);
      return !options.ignoreCooldown && facts.coolingDown
        ? `${vm.name} moved ${facts.movedMinAgo} min ago (cooldown ${minutes(cluster.settings.limits.cooldownMs)} min)`
        : null;
    },
  },
  {
    name: 'pinned where it is',
    reason: 'PINNED',
    manual: 'destination',
    check: (cluster, vm) => {
      const source = cluster.hosts[vm.host];
      return source && vm.mustHosts && vm.mustHosts.hosts.size === 1 && vm.mustHosts.hosts.has(source.name)
        ? `${vm.name} must stay on ${source.name} (rule ${vm.mustHosts.rule})`
        : null;
    },
  },
  {
    name: 'held by affinity',
    reason: 'AFFINITY',
    manual: 'destination',
    check: (cluster, vm) => {
      const partner = vm.affinityHard.find((rel) => cluster.vms[rel.vm]!.host === vm.host);
      return partner
        ? `${vm.name} must stay with ${cluster.vms[partner.vm]!.name} (rule ${partner.rule}); groups do not move together yet`
        : null;
    },
  },
];

/** May one more migration leave this host? Migrations in flight plus those planned this round count. */
export const SOURCE_FILTERS: readonly SourceFilter[] = [
  {
    name: 'migrations per source host',
    reason: 'SOURCE_HOST_LIMIT',
    manual: 'soft',
    check: (cluster, source) => {
      const limit = cluster.settings.limits.migrationsPerSourceHost;
      return source.outgoing >= limit
        ? `${source.name} already has ${source.outgoing} migration(s) leaving (limit ${limit})`
        : null;
    },
  },
  {
    name: 'migrations in the cluster',
    reason: 'CLUSTER_LIMIT',
    manual: 'soft',
    check: (cluster) => {
      const limit = cluster.settings.limits.migrationsInCluster;
      return cluster.migrations >= limit ? `${cluster.migrations} migrations in the cluster (limit ${limit})` : null;
    },
  },
];

/** Destination filters, cheapest and most decisive first (the order policies check them in). */
export const DEST_FILTERS: readonly DestFilter[] = [
  {
    name: 'host down',
    reason: 'DEST_DOWN',
    manual: 'hard',
    check: (_c, _vm, dest) => (dest.state.status === 'down' ? `${dest.name} is down` : null),
  },
  {
    name: 'host stale',
    reason: 'DEST_STALE',
    manual: 'hard',
    check: (_c, _vm, dest) =>
      dest.state.status === 'stale' ? `${dest.name} has not reported recently; its numbers are unknown` : null,
  },
  {
    name: 'host in maintenance',
    reason: 'DEST_MAINTENANCE',
    manual: 'hard',
    check: (_c, _vm, dest) => (dest.state.maintenance ? `${dest.name} is in maintenance` : null),
  },
  {
    name: 'must-pin',
    reason: 'PINNED',
    manual: 'hard',
    check: (_c, vm, dest) =>
      vm.mustHosts && !vm.mustHosts.hosts.has(dest.name)
        ? `${vm.name} must run on ${[...vm.mustHosts.hosts].join(', ')} (rule ${vm.mustHosts.rule})`
        : null,
  },
  {
    name: 'hard anti-affinity',
    reason: 'ANTI_AFFINITY',
    manual: 'hard',
    check: (cluster, vm, dest) => {
      for (const rel of vm.antiHard) {
        if (cluster.vms[rel.vm]!.host === dest.index)
          return `${cluster.vms[rel.vm]!.name} is on ${dest.name} (rule ${rel.rule})`;
      }
      return null;
    },
  },
  {
    name: 'hard affinity',
    reason: 'AFFINITY',
    manual: 'hard',
    check: (cluster, vm, dest) => {
      for (const rel of vm.affinityHard) {
        const partnerHost = cluster.vms[rel.vm]!.host;
        if (partnerHost !== dest.index && partnerHost >= 0) {
          return `${vm.name} must share a host with ${cluster.vms[rel.vm]!.name} (rule ${rel.rule})`;
        }
      }
      return null;
    },
  },
  {
    name: 'memory',
    reason: 'DEST_MEM_FULL',
    manual: 'hard',
    check: (_c, vm, dest) =>
      dest.memCommittedBytes + vm.memBytes > dest.memBytes
        ? `${dest.name} has ${gib(Math.max(0, dest.memBytes - dest.memCommittedBytes))} free, ${vm.name} needs ${gib(vm.memBytes)}`
        : null,
  },
  {
    name: 'CPU capacity',
    reason: 'DEST_CPU_FULL',
    manual: 'hard',
    check: (_c, vm, dest, options) =>
      dest.cpuDemandCores + vm.cpuDemandCores > dest.cpuLimitCores &&
      !(options.allowTriage && dest.cpuDemandCores > dest.cpuLimitCores)
        ? `${dest.name} would need ${(dest.cpuDemandCores + vm.cpuDemandCores).toFixed(2)} of ${dest.cpuLimitCores.toFixed(2)} cores`
        : null,
  },
  {
    name: 'ping-pong',
    reason: 'PING_PONG',
    manual: 'soft',
    check: (cluster, vm, dest, options) => {
      if (options.ignorePingPong || vm.state.previousHost !== dest.name) return null;
      const facts = timeFacts(vm.state, cluster.nowMs, cluster.settings.limits);
      if (facts.pingPongOver) return null;
      return `${vm.name} came from ${dest.name}${facts.movedMinAgo === null ? '' : ` ${facts.movedMinAgo} min ago`}`;
    },
  },
  {
    name: 'migrations per destination host',
    reason: 'DESTINATION_HOST_LIMIT',
    manual: 'soft',
    check: (cluster, _vm, dest, options) => {
      const limit = cluster.settings.limits.migrationsPerDestinationHost;
      return !options.ignoreLimits && dest.incoming >= limit
        ? `${dest.name} already has ${dest.incoming} migration(s) arriving (limit ${limit})`
        : null;
    },
  },
];

/**
 * A watermark a destination must stay at or under after the move, as a share of its capacity: CPU
 * demand, and memory committed unless `resources` is `cpu` (evacuation prefers hosts under high on CPU).
 */
export function underWatermark(
  which: 'high' | 'low',
  share: number,
  resources: 'cpu' | 'cpu and memory' = 'cpu and memory',
): DestFilter {
  return ceiling(
    `${which} watermark`,
    which === 'high' ? 'DEST_OVER_HIGH_WATERMARK' : 'DEST_OVER_LOW_WATERMARK',
    share,
    resources,
    (dest) => `${dest.name} would be above ${which} ${pct(share)}`,
  );
}

/** Consolidation keeps `headroom` of every receiver's CPU and memory free. */
export function keepsHeadroom(headroom: number): DestFilter {
  return ceiling(
    'headroom',
    'DEST_NO_HEADROOM',
    1 - headroom,
    'cpu and memory',
    (dest) => `${dest.name} would keep less than ${pct(headroom)} headroom`,
  );
}

function ceiling(
  name: string,
  reason: SkipReason,
  share: number,
  resources: 'cpu' | 'cpu and memory',
  detail: (dest: HostLoad) => string,
): DestFilter {
  return {
    name,
    reason,
    manual: 'policy',
    check: (_c, vm, dest) =>
      (dest.cpuDemandCores + vm.cpuDemandCores) / dest.cpuCores > share ||
      (resources === 'cpu and memory' && (dest.memCommittedBytes + vm.memBytes) / dest.memBytes > share)
        ? detail(dest)
        : null,
  };
}

/** Consolidation never refills a host it is emptying, nor one already empty. */
export function notBeingEmptied(emptied: ReadonlySet<number>): DestFilter {
  return {
    name: 'being emptied',
    reason: 'DEST_BEING_EMPTIED',
    manual: 'policy',
    check: (_c, _vm, dest) =>
      emptied.has(dest.index)
        ? `${dest.name} is being emptied`
        : dest.vms.length === 0
          ? `${dest.name} is empty: consolidation does not refill it`
          : null,
  };
}

/**
 * A receiver is packed only while the chance that its next sample is above its CPU capacity
 * (risk.ts) stays at or under `maxChance`.
 */
export function packingRisk(maxChance: number): DestFilter {
  return {
    name: 'packing risk',
    reason: 'DEST_OVERLOAD_RISK',
    manual: 'policy',
    check: (cluster, vm, dest) =>
      overloadChance(
        cluster,
        dest,
        dest.cpuDemandCores + vm.cpuDemandCores,
        dest.cpuVarianceCoresSq + vm.cpuVarianceCoresSq,
      ) > maxChance
        ? `${dest.name}'s next sample would be above its CPU capacity more than ${maxChance * 100}% of the time`
        : null,
  };
}

/** The first refusal of this VM by VM_FILTERS, or null. */
export function vmRefusal(cluster: Cluster, vm: VmLoad, options: VmFilterOptions = {}): Refusal | null {
  for (const filter of VM_FILTERS) {
    const detail = filter.check(cluster, vm, options);
    if (detail !== null) return { reason: filter.reason, detail };
  }
  return null;
}

/** The first refusal of one more migration leaving `source`, or null. */
export function sourceRefusal(cluster: Cluster, source: HostLoad): Refusal | null {
  for (const filter of SOURCE_FILTERS) {
    const detail = filter.check(cluster, source);
    if (detail !== null) return { reason: filter.reason, detail };
  }
  return null;
}

/** First refusal of a destination for a VM by DEST_FILTERS, then by the policy's own `lines`, or null. */
export function destRefusal(
  cluster: Cluster,
  vm: VmLoad,
  dest: HostLoad,
  options: DestOptions = {},
  lines: readonly DestFilter[] = [],
): Refusal | null {
  if (dest.index === vm.host) return { reason: 'NO_DESTINATION', detail: `${vm.name} is already on ${dest.name}` };
  for (const filter of DEST_FILTERS) {
    const detail = filter.check(cluster, vm, dest, options);
    if (detail !== null) return { reason: filter.reason, detail };
  }
  for (const filter of lines) {
    const detail = filter.check(cluster, vm, dest, options);
    if (detail !== null) return { reason: filter.reason, detail };
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

/**
 * The destination filters a VM can break where it already is and a move repairs (a broken hard
 * affinity is not repaired by a move: groups do not move together yet).
 */
const REPAIRED_BY_A_MOVE = DEST_FILTERS.filter(
  (filter) => filter.name === 'must-pin' || filter.name === 'hard anti-affinity',
);

/** The hard rule a VM breaks where it is now (a reason for a mandatory move), or null. */
export function brokenHere(cluster: Cluster, vm: VmLoad): Refusal | null {
  if (vm.host < 0) return null;
  const here = cluster.hosts[vm.host]!;
  for (const filter of REPAIRED_BY_A_MOVE) {
    const detail = filter.check(cluster, vm, here, {});
    if (detail !== null) return { reason: filter.reason, detail: `${vm.name} is on ${here.name}: ${detail}` };
  }
  return null;
}
