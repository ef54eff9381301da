/**
 * The two baselines LBVM is measured against, written from the public descriptions in issue #4
 * (no code of those projects). Both are pure functions of a snapshot, like LBVM's policies, and
 * look only at CPU (the traces' common resource), with memory as a hard limit.
 *
 * ProxLB-style greedy: when max − min host CPU use (latest sample) is above 10 points, take the most
 * loaded host and move its VMs, smallest CPU use first, each to the currently least loaded host
 * with the memory, until the spread is under the limit or the source is no longer the most loaded.
 *
 * Xen Orchestra-style performance plan: host load = 0.75 × latest + 0.25 × mean of the last 6
 * samples; a host at ≥ 76.5% CPU is exceeded; its VMs, highest CPU first, go to the least loaded host
 * whose load plus the VM's stays under 58.5%, until the source is ≤ 58.5%; a VM is not moved again
 * for 30 minutes; at most 2 migrations per run.
 */
import type { Move, Plan, Snapshot } from '../model/index.ts';

interface Box {
  name: string;
  cpuCores: number;
  memBytes: number;
  cpu: number;
  mem: number;
}

function boxes(snapshot: Snapshot, load: (window: readonly number[]) => number): { hosts: Map<string, Box>; vmLoad: Map<string, number> } {
  const hosts = new Map<string, Box>();
  for (const h of snapshot.hosts) {
    if (h.status !== 'up' || h.maintenance) continue;
    hosts.set(h.name, { name: h.name, cpuCores: h.cpuCores, memBytes: h.memBytes, cpu: 0, mem: 0 });
  }
  const vmLoad = new Map<string, number>();
  for (const vm of snapshot.vms) {
    const value = load(vm.cpuUsedWindowCores);
    vmLoad.set(vm.name, value);
    const h = hosts.get(vm.host);
    if (h) {
      h.cpu += value;
      h.mem += vm.memBytes;
    }
  }
  return { hosts, vmLoad };
}

function baselineMove(policy: string, vm: string, from: string, to: string, reason: string): Move {
  return { vm, from, to, policy, reason, gain: 0, cost: { bytes: 0, durationMs: 0, score: 0 } };
}

function emptyPlan(policy: string, moves: Move[], notes: string[]): Plan {
  return { policy, moves, scoreBefore: 0, scoreAfter: 0, skipped: [], notes };
}

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function proxlbGreedy(snapshot: Snapshot, spreadPoints = 10): Plan {
  const latest = (w: readonly number[]) => (w.length ? w[w.length - 1]! : 0);
  const { hosts, vmLoad } = boxes(snapshot, latest);
  const list = [...hosts.values()].sort(byName);
  const use = (h: Box) => (100 * h.cpu) / h.cpuCores;
  const most = () => list.reduce((a, b) => (use(b) > use(a) ? b : a));
  const least = () => list.reduce((a, b) => (use(b) < use(a) ? b : a));
  const moves: Move[] = [];
  if (list.length < 2 || use(most()) - use(least()) <= spreadPoints) return emptyPlan('proxlb', moves, ['spread under the limit']);
  const source = most();
  const vms = snapshot.vms.filter((vm) => vm.host === source.name).sort((a, b) => vmLoad.get(a.name)! - vmLoad.get(b.name)! || byName(a, b));
  for (const vm of vms) {
    const candidates = list.filter((h) => h !== source && h.mem + vm.memBytes <= h.memBytes);
    if (candidates.length === 0) continue;
    const dest = candidates.reduce((a, b) => (use(b) < use(a) ? b : a));
    const value = vmLoad.get(vm.name)!;
    source.cpu -= value;
    source.mem -= vm.memBytes;
    dest.cpu += value;
    dest.mem += vm.memBytes;
    moves.push(baselineMove('proxlb', vm.name, source.name, dest.name, `spread > ${spreadPoints} points: smallest VM of the most loaded host to the least loaded`));
    if (use(most()) - use(least()) <= spreadPoints || most() !== source) break;
  }
  return emptyPlan('proxlb', moves, []);
}

export interface XoSettings {
  exceededShare: number;
  targetShare: number;
  cooldownMs: number;
  maxMigrations: number;
}

export const XO_DEFAULTS: XoSettings = { exceededShare: 0.765, targetShare: 0.585, cooldownMs: 30 * 60_000, maxMigrations: 2 };

export function xoPerformance(snapshot: Snapshot, settings: XoSettings = XO_DEFAULTS): Plan {
  // load = 0.75 × latest + 0.25 × mean of the last 6 samples
  const load = (w: readonly number[]) => {
    if (w.length === 0) return 0;
    const tail = w.slice(-6);
    return 0.75 * w[w.length - 1]! + (0.25 * tail.reduce((a, b) => a + b, 0)) / tail.length;
  };
  const { hosts, vmLoad } = boxes(snapshot, load);
  const list = [...hosts.values()].sort(byName);
  const share = (h: Box) => h.cpu / h.cpuCores;
  const moves: Move[] = [];
  const exceeded = list.filter((h) => share(h) >= settings.exceededShare).sort((a, b) => share(b) - share(a) || byName(a, b));
  for (const source of exceeded) {
    const vms = snapshot.vms
      .filter((vm) => vm.host === source.name && (vm.lastMoveMs === undefined || snapshot.nowMs - vm.lastMoveMs >= settings.cooldownMs))
      .sort((a, b) => vmLoad.get(b.name)! - vmLoad.get(a.name)! || byName(a, b));
    for (const vm of vms) {
      if (moves.length >= settings.maxMigrations || share(source) <= settings.targetShare) break;
      const value = vmLoad.get(vm.name)!;
      const candidates = list.filter((h) => h !== source && (h.cpu + value) / h.cpuCores < settings.targetShare && h.mem + vm.memBytes <= h.memBytes);
      if (candidates.length === 0) continue;
      const dest = candidates.reduce((a, b) => (share(b) < share(a) ? b : a));
      source.cpu -= value;
      source.mem -= vm.memBytes;
      dest.cpu += value;
      dest.mem += vm.memBytes;
      moves.push(baselineMove('xo', vm.name, source.name, dest.name, `${source.name} ≥ ${settings.exceededShare * 100}%: highest-CPU VM to the least loaded host under ${settings.targetShare * 100}%`));
    }
  }
  return emptyPlan('xo', moves, []);
}
