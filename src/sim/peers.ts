/**
 * The peers LBVM is measured against: the balancing behaviour of the tools operators already run,
 * written from their public documentation and issue descriptions (no code of those projects). Each is
 * a pure function of a snapshot, like LBVM's policies; all look only at CPU (the traces' common
 * resource), with memory as a hard limit, and none moves a VM onto a host in maintenance or not up.
 *
 * - `proxlb`  ProxLB (>= 1.1.3): a guest's CPU is the mean of the last hour. When max − min host CPU
 *             use is above 10 points, the most loaded host's VMs go, smallest first, each to the
 *             currently least loaded host, until the spread is under 10 points or the source is no
 *             longer the most loaded.
 * - `xo`      Xen Orchestra's performance plan: host load = 0.75 × latest + 0.25 × mean of the last 6
 *             samples; a host at >= 76.5% is exceeded; its VMs, highest CPU first, go to the least
 *             loaded host whose load plus the VM's stays under 58.5%, until the source is <= 58.5%; a VM
 *             is not moved again for 30 minutes; at most 2 migrations a run.
 * - `drs`     VMware DRS-style greedy: demand = mean of the last 3 samples; while the standard deviation
 *             of host CPU use is above 0.05, the single move (a VM from one of the 3 most loaded hosts
 *             to any host) that lowers it most, kept only if it lowers it by >= 0.002; at most 8 moves.
 * - `ovirt`   oVirt's evenly_distributed policy: sources at >= 75% CPU, destinations under 55%; the
 *             most loaded source's VMs in ascending CPU order, the first whose move keeps the
 *             destination <= 75%; one migration a run.
 * - `lownode` Kubernetes descheduler LowNodeUtilization: only when some host is under 20%; from hosts
 *             over 50%, largest VMs first, to the emptiest under-20% host while it stays <= 50% (and
 *             while the source is over 50%).
 * - `crs`     Proxmox VE 9 CRS auto-rebalancing: imbalance = CV(host use) / √(n − 1); it acts after 3
 *             samples in a row above 0.3, with the single move that lowers it most, kept only if it
 *             improves it by >= 10%; one move a run.
 * `none` moves nothing. Unless said otherwise a peer reads a VM's latest sample.
 */
import type { Move, Plan, Snapshot, VmState } from '../model/index.ts';

export const PEER_NAMES = ['none', 'proxlb', 'xo', 'drs', 'ovirt', 'lownode', 'crs'] as const;
export type PeerName = (typeof PEER_NAMES)[number];

export function isPeerName(name: string): name is PeerName {
  return (PEER_NAMES as readonly string[]).includes(name);
}

/** What a peer knows beyond the snapshot: the time between two window entries. */
export interface PeerContext {
  stepMs: number;
}

interface Box {
  name: string;
  cpuCores: number;
  memBytes: number;
  cpu: number;
  mem: number;
  vms: VmState[];
}

type Load = (window: readonly number[]) => number;

const latest: Load = (w) => (w.length ? w[w.length - 1]! : 0);
const meanOfLast =
  (n: number): Load =>
  (w) => {
    const from = Math.max(0, w.length - n);
    if (w.length === from) return 0;
    let sum = 0;
    for (let i = from; i < w.length; i++) sum += w[i]!;
    return sum / (w.length - from);
  };

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Hosts that are up and not in maintenance, sorted by name, with their VMs' load summed by `load`. */
function boxes(snapshot: Snapshot, load: Load): { list: Box[]; vmLoad: Map<string, number> } {
  const hosts = new Map<string, Box>();
  for (const h of snapshot.hosts) {
    if (h.status !== 'up' || h.maintenance) continue;
    hosts.set(h.name, { name: h.name, cpuCores: h.cpuCores, memBytes: h.memBytes, cpu: 0, mem: 0, vms: [] });
  }
  const vmLoad = new Map<string, number>();
  for (const vm of snapshot.vms) {
    const value = load(vm.cpuUsedWindowCores);
    vmLoad.set(vm.name, value);
    const h = hosts.get(vm.host);
    if (h) {
      h.cpu += value;
      h.mem += vm.memBytes;
      h.vms.push(vm);
    }
  }
  return { list: [...hosts.values()].sort(byName), vmLoad };
}

const share = (h: Box) => (h.cpuCores > 0 ? h.cpu / h.cpuCores : 0);
const memFits = (h: Box, vm: VmState) => h.mem + vm.memBytes <= h.memBytes;

function transfer(source: Box, dest: Box, vm: VmState, value: number): void {
  source.cpu -= value;
  source.mem -= vm.memBytes;
  source.vms.splice(source.vms.indexOf(vm), 1);
  dest.cpu += value;
  dest.mem += vm.memBytes;
  dest.vms.push(vm);
}

function peerMove(policy: PeerName, vm: string, from: string, to: string, reason: string): Move {
  return { vm, from, to, policy, reason, gain: 0, cost: { bytes: 0, durationMs: 0, score: 0 } };
}

function peerPlan(policy: PeerName, moves: Move[], notes: string[] = []): Plan {
  return { policy, moves, scoreBefore: 0, scoreAfter: 0, skipped: [], notes };
}

function minBy<T>(items: readonly T[], key: (item: T) => number): T | undefined {
  let best: T | undefined;
  let bestKey = Number.POSITIVE_INFINITY;
  for (const item of items) {
    const k = key(item);
    if (k < bestKey) {
      best = item;
      bestKey = k;
    }
  }
  return best;
}

/** Population standard deviation of host CPU use. */
function stdDev(list: readonly Box[]): number {
  if (list.length === 0) return 0;
  let sum = 0;
  let sumSq = 0;
  for (const h of list) {
    const u = share(h);
    sum += u;
    sumSq += u * u;
  }
  const mean = sum / list.length;
  return Math.sqrt(Math.max(0, sumSq / list.length - mean * mean));
}

export function proxlbGreedy(snapshot: Snapshot, context: PeerContext, spreadPoints = 10): Plan {
  const hourSamples = Math.max(1, Math.round(3_600_000 / context.stepMs));
  const { list, vmLoad } = boxes(snapshot, meanOfLast(hourSamples));
  const use = (h: Box) => 100 * share(h);
  const most = () => list.reduce((a, b) => (use(b) > use(a) ? b : a));
  const least = () => list.reduce((a, b) => (use(b) < use(a) ? b : a));
  const moves: Move[] = [];
  if (list.length < 2 || use(most()) - use(least()) <= spreadPoints)
    return peerPlan('proxlb', moves, ['spread under the limit']);
  const source = most();
  const vms = source.vms.slice().sort((a, b) => vmLoad.get(a.name)! - vmLoad.get(b.name)! || byName(a, b));
  for (const vm of vms) {
    const dest = minBy(
      list.filter((h) => h !== source && memFits(h, vm)),
      use,
    );
    if (!dest) continue;
    transfer(source, dest, vm, vmLoad.get(vm.name)!);
    moves.push(
      peerMove(
        'proxlb',
        vm.name,
        source.name,
        dest.name,
        `spread > ${spreadPoints} points: smallest VM of the most loaded host to the least loaded`,
      ),
    );
    if (use(most()) - use(least()) <= spreadPoints || most() !== source) break;
  }
  return peerPlan('proxlb', moves);
}

export interface XoSettings {
  exceededShare: number;
  targetShare: number;
  cooldownMs: number;
  maxMigrations: number;
}

export const XO_DEFAULTS: XoSettings = {
  exceededShare: 0.765,
  targetShare: 0.585,
  cooldownMs: 30 * 60_000,
  maxMigrations: 2,
};

export function xoPerformance(snapshot: Snapshot, _context?: PeerContext, settings: XoSettings = XO_DEFAULTS): Plan {
  // load = 0.75 × latest + 0.25 × mean of the last 6 samples
  const { list, vmLoad } = boxes(snapshot, (w) => (w.length === 0 ? 0 : 0.75 * latest(w) + 0.25 * meanOfLast(6)(w)));
  const moves: Move[] = [];
  const exceeded = list
    .filter((h) => share(h) >= settings.exceededShare)
    .sort((a, b) => share(b) - share(a) || byName(a, b));
  for (const source of exceeded) {
    const vms = source.vms
      .filter((vm) => vm.lastMoveMs === undefined || snapshot.nowMs - vm.lastMoveMs >= settings.cooldownMs)
      .sort((a, b) => vmLoad.get(b.name)! - vmLoad.get(a.name)! || byName(a, b));
    for (const vm of vms) {
      if (moves.length >= settings.maxMigrations || share(source) <= settings.targetShare) break;
      const value = vmLoad.get(vm.name)!;
      const dest = minBy(
        list.filter((h) => h !== source && (h.cpu + value) / h.cpuCores < settings.targetShare && memFits(h, vm)),
        share,
      );
      if (!dest) continue;
      transfer(source, dest, vm, value);
      moves.push(
        peerMove(
          'xo',
          vm.name,
          source.name,
          dest.name,
          `${source.name} >= ${settings.exceededShare * 100}%: highest-CPU VM to the least loaded host under ${settings.targetShare * 100}%`,
        ),
      );
    }
  }
  return peerPlan('xo', moves);
}

/** Sums of host use and its square, to price a move's effect on the mean and std-dev in O(1). */
interface UseSums {
  n: number;
  sum: number;
  sumSq: number;
}

function useSums(list: readonly Box[]): UseSums {
  let sum = 0;
  let sumSq = 0;
  for (const h of list) {
    sum += share(h);
    sumSq += share(h) ** 2;
  }
  return { n: list.length, sum, sumSq };
}

/** Mean and std-dev of host use after `value` cores leave `source` for `dest`. */
function afterMove(sums: UseSums, source: Box, dest: Box, value: number): { mean: number; sd: number } {
  const s0 = share(source);
  const s1 = (source.cpu - value) / source.cpuCores;
  const d0 = share(dest);
  const d1 = (dest.cpu + value) / dest.cpuCores;
  const mean = (sums.sum - s0 - d0 + s1 + d1) / sums.n;
  const sumSq = sums.sumSq - s0 * s0 - d0 * d0 + s1 * s1 + d1 * d1;
  return { mean, sd: Math.sqrt(Math.max(0, sumSq / sums.n - mean * mean)) };
}

interface BestMove {
  vm: VmState;
  source: Box;
  dest: Box;
  after: number;
}

/** The move from `sources` (VMs by name) to any other host with the memory that gives the lowest `score`. */
function bestMove(
  list: readonly Box[],
  sources: readonly Box[],
  vmLoad: ReadonlyMap<string, number>,
  score: (after: { mean: number; sd: number }) => number,
): BestMove | null {
  const sums = useSums(list);
  let best: BestMove | null = null;
  for (const source of sources) {
    for (const vm of source.vms.slice().sort(byName)) {
      const value = vmLoad.get(vm.name)!;
      if (value <= 0) continue;
      for (const dest of list) {
        if (dest === source || !memFits(dest, vm)) continue;
        const after = score(afterMove(sums, source, dest, value));
        if (!best || after < best.after - 1e-12) best = { vm, source, dest, after };
      }
    }
  }
  return best;
}

export function drsGreedy(snapshot: Snapshot): Plan {
  const { list, vmLoad } = boxes(snapshot, meanOfLast(3));
  const moves: Move[] = [];
  while (moves.length < 8 && list.length >= 2) {
    const before = stdDev(list);
    if (before <= 0.05) break;
    const sources = list
      .slice()
      .sort((a, b) => share(b) - share(a) || byName(a, b))
      .slice(0, 3);
    const best = bestMove(list, sources, vmLoad, (after) => after.sd);
    if (!best || before - best.after < 0.002) break;
    transfer(best.source, best.dest, best.vm, vmLoad.get(best.vm.name)!);
    moves.push(
      peerMove(
        'drs',
        best.vm.name,
        best.source.name,
        best.dest.name,
        `std-dev ${before.toFixed(3)} > 0.05: the move that lowers it most`,
      ),
    );
  }
  return peerPlan('drs', moves);
}

export function ovirtEvenlyDistributed(snapshot: Snapshot): Plan {
  const { list, vmLoad } = boxes(snapshot, latest);
  const source = list.filter((h) => share(h) >= 0.75).sort((a, b) => share(b) - share(a) || byName(a, b))[0];
  if (!source) return peerPlan('ovirt', []);
  const destinations = list.filter((h) => h !== source && share(h) < 0.55);
  const vms = source.vms.slice().sort((a, b) => vmLoad.get(a.name)! - vmLoad.get(b.name)! || byName(a, b));
  for (const vm of vms) {
    const value = vmLoad.get(vm.name)!;
    const dest = minBy(
      destinations.filter((h) => (h.cpu + value) / h.cpuCores <= 0.75 && memFits(h, vm)),
      share,
    );
    if (dest)
      return peerPlan('ovirt', [
        peerMove(
          'ovirt',
          vm.name,
          source.name,
          dest.name,
          `${source.name} >= 75%: smallest VM that fits a host under 55%`,
        ),
      ]);
  }
  return peerPlan('ovirt', []);
}

export function lowNodeUtilization(snapshot: Snapshot): Plan {
  const { list, vmLoad } = boxes(snapshot, latest);
  const moves: Move[] = [];
  const under = list.filter((h) => share(h) < 0.2);
  if (under.length === 0) return peerPlan('lownode', moves);
  const over = list.filter((h) => share(h) > 0.5).sort((a, b) => share(b) - share(a) || byName(a, b));
  for (const source of over) {
    const vms = source.vms.slice().sort((a, b) => vmLoad.get(b.name)! - vmLoad.get(a.name)! || byName(a, b));
    for (const vm of vms) {
      if (share(source) <= 0.5) break;
      const value = vmLoad.get(vm.name)!;
      const dest = minBy(
        under.filter((h) => (h.cpu + value) / h.cpuCores <= 0.5 && memFits(h, vm)),
        share,
      );
      if (!dest) continue;
      transfer(source, dest, vm, value);
      moves.push(
        peerMove('lownode', vm.name, source.name, dest.name, `${source.name} > 50% while ${dest.name} was under 20%`),
      );
    }
  }
  return peerPlan('lownode', moves);
}

/** CRS imbalance: coefficient of variation of host use over √(n − 1). */
function crsImbalance(uses: readonly number[]): number {
  const n = uses.length;
  if (n < 2) return 0;
  const mean = uses.reduce((a, b) => a + b, 0) / n;
  if (mean <= 0) return 0;
  const sd = Math.sqrt(uses.reduce((a, u) => a + (u - mean) ** 2, 0) / n);
  return sd / mean / Math.sqrt(n - 1);
}

export function crsRebalance(snapshot: Snapshot): Plan {
  const { list, vmLoad } = boxes(snapshot, latest);
  if (list.length < 2) return peerPlan('crs', []);
  // Above 0.3 on each of the last 3 samples (the current placement, each sample's use).
  const index = new Map(list.map((h, i) => [h.name, i]));
  for (let back = 0; back < 3; back++) {
    const uses = new Array<number>(list.length).fill(0);
    for (const vm of snapshot.vms) {
      const i = index.get(vm.host);
      const w = vm.cpuUsedWindowCores;
      if (i === undefined || w.length <= back) continue;
      uses[i] += w[w.length - 1 - back]!;
    }
    if (crsImbalance(uses.map((u, i) => u / list[i]!.cpuCores)) <= 0.3) return peerPlan('crs', []);
  }
  const before = crsImbalance(list.map(share));
  const n = list.length;
  const best = bestMove(list, list, vmLoad, ({ mean, sd }) => (mean > 0 ? sd / mean / Math.sqrt(n - 1) : 0));
  if (!best || best.after > 0.9 * before) return peerPlan('crs', []);
  return peerPlan('crs', [
    peerMove(
      'crs',
      best.vm.name,
      best.source.name,
      best.dest.name,
      `imbalance ${before.toFixed(3)} > 0.3 for 3 samples: the best move, >= 10% better`,
    ),
  ]);
}

/** The peer's planner by name. */
export function peerPlanner(name: PeerName, context: PeerContext): (snapshot: Snapshot) => Plan {
  switch (name) {
    case 'none':
      return () => peerPlan('none', []);
    case 'proxlb':
      return (snapshot) => proxlbGreedy(snapshot, context);
    case 'xo':
      return (snapshot) => xoPerformance(snapshot, context);
    case 'drs':
      return drsGreedy;
    case 'ovirt':
      return ovirtEvenlyDistributed;
    case 'lownode':
      return lowNodeUtilization;
    case 'crs':
      return crsRebalance;
  }
}
