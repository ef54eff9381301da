/**
 * Builds the snapshot the policies see, from plain data: the sample window (streamed in, one sample
 * at a time), migration events, controls and rules. Pure apart from its inputs: no clock, no I/O.
 *
 * - A host whose newest sample is older than `staleAfterIntervals × intervalMs` is `stale` (unknown):
 *   nothing moves to it and its VMs are not judged by old numbers. A configured host that never
 *   reported is stale too.
 * - Where a VM is now: its newest sample, overridden by a newer `migration.finished` event.
 * - A VM missing from its host's newest round is gone (stopped, or moved out of our sight).
 * - Rules: the config's (globs expanded against the VMs seen), plus those read from VM tags.
 * - Cooldown and ping-pong come from the last finished migration; quarantine from failures in a row.
 */
import type {
  HostSample,
  HostState,
  InFlightMigration,
  LbvmEvent,
  Rules,
  Sample,
  Snapshot,
  VmSample,
  VmState,
} from '../model/index.ts';

export interface SnapshotInputs {
  nowMs: number;
  intervalMs: number;
  staleAfterIntervals: number;
  /** Hosts from config, with capacity overriding what samples say (logical hosts). */
  configuredHosts: Record<string, { cpuCores: number; memBytes: number }>;
  maintenance: Set<string>;
  /** The configured rules for these VM names (config globs such as `db-*` expand against them). */
  rules: Rules | ((vmNames: string[]) => Rules);
  inFlight: InFlightMigration[];
  quarantineAfterFailures: number;
  quarantineMs: number;
}

interface Accumulator<T extends Sample> {
  /** The newest full sample; a CPU point may arrive before it (or without it, then it is dropped). */
  latest?: T;
  cpuWindow: { timeMs: number; cores: number }[];
  /** The CPU points' values already in time order (a whole window given at once, see `addWindow`). */
  ordered?: number[];
}

/** The window's CPU values in time order (a stable sort: points of the same time stay in the order added). */
function coresInOrder(acc: Accumulator<Sample>): number[] {
  return acc.ordered ?? acc.cpuWindow.sort((a, b) => a.timeMs - b.timeMs).map((point) => point.cores);
}

export class SnapshotBuilder {
  private readonly hosts = new Map<string, Accumulator<HostSample>>();
  private readonly vms = new Map<string, Accumulator<VmSample>>();
  private readonly events: LbvmEvent[] = [];

  /** A sample of the window: its CPU point, and the newest one per host or VM is kept whole. */
  addSample(sample: Sample): void {
    this.addCpuPoint(sample.kind, sample.kind === 'host' ? sample.host : sample.vm, sample.timeMs, sample.cpuUsedCores);
    this.addLatest(sample);
  }

  /** A CPU point alone (a store that reads CPU points and newest samples apart, see readDigest). */
  addCpuPoint(kind: Sample['kind'], name: string, timeMs: number, cores: number): void {
    const map: Map<string, Accumulator<Sample>> = kind === 'host' ? this.hosts : this.vms;
    const current = map.get(name);
    if (current) current.cpuWindow.push({ timeMs, cores });
    else map.set(name, { cpuWindow: [{ timeMs, cores }] });
  }

  /** A full sample that only competes for newest (its CPU point is added apart). */
  addLatest(sample: Sample): void {
    const map: Map<string, Accumulator<Sample>> = sample.kind === 'host' ? this.hosts : this.vms;
    const name = sample.kind === 'host' ? sample.host : sample.vm;
    const current = map.get(name);
    if (!current) map.set(name, { latest: sample, cpuWindow: [] });
    else if (!current.latest || sample.timeMs >= current.latest.timeMs) current.latest = sample;
  }

  /**
   * A host's or VM's whole window at once: its newest sample and its CPU values in time order (the
   * monitor's in-memory window, src/monitor/window.ts). Replaces anything added for it before.
   */
  addWindow(kind: Sample['kind'], name: string, latest: Sample, orderedCores: number[]): void {
    const map: Map<string, Accumulator<Sample>> = kind === 'host' ? this.hosts : this.vms;
    map.set(name, { latest, cpuWindow: [], ordered: orderedCores });
  }

  addEvent(event: LbvmEvent): void {
    if (event.type === 'migration.finished' || event.type === 'migration.failed') this.events.push(event);
  }

  build(inputs: SnapshotInputs): Snapshot {
    const staleAfterMs = inputs.staleAfterIntervals * inputs.intervalMs;
    const hostNames = new Set([
      ...[...this.hosts].filter(([, acc]) => acc.latest).map(([name]) => name),
      ...Object.keys(inputs.configuredHosts),
    ]);
    const hosts: HostState[] = [];
    const hostLatest = new Map<string, number>();
    for (const name of [...hostNames].sort()) {
      const accumulated = this.hosts.get(name);
      const seen = accumulated?.latest ? (accumulated as Required<Accumulator<HostSample>>) : undefined;
      const configured = inputs.configuredHosts[name];
      const lastSampleMs = seen ? seen.latest.timeMs : null;
      if (lastSampleMs !== null) hostLatest.set(name, lastSampleMs);
      const stale = lastSampleMs === null || inputs.nowMs - lastSampleMs > staleAfterMs;
      hosts.push({
        name,
        cpuCores: configured?.cpuCores ?? seen?.latest.cpuCores ?? 0,
        memBytes: configured?.memBytes ?? seen?.latest.memBytes ?? 0,
        cpuUsedWindowCores: seen ? coresInOrder(seen) : [],
        memUsedBytes: seen?.latest.memUsedBytes ?? 0,
        status: stale ? 'stale' : 'up',
        maintenance: inputs.maintenance.has(name),
        lastSampleMs,
        diskBytesPerSec: seen
          ? (seen.latest.diskReadBytesPerSec ?? 0) + (seen.latest.diskWriteBytesPerSec ?? 0)
          : undefined,
        netBytesPerSec: seen ? (seen.latest.netRxBytesPerSec ?? 0) + (seen.latest.netTxBytesPerSec ?? 0) : undefined,
      });
    }

    const history = summariseMigrations(this.events, inputs);
    const vms: VmState[] = [];
    for (const [name, acc] of [...this.vms.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const latest = acc.latest;
      if (!latest) continue;
      const moved = history.get(name);
      let host = latest.host;
      if (moved?.lastFinished && moved.lastFinished.timeMs > latest.timeMs && moved.lastFinished.to)
        host = moved.lastFinished.to;
      else {
        // Not in its host's newest round: the VM is gone (unless the host itself went silent).
        const hostNewest = hostLatest.get(latest.host);
        const hostStale = hostNewest === undefined || inputs.nowMs - hostNewest > staleAfterMs;
        if (!hostStale && hostNewest !== undefined && latest.timeMs < hostNewest - inputs.intervalMs / 2) continue;
      }
      vms.push({
        name,
        host,
        vcpus: latest.vcpus,
        memBytes: latest.memBytes,
        cpuUsedWindowCores: coresInOrder(acc),
        memUsedBytes: latest.memUsedBytes,
        memDirtyBytesPerSec: latest.memDirtyBytesPerSec ?? 0,
        ...(latest.localDiskBytes ? { localDiskBytes: latest.localDiskBytes } : {}),
        diskBytesPerSec: (latest.diskReadBytesPerSec ?? 0) + (latest.diskWriteBytesPerSec ?? 0),
        netBytesPerSec: (latest.netRxBytesPerSec ?? 0) + (latest.netTxBytesPerSec ?? 0),
        tags: latest.tags ?? [],
        lastMoveMs: moved?.lastFinished?.timeMs,
        previousHost: moved?.lastFinished?.from,
        quarantinedUntilMs: moved?.quarantinedUntilMs,
        ...(latest.busy ? { busy: latest.busy } : {}),
        ...(latest.haState ? { haState: latest.haState } : {}),
      });
    }

    const names = vms.map((vm) => vm.name);
    const configured = typeof inputs.rules === 'function' ? inputs.rules(names) : inputs.rules;
    const rules = mergeRules(configured, rulesFromTags(vms));
    return {
      nowMs: inputs.nowMs,
      // Seeded from the round's time, so a plan can be replayed from the same inputs.
      seed: Math.floor(inputs.nowMs / Math.max(1, inputs.intervalMs)) >>> 0,
      hosts,
      vms,
      rules,
      inFlight: inputs.inFlight,
    };
  }
}

interface MigrationHistory {
  lastFinished?: LbvmEvent;
  quarantinedUntilMs?: number;
}

/** Last finished move per VM, and quarantine after `quarantineAfterFailures` failures in a row. */
function summariseMigrations(events: LbvmEvent[], inputs: SnapshotInputs): Map<string, MigrationHistory> {
  const byVm = new Map<string, LbvmEvent[]>();
  for (const event of events) {
    if (!event.vm) continue;
    const list = byVm.get(event.vm) ?? [];
    list.push(event);
    byVm.set(event.vm, list);
  }
  const result = new Map<string, MigrationHistory>();
  for (const [vm, list] of byVm) {
    list.sort((a, b) => a.timeMs - b.timeMs);
    const history: MigrationHistory = {};
    let failuresInRow = 0;
    let lastFailureMs = 0;
    for (const event of list) {
      if (event.type === 'migration.finished') {
        history.lastFinished = event;
        failuresInRow = 0;
      } else {
        failuresInRow++;
        lastFailureMs = event.timeMs;
      }
    }
    if (failuresInRow >= inputs.quarantineAfterFailures && lastFailureMs + inputs.quarantineMs > inputs.nowMs) {
      history.quarantinedUntilMs = lastFailureMs + inputs.quarantineMs;
    }
    result.set(vm, history);
  }
  return result;
}

/**
 * Rules read from VM tags, for clusters where placement intent lives with the VM:
 *   lbvm.affinity=G / lbvm.affinity.soft=G            VMs with the same G share a host
 *   lbvm.anti-affinity=G / lbvm.anti-affinity.soft=G  VMs with the same G never (soft: preferably not) share a host
 *   lbvm.pin=h1,h2 / lbvm.prefer=h1,h2                the VM must (should) run on one of these hosts
 *   lbvm.ignore                                       the balancer never moves the VM
 */
export function rulesFromTags(vms: Pick<VmState, 'name' | 'tags'>[]): Rules {
  const groups = new Map<string, { kind: 'affinity' | 'anti-affinity'; hard: boolean; vms: string[] }>();
  const rules: Rules = { groups: [], pins: [], ignoredVms: [] };
  for (const vm of vms) {
    for (const tag of vm.tags) {
      const [key, value = ''] = splitTag(tag);
      const group = key.match(/^lbvm\.(affinity|anti-affinity)(\.soft)?$/);
      if (group && value) {
        const kind = group[1] as 'affinity' | 'anti-affinity';
        const hard = !group[2];
        const id = `tag:${kind}${hard ? '' : '.soft'}=${value}`;
        const entry = groups.get(id) ?? { kind, hard, vms: [] };
        entry.vms.push(vm.name);
        groups.set(id, entry);
      } else if ((key === 'lbvm.pin' || key === 'lbvm.prefer') && value) {
        rules.pins.push({
          name: `tag:${key}=${value}`,
          vm: vm.name,
          hosts: value.split(',').filter(Boolean),
          hard: key === 'lbvm.pin',
        });
      } else if (key === 'lbvm.ignore' && value !== 'false') {
        rules.ignoredVms.push(vm.name);
      }
    }
  }
  for (const [name, entry] of groups) if (entry.vms.length >= 2) rules.groups.push({ name, ...entry });
  return rules;
}

function splitTag(tag: string): [string, string?] {
  const index = tag.indexOf('=');
  return index < 0 ? [tag] : [tag.slice(0, index), tag.slice(index + 1)];
}

/** Config rules plus tag rules. */
export function mergeRules(configRules: Rules, tagRules: Rules): Rules {
  return {
    groups: [...configRules.groups, ...tagRules.groups],
    pins: [...configRules.pins, ...tagRules.pins],
    ignoredVms: [...new Set([...configRules.ignoredVms, ...tagRules.ignoredVms])].sort(),
  };
}
