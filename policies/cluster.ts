/**
 * The working state a policy plans on: the snapshot turned into indexed hosts and VMs with their
 * predicted demand, plus running sums that give the imbalance score, and the change a move would
 * make to it, in O(resources) time. Moves are applied here (never to the snapshot), so a policy
 * sees its own earlier moves, and the per-host and per-round limits count them.
 */
import type { HostState, Move, Snapshot, VmState } from '../src/model/index.ts';
import { DemandByVm, vmDemand, type Demand } from './demand.ts';
import type { PolicySettings, ResourceWeights } from './settings.ts';

export const RESOURCES = ['cpu', 'mem', 'disk', 'net'] as const;
export type Resource = (typeof RESOURCES)[number];
type PerResource = Record<Resource, number>;

/** One number per resource: `of(r)`, or 0. */
function perResource(of: (r: Resource) => number = () => 0): PerResource {
  return { cpu: of('cpu'), mem: of('mem'), disk: of('disk'), net: of('net') };
}

/** What a host holds of a resource, in the resource's own unit. */
function hostAmount(h: HostLoad, r: Resource): number {
  switch (r) {
    case 'cpu':
      return h.cpuDemandCores;
    case 'mem':
      return h.memCommittedBytes;
    case 'disk':
      return h.diskBytesPerSec;
    case 'net':
      return h.netBytesPerSec;
  }
}

/** What a VM brings of a resource, in the resource's own unit. */
function vmAmount(vm: VmLoad, r: Resource): number {
  switch (r) {
    case 'cpu':
      return vm.cpuDemandCores;
    case 'mem':
      return vm.memBytes;
    case 'disk':
      return vm.diskBytesPerSec;
    case 'net':
      return vm.netBytesPerSec;
  }
}

export interface HostLoad {
  index: number;
  name: string;
  state: HostState;
  /** Up and not in maintenance: part of the score, and a possible destination. */
  usable: boolean;
  cpuCores: number;
  /** cpuCores × overcommit: CPU demand a host may be given. */
  cpuLimitCores: number;
  memBytes: number;
  /** Predicted CPU demand in cores (VMs plus the host's own overhead). */
  cpuDemandCores: number;
  /** Variance of the host's next CPU sample around `cpuDemandCores` (its VMs' forecast variances summed), cores². */
  cpuVarianceCoresSq: number;
  /** Committed memory: max(measured use, sum of its VMs' configured size), plus incoming in-flight VMs. */
  memCommittedBytes: number;
  diskBytesPerSec: number;
  netBytesPerSec: number;
  vms: number[];
  /** Migrations leaving / arriving: in flight plus planned in this round. */
  outgoing: number;
  incoming: number;
}

export interface VmLoad {
  index: number;
  name: string;
  state: VmState;
  /** Index of its host, or -1 when the snapshot does not know the host. */
  host: number;
  /** Predicted CPU demand in cores. */
  cpuDemandCores: number;
  /** Variance of its next CPU sample around `cpuDemandCores`, cores². */
  cpuVarianceCoresSq: number;
  /** Configured memory size: what the destination must have free, and what a migration copies. */
  memBytes: number;
  diskBytesPerSec: number;
  netBytesPerSec: number;
  inFlight: boolean;
  ignored: boolean;
  /** Moved by a policy earlier in this plan or round. */
  moved: boolean;
  antiHard: Rel[];
  antiSoft: Rel[];
  affinityHard: Rel[];
  affinitySoft: Rel[];
  mustHosts: { rule: string; hosts: Set<string> } | null;
  shouldHosts: { rule: string; hosts: Set<string> } | null;
}

/** A partner VM under a named rule. */
export interface Rel {
  rule: string;
  vm: number;
}

const NONE: Rel[] = [];

export class Cluster {
  readonly hosts: HostLoad[] = [];
  readonly vms: VmLoad[] = [];
  readonly hostByName = new Map<string, number>();
  private vmIndexByName: Map<string, number> | null = null;
  readonly nowMs: number;
  /** Migrations in flight plus planned in this round, cluster-wide. */
  migrations = 0;
  /** Moves applied (and reverted) since it was built: 0 means it is still exactly its snapshot. */
  private changes = 0;
  /** Σ use and Σ use² over the scored hosts, per weighted resource: the imbalance and the spread in O(resources). */
  private readonly sum1 = perResource();
  private readonly sum2 = perResource();
  private scored = 0;
  /** The score's weights, never negative, and the resources weighing more than 0 (the only ones summed). */
  private readonly weight: PerResource;
  private readonly weighted: readonly Resource[];
  private readonly weightTotal: number;

  /**
   * `demandByVm`: predicted demand already computed for this snapshot's windows (planRound computes it
   * once for all its policies); missing VMs are estimated here.
   */
  constructor(
    readonly snapshot: Snapshot,
    readonly settings: PolicySettings,
    readonly weights: ResourceWeights = settings.weights,
    readonly demandByVm?: ReadonlyMap<string, Demand>,
  ) {
    this.nowMs = snapshot.nowMs;
    this.weight = perResource((r) => Math.max(0, weights[r]));
    this.weightTotal = RESOURCES.reduce((total, r) => total + this.weight[r], 0);
    this.weighted = RESOURCES.filter((r) => this.weight[r] > 0);
    const hostLatest: number[] = [];
    for (const host of snapshot.hosts) {
      const index = this.hosts.length;
      this.hostByName.set(host.name, index);
      hostLatest.push(
        host.cpuUsedWindowCores.length > 0 ? host.cpuUsedWindowCores[host.cpuUsedWindowCores.length - 1]! : 0,
      );
      this.hosts.push({
        index,
        name: host.name,
        state: host,
        usable: host.status === 'up' && !host.maintenance,
        cpuCores: host.cpuCores,
        cpuLimitCores: host.cpuCores * settings.cpuOvercommit,
        memBytes: host.memBytes,
        cpuDemandCores: 0,
        cpuVarianceCoresSq: 0,
        memCommittedBytes: 0,
        diskBytesPerSec: 0,
        netBytesPerSec: 0,
        vms: [],
        outgoing: 0,
        incoming: 0,
      });
    }
    const ignored = new Set(snapshot.rules.ignoredVms);
    const vmLatestByHost = new Array<number>(this.hosts.length).fill(0);
    for (const vm of snapshot.vms) {
      const index = this.vms.length;
      const host = this.hostByName.get(vm.host) ?? -1;
      const demand =
        (demandByVm instanceof DemandByVm ? demandByVm.at(index, vm.name) : demandByVm?.get(vm.name)) ??
        vmDemand(vm, settings.demand);
      const load: VmLoad = {
        index,
        name: vm.name,
        state: vm,
        host,
        cpuDemandCores: demand.cores,
        cpuVarianceCoresSq: demand.variance,
        memBytes: vm.memBytes,
        diskBytesPerSec: vm.diskBytesPerSec ?? 0,
        netBytesPerSec: vm.netBytesPerSec ?? 0,
        inFlight: false,
        ignored: ignored.has(vm.name),
        moved: false,
        // Shared empty lists; a VM named in a rule gets its own (see below).
        antiHard: NONE,
        antiSoft: NONE,
        affinityHard: NONE,
        affinitySoft: NONE,
        mustHosts: null,
        shouldHosts: null,
      };
      this.vms.push(load);
      if (host >= 0) {
        const h = this.hosts[host]!;
        vmLatestByHost[host] +=
          vm.cpuUsedWindowCores.length > 0 ? vm.cpuUsedWindowCores[vm.cpuUsedWindowCores.length - 1]! : 0;
        h.vms.push(index);
        h.cpuDemandCores += load.cpuDemandCores;
        h.cpuVarianceCoresSq += load.cpuVarianceCoresSq;
        h.memCommittedBytes += load.memBytes;
        h.diskBytesPerSec += load.diskBytesPerSec;
        h.netBytesPerSec += load.netBytesPerSec;
      }
    }
    for (const h of this.hosts) {
      // What no VM accounts for (host processes, hypervisor overhead): the latest host measurement
      // minus its VMs' latest measurements, never negative. Not the host's own window with a trend:
      // that window holds the load of VMs that have since moved (and a trend across an arrival
      // extrapolates the jump), so the host's demand is its VMs' predicted demand plus this.
      h.cpuDemandCores += Math.max(0, hostLatest[h.index]! - vmLatestByHost[h.index]!);
      h.memCommittedBytes = Math.max(h.memCommittedBytes, h.state.memUsedBytes);
      h.diskBytesPerSec = Math.max(h.diskBytesPerSec, h.state.diskBytesPerSec ?? 0);
      h.netBytesPerSec = Math.max(h.netBytesPerSec, h.state.netBytesPerSec ?? 0);
    }
    for (const group of snapshot.rules.groups) {
      const members = group.vms.map((name) => this.vmByName.get(name)).filter((i): i is number => i !== undefined);
      for (const member of members) {
        const vm = this.vms[member]!;
        const key =
          group.kind === 'anti-affinity'
            ? group.hard
              ? 'antiHard'
              : 'antiSoft'
            : group.hard
              ? 'affinityHard'
              : 'affinitySoft';
        if (vm[key] === NONE) vm[key] = [];
        for (const other of members) if (other !== member) vm[key].push({ rule: group.name, vm: other });
      }
    }
    for (const pin of snapshot.rules.pins) {
      const index = this.vmByName.get(pin.vm);
      if (index === undefined) continue;
      const vm = this.vms[index]!;
      const entry = { rule: pin.name, hosts: new Set(pin.hosts) };
      if (pin.hard)
        vm.mustHosts = vm.mustHosts
          ? { rule: `${vm.mustHosts.rule}+${pin.name}`, hosts: intersect(vm.mustHosts.hosts, entry.hosts) }
          : entry;
      else vm.shouldHosts = entry;
    }
    for (const flight of snapshot.inFlight) {
      const vmIndex = this.vmByName.get(flight.vm);
      const from = this.hostByName.get(flight.from);
      const to = this.hostByName.get(flight.to);
      this.migrations++;
      if (from !== undefined) this.hosts[from]!.outgoing++;
      if (to !== undefined) this.hosts[to]!.incoming++;
      if (vmIndex === undefined) continue;
      const vm = this.vms[vmIndex]!;
      vm.inFlight = true;
      // Until it lands, an in-flight VM holds resources on its destination too.
      if (to !== undefined && to !== vm.host) {
        const h = this.hosts[to]!;
        h.cpuDemandCores += vm.cpuDemandCores;
        h.cpuVarianceCoresSq += vm.cpuVarianceCoresSq;
        h.memCommittedBytes += vm.memBytes;
      }
    }
    for (const h of this.hosts) if (h.usable) this.addToScore(h, 1);
  }

  /** VM index by name, built on first use (only rules, in-flight migrations and checkMove need it). */
  get vmByName(): ReadonlyMap<string, number> {
    if (!this.vmIndexByName) {
      // Built on first use, without an [name, index] pair per VM (30,000 of them at scale).
      const map = new Map<string, number>();
      for (const vm of this.vms) map.set(vm.name, vm.index);
      this.vmIndexByName = map;
    }
    return this.vmIndexByName;
  }

  /** Normalised use of a host for one resource (1 = full). */
  use(h: HostLoad, r: Resource): number {
    return this.normalise(h, r, hostAmount(h, r));
  }

  /** Weighted mean of the normalised uses: the host's "load" for ordering hosts. */
  weightedUse(h: HostLoad): number {
    if (this.weightTotal === 0) return 0;
    let total = 0;
    for (const r of this.weighted) total += this.weight[r] * this.use(h, r);
    return total / this.weightTotal;
  }

  private addToScore(h: HostLoad, sign: 1 | -1): void {
    for (const r of this.weighted) {
      const u = this.use(h, r);
      this.sum1[r] += sign * u;
      this.sum2[r] += sign * u * u;
    }
    this.scored += sign;
  }

  /**
   * The imbalance score: Σ_r w_r·σ_r / Σ_r w_r, where σ_r is the population standard deviation of the
   * normalised use of resource r over the hosts that are up and not in maintenance. This is VMware
   * DRS's "current host load standard deviation" (vSphere Resource Management guide, DRS migration
   * threshold), extended to several resources by a weighted mean. 0 = perfectly flat.
   */
  imbalance(): number {
    return this.scoreFrom(this.sum1, this.sum2, this.scored);
  }

  private scoreFrom(sum1: Readonly<PerResource>, sum2: Readonly<PerResource>, n: number): number {
    if (n === 0 || this.weightTotal === 0) return 0;
    let total = 0;
    for (const r of this.weighted) {
      const w = this.weight[r];
      const mean = sum1[r] / n;
      total += w * Math.sqrt(Math.max(0, sum2[r] / n - mean * mean));
    }
    return total / this.weightTotal;
  }

  /** The imbalance score the cluster would have after moving `vm` to `dest` (nothing changes). */
  imbalanceAfter(vm: VmLoad, dest: HostLoad): number {
    const { s1, s2 } = this.sumsAfter(vm, dest);
    return this.scoreFrom(s1, s2, this.scored);
  }

  /**
   * The spread: Σ_r w_r · Σ_hosts (use_r − mean use_r)² / Σ_r w_r, over the scored hosts (n × the weighted
   * variance). Unlike the imbalance score it does not shrink with the number of hosts, so a move's
   * effect on it (one host less loaded, one more) reads the same in a cluster of 7 hosts or 700.
   */
  spread(): number {
    return this.spreadFrom(this.sum1, this.sum2, this.scored);
  }

  /** The spread after moving `vm` to `dest` (nothing changes). */
  spreadAfter(vm: VmLoad, dest: HostLoad): number {
    const { s1, s2 } = this.sumsAfter(vm, dest);
    return this.spreadFrom(s1, s2, this.scored);
  }

  private spreadFrom(sum1: Readonly<PerResource>, sum2: Readonly<PerResource>, n: number): number {
    if (n === 0 || this.weightTotal === 0) return 0;
    let total = 0;
    for (const r of this.weighted) {
      const w = this.weight[r];
      total += w * Math.max(0, sum2[r] - (sum1[r] * sum1[r]) / n);
    }
    return total / this.weightTotal;
  }

  /** Scratch sums for sumsAfter (read before the next call): tens of thousands of candidates a plan. */
  private readonly s1 = perResource();
  private readonly s2 = perResource();

  private sumsAfter(vm: VmLoad, dest: HostLoad): { s1: PerResource; s2: PerResource } {
    const source = this.hosts[vm.host]!;
    const { s1, s2 } = this;
    for (const r of this.weighted) {
      s1[r] = this.sum1[r];
      s2[r] = this.sum2[r];
      const delta = vmAmount(vm, r);
      if (source.usable) {
        const before = this.use(source, r);
        const after = before - this.normalise(source, r, delta);
        s1[r] += after - before;
        s2[r] += after * after - before * before;
      }
      if (dest.usable) {
        const before = this.use(dest, r);
        const after = before + this.normalise(dest, r, delta);
        s1[r] += after - before;
        s2[r] += after * after - before * before;
      }
    }
    return { s1, s2 };
  }

  /** `amount` of resource r as a share of h's capacity (disk and network: of the settings' nominal capacity). */
  private normalise(h: HostLoad, r: Resource, amount: number): number {
    switch (r) {
      case 'cpu':
        return h.cpuCores > 0 ? amount / h.cpuCores : 0;
      case 'mem':
        return h.memBytes > 0 ? amount / h.memBytes : 0;
      case 'disk':
        return amount / this.settings.diskCapacityBytesPerSec;
      case 'net':
        return amount / this.settings.netCapacityBytesPerSec;
    }
  }

  /** Moves `vm` to `dest` in the working state (counts as a planned migration). */
  apply(vm: VmLoad, dest: HostLoad): void {
    this.changes++;
    const source = this.hosts[vm.host]!;
    if (source.usable) this.addToScore(source, -1);
    if (dest.usable) this.addToScore(dest, -1);
    source.cpuDemandCores -= vm.cpuDemandCores;
    source.cpuVarianceCoresSq -= vm.cpuVarianceCoresSq;
    source.memCommittedBytes -= vm.memBytes;
    source.diskBytesPerSec -= vm.diskBytesPerSec;
    source.netBytesPerSec -= vm.netBytesPerSec;
    dest.cpuDemandCores += vm.cpuDemandCores;
    dest.cpuVarianceCoresSq += vm.cpuVarianceCoresSq;
    dest.memCommittedBytes += vm.memBytes;
    dest.diskBytesPerSec += vm.diskBytesPerSec;
    dest.netBytesPerSec += vm.netBytesPerSec;
    const at = source.vms.indexOf(vm.index);
    if (at >= 0) source.vms.splice(at, 1);
    dest.vms.push(vm.index);
    source.outgoing++;
    dest.incoming++;
    this.migrations++;
    vm.host = dest.index;
    vm.moved = true;
    if (source.usable) this.addToScore(source, 1);
    if (dest.usable) this.addToScore(dest, 1);
  }

  /** Undoes `apply(vm, …)`: the VM goes back to `source` and the planned-migration counts drop. */
  revert(vm: VmLoad, source: HostLoad, wasMoved = false): void {
    const dest = this.hosts[vm.host]!;
    this.apply(vm, source);
    // apply() counted a second migration; take both back.
    source.incoming--;
    dest.outgoing--;
    source.outgoing--;
    dest.incoming--;
    this.migrations -= 2;
    vm.moved = wasMoved;
  }

  hostOf(vm: VmLoad): HostLoad {
    return this.hosts[vm.host]!;
  }

  /** Built from exactly this snapshot, settings (their weights) and demand, and never changed since. */
  isFreshFor(snapshot: Snapshot, settings: PolicySettings, demandByVm?: ReadonlyMap<string, Demand>): boolean {
    return (
      this.changes === 0 &&
      this.snapshot === snapshot &&
      this.settings === settings &&
      this.weights === settings.weights &&
      this.demandByVm === demandByVm
    );
  }
}

/**
 * The working state a policy plans on: `reuse` when it is still exactly what would be built (an earlier
 * policy of the round built it for this very snapshot and moved nothing), else a new one. Building one
 * costs tens of milliseconds at 30,000 VMs; most rounds' first policies move nothing.
 */
export function workingCluster(
  snapshot: Snapshot,
  settings: PolicySettings,
  demandByVm?: ReadonlyMap<string, Demand>,
  reuse?: Cluster,
): Cluster {
  return reuse?.isFreshFor(snapshot, settings, demandByVm)
    ? reuse
    : new Cluster(snapshot, settings, settings.weights, demandByVm);
}

function intersect(a: Set<string>, b: Set<string>): Set<string> {
  return new Set([...a].filter((x) => b.has(x)));
}

/** Applies moves to a snapshot (VM hosts, host windows and memory), for the next policy of a round. */
export function applyMovesToSnapshot(snapshot: Snapshot, moves: readonly Move[]): Snapshot {
  if (moves.length === 0) return snapshot;
  const hosts = new Map(
    snapshot.hosts.map((h) => [h.name, { ...h, cpuUsedWindowCores: h.cpuUsedWindowCores.slice() }]),
  );
  const byVm = new Map(moves.map((m) => [m.vm, m]));
  const vms = snapshot.vms.map((vm) => {
    const move = byVm.get(vm.name);
    if (!move) return vm;
    const from = hosts.get(move.from);
    const to = hosts.get(move.to);
    if (from) {
      shiftWindow(from.cpuUsedWindowCores, vm.cpuUsedWindowCores, -1);
      from.memUsedBytes = Math.max(0, from.memUsedBytes - vm.memUsedBytes);
    }
    if (to) {
      shiftWindow(to.cpuUsedWindowCores, vm.cpuUsedWindowCores, 1);
      to.memUsedBytes += vm.memUsedBytes;
    }
    return { ...vm, host: move.to, previousHost: move.from, lastMoveMs: snapshot.nowMs };
  });
  return { ...snapshot, hosts: [...hosts.values()], vms };
}

/** Adds (or subtracts) a VM's window to a host's, aligned on the newest entry. */
function shiftWindow(host: number[], vm: readonly number[], sign: 1 | -1): void {
  for (let i = 1; i <= Math.min(host.length, vm.length); i++) {
    host[host.length - i] = Math.max(0, host[host.length - i]! + sign * vm[vm.length - i]!);
  }
}
