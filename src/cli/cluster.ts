/**
 * Opening the cluster for `lbm`: the same readCluster() the monitor uses, plus helpers to name a
 * host or VM the operator typed (with the closest known names when it is unknown).
 */
import type { Command } from 'commander';
import { standardDeviation } from 'simple-statistics';
import { ExitError } from '../errors.ts';
import type { HostState, VmState } from '../model/index.ts';
import type { WindowChoice } from '../monitor/published.ts';
import { readCluster, type ClusterView } from '../monitor/read.ts';
import { closestNames } from '../util/closest.ts';
import type { CliContext } from './context.ts';

/**
 * The cluster as the monitor sees it: its published snapshot when there is a usable one (`fromStore`
 * false, the default for views), else the sample window read from the store now.
 */
export async function openCluster(
  context: CliContext,
  nowMs = Date.now(),
  options: { fromStore?: boolean; parts?: 'all' | 'hosts'; windowsOf?: WindowChoice } = {},
): Promise<ClusterView> {
  const redis = await context.redis();
  // What readCluster asks of the queue, without loading BullMQ when nothing is in flight.
  const queue = { inFlight: () => context.inFlight(), events: await context.events() };
  return readCluster({ config: context.config, store: context.store(), redis, queue }, nowMs, undefined, {
    published: !options.fromStore,
    parts: options.parts,
    windowsOf: options.windowsOf,
  });
}

/** `--from-store`: read the sample window now instead of the monitor's published snapshot. */
export function withSource(command: Command): Command {
  return command.option(
    '--from-store',
    "read the sample window from the store now, not the monitor's published snapshot",
  );
}

/** One line saying where the snapshot came from and how old it is. */
export function sourceLine(view: ClusterView, nowMs: number): string {
  const source = view.source;
  return source.kind === 'published'
    ? `snapshot: round ${source.roundId} of monitor ${source.monitor}, ${ago(source.timeMs, nowMs)}`
    : `snapshot: read from the store now (${source.reason})`;
}

/** Exit code 5: the operator named something that does not exist. */
export class UnknownName extends ExitError {
  constructor(message: string) {
    super(message, 5);
    this.name = 'UnknownName';
  }
}

function unknown(kind: string, name: string, known: string[], where: string): UnknownName {
  const close = closestNames(name, known);
  return new UnknownName(
    `unknown ${kind} ${JSON.stringify(name)}${close.length ? `; did you mean ${close.map((n) => JSON.stringify(n)).join(', ')}?` : ''} ` +
      `(${known.length} ${kind}s ${where})`,
  );
}

export function findVm(view: ClusterView, name: string): VmState {
  const vm = view.snapshot.vms.find((candidate) => candidate.name === name);
  if (!vm)
    throw unknown(
      'VM',
      name,
      view.snapshot.vms.map((v) => v.name),
      'seen in the sample window; `lbm vms` lists them',
    );
  return vm;
}

export function findHost(view: ClusterView, name: string): HostState {
  const host = view.snapshot.hosts.find((candidate) => candidate.name === name);
  if (!host)
    throw unknown(
      'host',
      name,
      view.snapshot.hosts.map((h) => h.name),
      'known from samples and config; `lbm hosts` lists them',
    );
  return host;
}

/** A host's latest measured CPU use in cores (the newest entry of its window). */
export function hostCpuUsed(host: HostState): number {
  return host.cpuUsedWindowCores.length ? host.cpuUsedWindowCores[host.cpuUsedWindowCores.length - 1]! : 0;
}

/**
 * A host as `lbm status` and `lbm hosts` list it: its size, its measured use, and its VMs with the
 * memory committed to them (their configured sizes: the memory the policies judge, a destination
 * must have a VM's whole size free), shown beside the memory measured in use.
 */
export function hostRow(view: ClusterView, h: HostState) {
  const { vms, memCommittedBytes } = view.vmTotals.byHost.get(h.name) ?? { vms: 0, memCommittedBytes: 0 };
  return {
    host: h.name,
    cpuCores: h.cpuCores,
    cpuUsedCores: hostCpuUsed(h),
    memBytes: h.memBytes,
    memUsedBytes: h.memUsedBytes,
    memCommittedBytes,
    vms,
    status: h.status === 'up' ? 'up' : 'unknown',
    maintenance: h.maintenance,
    lastSampleMs: h.lastSampleMs,
  };
}

/** Population standard deviation of the hosts' measured CPU share: the imbalance `lbm` shows. */
export function measuredImbalance(hosts: HostState[]): number {
  const live = hosts.filter((h) => h.status === 'up' && h.cpuCores > 0);
  if (live.length === 0) return 0;
  return standardDeviation(live.map((h) => hostCpuUsed(h) / h.cpuCores));
}

/** "12s ago", "3m ago", "2h ago". */
export function ago(timeMs: number | null | undefined, nowMs: number): string {
  if (timeMs === null || timeMs === undefined) return 'never';
  const seconds = Math.max(0, Math.round((nowMs - timeMs) / 1000));
  if (seconds < 90) return `${seconds}s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}
