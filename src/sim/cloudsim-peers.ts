/**
 * CloudSim's published consolidation algorithms (Beloglazov & Buyya, CCPE 2012), written from CloudSim
 * 3.0.3's description and behaviour (PowerVmAllocationPolicyMigrationAbstract and its LocalRegression and
 * StaticThreshold subclasses, PowerVmSelectionPolicyMinimumMigrationTime), to run in LBVM's simulator on
 * the CloudSim setup (cloudsim.ts) beside LBVM's policies, so both are scored by one meter (energy.ts):
 *
 * - `lr-mmt`  a host is overloaded when the least-squares line through its last 10 CPU-use samples,
 *             extended one step ahead (the longest migration off it, rounded up to steps) and × 1.2
 *             (the safety parameter), reaches 100%; with fewer than 10 samples, when its VMs request
 *             more than 70% of its MIPS. (CloudSim names it Loess, but its tricube weights are never
 *             applied: none is 0, so the fit is plain least squares.)
 * - `thr-mmt` overloaded when its VMs request more than 80% of its MIPS.
 *
 * Each step: every overloaded host gives up the VM with the least RAM (minimum migration time) until
 * it is no longer overloaded; those VMs, busiest first, go to the host whose power rises least
 * (power-aware best fit decreasing: a host that can take the VM's request, on one of its PEs, and, if
 * its VMs are given any CPU, is not overloaded with it). The rise is CloudSim's: the power at what the
 * host's VMs are given now (VMs placed on it earlier in the step included) plus the VM's request, less
 * the power at the step's start (PowerVmAllocationPolicyMigrationAbstract.findHostForVm against
 * PowerHost.getPower, which is not refreshed within a step), so a host that took VMs looks dearer for
 * the next one and an empty host counts only its rise above idle. Then, from the least-used host on
 * upward (hosts overloaded or empty at the step's start left out), each host is emptied if all its VMs
 * find such a host among those running at the step's start (none switched on for it), all or none;
 * a host that receives them is not emptied in the same step, but one that took a VM from an
 * overloaded host may be, moving that VM on again, as in CloudSim. Host use is its VMs' allocation at
 * the step's start; what each host has free is kept up to date as VMs are placed, as CloudSim's
 * schedulers do.
 */
import type { Move, Plan, Snapshot } from '../model/index.ts';
import { powerWatts } from '../../policies/power.ts';
import { MIGRATION_MB_PER_SEC, STEP_SECONDS, type EnergyHost } from './cloudsim.ts';

export const CLOUDSIM_PEERS = ['lr-mmt', 'thr-mmt'] as const;
export type CloudsimPeer = (typeof CLOUDSIM_PEERS)[number];

export function isCloudsimPeer(name: string): name is CloudsimPeer {
  return (CLOUDSIM_PEERS as readonly string[]).includes(name);
}

/** Local regression: samples fitted, safety parameter, and the static threshold used until there are enough. */
const LR_SAMPLES = 10;
const LR_SAFETY = 1.2;
const LR_FALLBACK = 0.7;
const THR = 0.8;
/** CloudSim's PowerVm keeps this many utilisation samples per VM. */
const HISTORY = 30;
const MiB = 1024 ** 2;

interface PeerVm {
  name: string;
  /** Requested cores now, and the VM's samples newest first (steps ≥ 1 only, as CloudSim records them). */
  request: number;
  history: number[];
  ramMb: number;
  host: number;
}

interface PeerHost {
  index: number;
  name: string;
  cores: number;
  peCores: number;
  power: EnergyHost['power'];
  /** Use at the step's start (allocation over capacity): CloudSim does not refresh it within a step. */
  use: number;
  /** Capacity not yet given to a VM's (PE-capped) request; updated as VMs are placed and removed. */
  free: number;
  vms: PeerVm[];
}

/** The planner of `name` on the CloudSim setup's hosts (in h0 … order, as the snapshot names them). */
export function cloudsimPeer(name: CloudsimPeer, hosts: readonly EnergyHost[], stepMs: number) {
  return (snapshot: Snapshot): Plan => consolidateLikeCloudsim(name, snapshot, hosts, stepMs);
}

function consolidateLikeCloudsim(
  name: CloudsimPeer,
  snapshot: Snapshot,
  specs: readonly EnergyHost[],
  stepMs: number,
): Plan {
  const step = Math.round(snapshot.nowMs / stepMs);
  const index = new Map(specs.map((h, i) => [h.name, i]));
  const hosts: PeerHost[] = specs.map((h, i) => ({
    index: i,
    name: h.name,
    cores: h.cpuCores,
    peCores: h.peCores,
    power: h.power,
    use: 0,
    free: h.cpuCores,
    vms: [],
  }));
  for (const state of snapshot.vms) {
    const at = index.get(state.host);
    if (at === undefined) continue;
    const window = state.cpuUsedWindowCores;
    const kept = Math.min(window.length, step, HISTORY);
    const vm: PeerVm = {
      name: state.name,
      request: window.length ? window[window.length - 1]! : 0,
      history: window.slice(window.length - kept).reverse(),
      ramMb: state.memBytes / MiB,
      host: at,
    };
    hosts[at]!.vms.push(vm);
  }
  for (const h of hosts) {
    const capped = h.vms.reduce((sum, vm) => sum + Math.min(vm.request, h.peCores), 0);
    h.use = Math.min(capped, h.cores) / h.cores;
    h.free = Math.max(0, h.cores - capped);
  }
  const overloaded = (h: PeerHost) => (name === 'thr-mmt' ? requestedShare(h) > THR : lrOverloaded(h));
  const add = (h: PeerHost, vm: PeerVm) => {
    h.vms.push(vm);
    h.free = Math.max(0, h.free - Math.min(vm.request, h.peCores));
  };
  const remove = (h: PeerHost, vm: PeerVm) => {
    h.vms.splice(h.vms.indexOf(vm), 1);
    h.free = Math.min(h.cores, h.free + Math.min(vm.request, h.peCores));
  };
  /** Power-aware best fit: the host whose power rises least, or null. */
  const bestHost = (vm: PeerVm, excluded: ReadonlySet<number>): PeerHost | null => {
    let best: PeerHost | null = null;
    let bestRise = Number.POSITIVE_INFINITY;
    for (const h of hosts) {
      if (excluded.has(h.index) || h.peCores < vm.request || h.free < vm.request) continue;
      // What the host's VMs are given now, the VMs placed on it earlier in this step included.
      const givenShare = (h.cores - h.free) / h.cores;
      if (givenShare !== 0) {
        add(h, vm);
        const over = overloaded(h);
        remove(h, vm);
        if (over) continue;
      }
      // CloudSim: power at (what is given now + the VM's request) less the power at the step's start, so a
      // host that took VMs earlier in the step looks dearer for the next one.
      const rise = powerWatts(h.power, givenShare + vm.request / h.cores) - powerWatts(h.power, h.use);
      if (rise < bestRise) {
        bestRise = rise;
        best = h;
      }
    }
    return best;
  };
  const moves: Move[] = [];
  const record = (vm: PeerVm, from: PeerHost, to: PeerHost, why: string) =>
    moves.push({
      vm: vm.name,
      from: from.name,
      to: to.name,
      policy: name,
      reason: why,
      gain: 0,
      cost: { bytes: vm.ramMb * MiB, durationMs: (vm.ramMb / MIGRATION_MB_PER_SEC) * 1000, score: 0 },
    });
  /** Where each VM is in the step's plan (a VM can be placed and then moved again, as in CloudSim). */
  const planned = new Map<PeerVm, PeerHost>();

  // 1. Overloaded hosts: minimum-migration-time VMs off them until they are not.
  const hot = hosts.filter(overloaded);
  const hotSet = new Set(hot.map((h) => h.index));
  const leaving: PeerVm[] = [];
  for (const h of hot) {
    while (overloaded(h) && h.vms.length > 0) {
      let pick = h.vms[0]!;
      for (const vm of h.vms) if (vm.ramMb < pick.ramMb) pick = vm;
      remove(h, pick);
      leaving.push(pick);
    }
  }
  for (const vm of byRequestDescending(leaving)) {
    const to = bestHost(vm, hotSet);
    const from = hosts[vm.host]!;
    if (!to) {
      add(from, vm);
      continue;
    }
    add(to, vm);
    planned.set(vm, to);
    record(vm, from, to, `${name}: ${from.name} overloaded`);
  }
  // 2. Underloaded hosts, least used first: all VMs off, or none.
  const off = hosts.filter((h) => h.use === 0);
  const noCandidate = new Set([...hotSet, ...off.map((h) => h.index)]);
  const noTarget = new Set(noCandidate);
  for (;;) {
    let under: PeerHost | null = null;
    for (const h of hosts)
      if (!noCandidate.has(h.index) && h.use > 0 && h.use < (under?.use ?? 1) && h.vms.length > 0) under = h;
    if (!under) break;
    noCandidate.add(under.index);
    noTarget.add(under.index);
    const placed: { vm: PeerVm; to: PeerHost }[] = [];
    for (const vm of byRequestDescending(under.vms)) {
      const to = bestHost(vm, noTarget);
      if (!to) {
        for (const p of placed) remove(p.to, p.vm);
        placed.length = 0;
        break;
      }
      add(to, vm);
      placed.push({ vm, to });
    }
    for (const { vm, to } of placed) {
      noCandidate.add(to.index);
      record(vm, planned.get(vm) ?? under, to, `${name}: ${under.name} underloaded`);
      planned.set(vm, to);
    }
  }
  return { policy: name, moves, scoreBefore: 0, scoreAfter: 0, skipped: [], notes: [] };
}

function requestedShare(h: PeerHost): number {
  let total = 0;
  for (const vm of h.vms) total += vm.request;
  return total / h.cores;
}

/**
 * Local regression: the host's use history (its VMs' samples summed, newest first, oldest zeros
 * dropped); with at least 10 samples, the least-squares line through the last 10 (oldest at x = 1),
 * read at x = 10 + the longest migration off the host in steps, × 1.2, at or above 1.
 */
function lrOverloaded(h: PeerHost): boolean {
  let length = 0;
  for (const vm of h.vms) length = Math.max(length, vm.history.length);
  const history = new Array<number>(length).fill(0);
  for (const vm of h.vms) vm.history.forEach((value, j) => (history[j]! += value / h.cores));
  while (history.length > 0 && history[history.length - 1] === 0) history.pop();
  if (history.length < LR_SAMPLES) return requestedShare(h) > LR_FALLBACK;
  const y = history.slice(0, LR_SAMPLES).reverse();
  const n = LR_SAMPLES;
  const meanX = (n + 1) / 2;
  const meanY = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  y.forEach((value, i) => {
    sxy += (i + 1 - meanX) * (value - meanY);
    sxx += (i + 1 - meanX) ** 2;
  });
  const slope = sxy / sxx;
  const intercept = meanY - slope * meanX;
  const longestMigration = Math.max(...h.vms.map((vm) => vm.ramMb)) / MIGRATION_MB_PER_SEC;
  const ahead = Math.ceil(longestMigration / STEP_SECONDS);
  return (intercept + slope * (n + ahead)) * LR_SAFETY >= 1;
}

function byRequestDescending(vms: readonly PeerVm[]): PeerVm[] {
  return vms.slice().sort((a, b) => b.request - a.request);
}
