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
import { IncrementalWindow, type WindowReadReport } from './window.ts';

export interface ClusterSources {
  config: LbvmConfig;
  store: SampleStore;
  redis: Redis;
  queue: MigrationQueue;
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
}

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

export async function readCluster(
  sources: ClusterSources,
  nowMs: number,
  window?: IncrementalWindow,
): Promise<ClusterView> {
  const { config, store, redis, queue } = sources;
  const prefix = config.redis.prefix;
  const historyMs = Math.max(config.limits.cooldown, config.limits.quarantine, config.monitor.window);
  const [pause, maintenance, inFlight, stored] = await Promise.all([
    readPause(redis, prefix),
    readMaintenance(redis, prefix),
    queue.inFlight(),
    // Stream ids begin with the ms time the event was added, so this reads the history window only.
    queue.events.read({ after: `${Math.max(0, nowMs - historyMs)}-0`, count: 100_000 }),
  ]);
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
  };
}

/** The sample window as the config describes it: a whole read after a gap of more than two intervals. */
export function windowFor(config: LbvmConfig, store: SampleStore): IncrementalWindow {
  return new IncrementalWindow(store, { maxGapMs: 2.5 * config.monitor.interval });
}
