/**
 * Builders for plain snapshots with overrides, for policy and simulator tests, plus a small seeded
 * generator of random clusters for property tests (no dependency: mulberry32).
 */
import { prng } from '../../src/util/prng.ts';
import type { HostState, Rules, Snapshot, VmState } from '../../src/model/index.ts';

export const GiB = 1024 ** 3;
export const NOW = 1_700_000_000_000;

export function host(name: string, overrides: Partial<HostState> = {}): HostState {
  return {
    name,
    cpuCores: 8,
    memBytes: 64 * GiB,
    cpuUsedWindowCores: [],
    memUsedBytes: 0,
    status: 'up',
    maintenance: false,
    lastSampleMs: NOW,
    ...overrides,
  };
}

/** A VM using `cores` steadily (a flat window of 6 samples). */
export function vm(name: string, hostName: string, cores = 1, overrides: Partial<VmState> = {}): VmState {
  return {
    name,
    host: hostName,
    vcpus: Math.max(1, Math.ceil(cores)),
    memBytes: 2 * GiB,
    cpuUsedWindowCores: Array(6).fill(cores),
    memUsedBytes: GiB,
    memDirtyBytesPerSec: 0,
    tags: [],
    ...overrides,
  };
}

export function snapshot(
  hosts: HostState[],
  vms: VmState[],
  overrides: Partial<Snapshot> & { rules?: Partial<Rules> } = {},
): Snapshot {
  const { rules, ...rest } = overrides;
  return {
    nowMs: NOW,
    seed: 1,
    hosts,
    vms,
    inFlight: [],
    ...rest,
    rules: { groups: [], pins: [], ignoredVms: [], ...rules },
  };
}

/** Deterministic PRNG (mulberry32), for generators only: policies never use randomness. */
export const rng = prng;

/**
 * A random cluster that breaks no hard rule to begin with: 3..12 hosts (some stale, down or in
 * maintenance), VMs placed where memory allows, anti-affinity pairs apart, pins where they sit,
 * some VMs ignored, cooling down, quarantined or in flight.
 */
export function randomSnapshot(seed: number): Snapshot {
  const random = rng(seed);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)]!;
  const hostCount = 3 + Math.floor(random() * 10);
  const hosts: HostState[] = [];
  for (let i = 0; i < hostCount; i++) {
    const roll = random();
    hosts.push(
      host(`h${i}`, {
        cpuCores: pick([4, 8, 16]),
        memBytes: pick([16, 32, 64]) * GiB,
        status: roll < 0.08 ? 'stale' : roll < 0.12 ? 'down' : 'up',
        maintenance: roll > 0.92,
      }),
    );
  }
  const memLeft = new Map(hosts.map((h) => [h.name, h.memBytes]));
  const vms: VmState[] = [];
  const vmCount = hostCount * (2 + Math.floor(random() * 6));
  for (let i = 0; i < vmCount; i++) {
    const memBytes = pick([1, 2, 4, 8]) * GiB;
    const candidates = hosts.filter((h) => memLeft.get(h.name)! >= memBytes);
    if (candidates.length === 0) continue;
    const at = pick(candidates);
    memLeft.set(at.name, memLeft.get(at.name)! - memBytes);
    const base = random() * 3;
    const window = Array.from({ length: 8 }, (_, k) =>
      Math.max(0, base + (random() - 0.5) + (random() < 0.3 ? k * 0.1 : 0)),
    );
    const roll = random();
    vms.push(
      vm(`vm-${i}`, at.name, 0, {
        memBytes,
        memUsedBytes: memBytes / 2,
        cpuUsedWindowCores: window,
        memDirtyBytesPerSec: random() < 0.5 ? 0 : random() * 200e6,
        lastMoveMs: roll < 0.1 ? NOW - 5 * 60_000 : undefined,
        previousHost: roll < 0.1 ? pick(hosts).name : undefined,
        quarantinedUntilMs: roll > 0.95 ? NOW + 60_000 : undefined,
      }),
    );
  }
  const groups: Rules['groups'] = [];
  const pins: Rules['pins'] = [];
  for (let g = 0; g < 3 && vms.length > 4; g++) {
    const a = pick(vms);
    const b = pick(vms);
    if (a === b) continue;
    if (a.host !== b.host)
      groups.push({ name: `apart-${g}`, kind: 'anti-affinity', vms: [a.name, b.name], hard: random() < 0.7 });
    else groups.push({ name: `together-${g}`, kind: 'affinity', vms: [a.name, b.name], hard: random() < 0.5 });
  }
  for (let p = 0; p < 2 && vms.length > 0; p++) {
    const v = pick(vms);
    pins.push({ name: `pin-${p}`, vm: v.name, hosts: [v.host, pick(hosts).name], hard: random() < 0.6 });
  }
  const ignoredVms = vms.filter(() => random() < 0.05).map((v) => v.name);
  const inFlight = vms
    .filter(() => random() < 0.05)
    .map((v) => ({ vm: v.name, from: v.host, to: pick(hosts).name, jobId: `job-${v.name}`, state: 'active' as const }))
    .filter((f) => f.to !== f.from);
  return snapshot(hosts, vms, { seed, rules: { groups, pins, ignoredVms }, inFlight });
}
