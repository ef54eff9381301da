/**
 * Reads what the monitor believes now: the sample window, migration history, controls and the jobs
 * in flight, built into a Snapshot. The monitor's rounds, `lbm plan`, `lbm status` and `lbm migrate`
 * all call this one function, so the operator sees exactly what the monitor sees.
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { LbvmConfig } from '../config/schema.ts';
import { rulesFromConfig } from '../config/policy-settings.ts';
import type { InFlightMigration, LbvmEvent, Snapshot } from '../model/index.ts';
import type { MigrationQueue } from '../queue/queue.ts';
import type { SampleStore } from '../store/types.ts';
import { readMaintenance, readPause, type MaintenanceFlag, type PauseState } from './control.ts';
import { SnapshotBuilder } from './snapshot.ts';
import {
  readPublished,
  vmTotalsOf,
  type PublishedPlan,
  type PublishedSnapshot,
  type VmForecast,
  type VmTotals,
  type WindowChoice,
} from './published.ts';
import { IncrementalWindow, type WindowReadReport } from './window.ts';

export interface ClusterSources {
  config: LbvmConfig;
  store: SampleStore;
  redis: Redis;
  /** The queue's in-flight jobs and event log (lbm passes both without BullMQ when nothing is in flight). */
  queue: Pick<MigrationQueue, 'inFlight' | 'events'>;
}

export interface ClusterView {
  snapshot: Snapshot;
  /** Samples the store skipped as invalid while reading the window. */
  samplesSkipped: number;
  pause: PauseState;
  maintenance: Map<string, MaintenanceFlag>;
  inFlight: InFlightMigration[];
  /** Migration events (started, finished, failed, dropped) of the history window, oldest first. */
  migrationEvents: LbvmEvent[];
  /** How the sample window was read (whole or what was new, and why), and the time it and the snapshot took. */
  read: WindowReadReport & { snapshotMs: number };
  /** Where the snapshot came from: the store, read now, or the leader's published snapshot of a round (published.ts). */
  source: ViewSource;
  /** The VMs' count and committed memory per host (when only the published hosts were read, `snapshot.vms` is empty). */
  vmTotals: VmTotals;
  /** With a published snapshot read whole: the round's plan and what it was planned from. */
  publishedPlan?: PublishedPlan;
  /** The published VMs were read with some CPU windows left empty (WindowChoice): not a snapshot to plan on. */
  windowsLeftOut?: boolean;
  /** With a published snapshot read whole: each VM's latest CPU use and forecast, as the monitor made them. */
  publishedForecast?: VmForecast;
}

export type ViewSource =
  | { kind: 'store'; reason: string }
  | { kind: 'published'; roundId: string; monitor: string; timeMs: number; ageMs: number };

/** A VM left alone after repeated failed migrations, and until when. */
export interface QuarantinedVm {
  vm: string;
  host: string;
  untilMs: number;
}

/** The VMs quarantined at the snapshot's time (the round record and `lbm plan` name them). */
export function quarantinedVms(snapshot: Snapshot): QuarantinedVm[] {
  return snapshot.vms
    .filter((vm) => vm.quarantinedUntilMs !== undefined && vm.quarantinedUntilMs > snapshot.nowMs)
    .map((vm) => ({ vm: vm.name, host: vm.host, untilMs: vm.quarantinedUntilMs! }));
}

/** One note line for a round or a plan, or null when no VM is quarantined. */
export function quarantineNote(quarantined: QuarantinedVm[], failures: number): string | null {
  if (quarantined.length === 0) return null;
  const names = quarantined.slice(0, 10).map((entry) => `${entry.vm} until ${new Date(entry.untilMs).toISOString()}`);
  return (
    `quarantined after ${failures} failed migrations in a row (limits.quarantine), not moved: ` +
    `${names.join(', ')}${quarantined.length > 10 ? `, and ${quarantined.length - 10} more` : ''}`
  );
}

/**
 * `window`: the monitor's window kept between rounds; without it the window is read whole. `published`
 * (`lbm`): take the leader's published snapshot when there is a usable one (see published.ts), with
 * pause, maintenance, the migrations in flight and the rules as they are now.
 */
export async function readCluster(
  sources: ClusterSources,
  nowMs: number,
  window?: IncrementalWindow,
  options: { published?: boolean; parts?: 'all' | 'hosts'; windowsOf?: WindowChoice } = {},
): Promise<ClusterView> {
  const { config, store, redis, queue } = sources;
  const prefix = config.redis.prefix;
  const historyMs = Math.max(config.limits.cooldown, config.limits.quarantine, config.monitor.window);
  const readStarted = performance.now();
  const [pause, maintenance, inFlight, published] = await Promise.all([
    readPause(redis, prefix),
    readMaintenance(redis, prefix),
    queue.inFlight(),
    options.published
      ? readPublished(redis, prefix, options.parts, options.windowsOf).catch((error: Error) => error)
      : Promise.resolve(null),
  ]);
  let source: ViewSource = { kind: 'store', reason: 'the monitor reads the store' };
  if (options.published) {
    const reason = unusable(published, config, store.displayUrl, nowMs);
    if (reason) source = { kind: 'store', reason };
    else {
      const usable = published as PublishedSnapshot;
      const { snapshot, vmTotals } = usable;
      // Rules of time (quarantine, cooldown, staleness) are judged now, as the next round will judge them;
      // the seed stays the round's.
      const staleAfterMs = config.monitor.staleAfterIntervals * config.monitor.interval;
      return {
        snapshot: {
          ...snapshot,
          nowMs,
          hosts: snapshot.hosts.map((host) => ({
            ...host,
            maintenance: maintenance.has(host.name),
            status:
              host.status === 'up' && host.lastSampleMs !== null && nowMs - host.lastSampleMs > staleAfterMs
                ? 'stale'
                : host.status,
          })),
          rules: rulesFromConfig(
            config,
            snapshot.vms.map((vm) => vm.name),
          ),
          inFlight,
        },
        samplesSkipped: usable.samplesSkipped,
        pause,
        maintenance,
        inFlight,
        // Not read: only a snapshot built here needs them.
        migrationEvents: [],
        read: {
          full: false,
          reasons: [`published by ${usable.monitor}, round ${usable.roundId}`],
          rereadHosts: [],
          items: 0,
          skips: { skipped: usable.samplesSkipped, byReason: {}, examples: [] },
          readMs: performance.now() - readStarted,
          snapshotMs: 0,
        },
        source: {
          kind: 'published',
          roundId: usable.roundId,
          monitor: usable.monitor,
          timeMs: snapshot.nowMs,
          ageMs: Math.max(0, nowMs - snapshot.nowMs),
        },
        vmTotals,
        ...(usable.plan ? { publishedPlan: usable.plan } : {}),
        ...(usable.forecast ? { publishedForecast: usable.forecast } : {}),
        ...(usable.windowsLeftOut ? { windowsLeftOut: true } : {}),
      };
    }
  }
  // Stream ids begin with the ms time the event was added, so this reads the history window only.
  const stored = await queue.events.read({ after: `${Math.max(0, nowMs - historyMs)}-0`, count: 100_000 });
  const migrationEvents = stored.map((entry) => entry.event).filter((event) => event.type.startsWith('migration.'));
  const builder = new SnapshotBuilder();
  // The monitor's window reads what is new since its previous round; anyone else reads the window whole.
  const sampleWindow = window ?? windowFor(config, store);
  const read = await sampleWindow.read({ fromMs: nowMs - config.monitor.window, toMs: nowMs, nowMs });
  const snapshotStarted = performance.now();
  sampleWindow.fill(builder);
  for (const event of migrationEvents) builder.addEvent(event);
  const snapshot = builder.build({
    nowMs,
    intervalMs: config.monitor.interval,
    staleAfterIntervals: config.monitor.staleAfterIntervals,
    configuredHosts: Object.fromEntries(
      Object.entries(config.hosts).map(([name, host]) => [name, { cpuCores: host.cpuCores, memBytes: host.memBytes }]),
    ),
    maintenance: new Set(maintenance.keys()),
    rules: (vmNames) => rulesFromConfig(config, vmNames),
    inFlight,
    quarantineAfterFailures: config.limits.quarantineAfterFailures,
    quarantineMs: config.limits.quarantine,
  });
  return {
    snapshot,
    samplesSkipped: read.skips.skipped,
    pause,
    maintenance,
    inFlight,
    migrationEvents,
    read: { ...read, snapshotMs: performance.now() - snapshotStarted },
    source,
    vmTotals: vmTotalsOf(snapshot.vms),
  };
}

/** Why the published snapshot cannot stand for the store now, or null when it can. */
function unusable(
  published: PublishedSnapshot | Error | null,
  config: LbvmConfig,
  storeUrl: string,
  nowMs: number,
): string | null {
  const maxAgeMs = config.monitor.staleAfterIntervals * config.monitor.interval;
  // One an older or newer monitor wrote in another form: read the store rather than fail.
  if (published instanceof Error) return `the published snapshot cannot be read: ${published.message}`;
  if (!published) return 'no monitor has published one (none leads, or none has finished a round)';
  if (published.store !== storeUrl) return `the published snapshot was read from ${published.store}`;
  if (published.windowMs !== config.monitor.window)
    return `the published snapshot has a ${published.windowMs / 60_000}-minute window`;
  if (nowMs - published.snapshot.nowMs > maxAgeMs)
    return `the published snapshot is ${Math.round((nowMs - published.snapshot.nowMs) / 1000)} s old`;
  return null;
}

/** The sample window as the config describes it: a whole read after a gap of more than two intervals. */
export function windowFor(config: LbvmConfig, store: SampleStore): IncrementalWindow {
  return new IncrementalWindow(store, { maxGapMs: 2.5 * config.monitor.interval });
}
