/**
 * What `lbm report` tells: built from plain samples and events (pure), rendered as text, JSON or
 * one self-contained HTML page. Times are epoch ms; shares are fractions of capacity.
 */
import { foundAlreadyMoved, type HostSample, type LbvmEvent, type Sample } from '../../model/index.ts';
import { stepEnergyJoules, type PowerCurve } from '../../../policies/power.ts';

export interface SeriesPoint {
  timeMs: number;
  value: number;
}

export interface HostSeries {
  host: string;
  cpuShare: SeriesPoint[];
  /** Memory measured in use. */
  memShare: SeriesPoint[];
  /** Memory committed to the VMs on the host (their configured sizes): what the policies judge. */
  memCommittedShare: SeriesPoint[];
}

export interface MigrationRow {
  vm: string;
  from: string;
  to: string;
  requestedBy: string;
  reason: string;
  mode: string;
  startMs: number | null;
  endMs: number;
  /**
   * `already-there`: the job found its VM on the destination (an earlier attempt of it moved the VM and
   * was reported failed, e.g. after losing its lock): a confirmation, not a migration, with no time.
   */
  outcome: 'finished' | 'already-there' | 'failed' | 'dropped';
  totalMs: number | null;
  downtimeMs: number | null;
  error?: string;
}

export interface OverloadPeriod {
  host: string;
  fromMs: number;
  toMs: number;
  peakShare: number;
  /** What was above the watermark at the peak: CPU use, or memory committed to VMs. */
  resource: 'cpu' | 'memory committed';
}

/** Energy the hosts with a power curve used over the period, estimated from their CPU samples. */
export interface EnergyEstimate {
  kWh: number;
  byHost: { host: string; kWh: number; meanWatts: number }[];
  /** Hosts that reported but have no curve (power.hosts, power.default): left out of the estimate. */
  hostsWithoutCurve: string[];
}

export interface ReportData {
  fromMs: number;
  toMs: number;
  hosts: HostSeries[];
  /** Only when hosts' power curves are configured. */
  energy?: EnergyEstimate;
  imbalance: SeriesPoint[];
  migrations: MigrationRow[];
  overloads: OverloadPeriod[];
  totals: {
    migrations: number;
    /** Jobs that found their VM already moved (`already-there` rows): not counted in `migrations`. */
    alreadyThere: number;
    failed: number;
    dropped: number;
    medianDowntimeMs: number | null;
    overloadedHostMinutes: number;
    overloadedHostSeconds: number;
  };
}

export interface ReportInputs {
  fromMs: number;
  toMs: number;
  samples: Iterable<Sample>;
  events: LbvmEvent[];
  /** A host above this share of CPU, or of memory committed to VMs, counts as overloaded (as the overload policy judges). */
  highWatermark: number;
  /** Each host's power curve, or null; with none at all, no energy estimate. */
  powerCurve?: (host: string) => PowerCurve | null;
  /** A sample stands for at most this long after it (a silent host is not assumed on). */
  maxSampleGapMs?: number;
}

/**
 * Joules from one host's samples (sorted by time): the mean of the power at two consecutive samples
 * times the time between them (power.ts), a gap longer than `maxGapMs` counting only `maxGapMs`;
 * and the seconds so counted.
 */
function hostJoules(
  list: readonly HostSample[],
  curve: PowerCurve,
  maxGapMs: number,
): { joules: number; seconds: number } {
  let joules = 0;
  let counted = 0;
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1]!;
    const b = list[i]!;
    const share = (s: HostSample) => (s.cpuCores > 0 ? s.cpuUsedCores / s.cpuCores : 0);
    const seconds = Math.min(b.timeMs - a.timeMs, maxGapMs) / 1000;
    joules += stepEnergyJoules(curve, share(a), share(b), seconds);
    counted += seconds;
  }
  return { joules, seconds: counted };
}

export function buildReport(inputs: ReportInputs): ReportData {
  const byHost = new Map<string, HostSample[]>();
  for (const sample of inputs.samples) {
    if (sample.kind !== 'host') continue;
    const list = byHost.get(sample.host) ?? [];
    list.push(sample);
    byHost.set(sample.host, list);
  }
  const hosts: HostSeries[] = [];
  const overloads: OverloadPeriod[] = [];
  for (const [host, list] of [...byHost.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    list.sort((a, b) => a.timeMs - b.timeMs);
    const series: HostSeries = { host, cpuShare: [], memShare: [], memCommittedShare: [] };
    let open: OverloadPeriod | null = null;
    for (const s of list) {
      const cpu = s.cpuCores > 0 ? s.cpuUsedCores / s.cpuCores : 0;
      // Samples from before collectors reported it have no committed memory: judged on CPU alone.
      const mem = s.memBytes > 0 ? (s.memCommittedBytes ?? 0) / s.memBytes : 0;
      series.cpuShare.push({ timeMs: s.timeMs, value: cpu });
      series.memShare.push({ timeMs: s.timeMs, value: s.memBytes > 0 ? s.memUsedBytes / s.memBytes : 0 });
      series.memCommittedShare.push({ timeMs: s.timeMs, value: mem });
      const share = Math.max(cpu, mem);
      if (share > inputs.highWatermark) {
        if (!open)
          open = {
            host,
            fromMs: s.timeMs,
            toMs: s.timeMs,
            peakShare: share,
            resource: cpu >= mem ? 'cpu' : 'memory committed',
          };
        open.toMs = s.timeMs;
        if (share > open.peakShare) {
          open.peakShare = share;
          open.resource = cpu >= mem ? 'cpu' : 'memory committed';
        }
      } else if (open) {
        open.toMs = s.timeMs;
        overloads.push(open);
        open = null;
      }
    }
    if (open) overloads.push(open);
    hosts.push(series);
  }
  let energy: EnergyEstimate | undefined;
  const curves = [...byHost.keys()].map((host) => [host, inputs.powerCurve?.(host) ?? null] as const);
  if (curves.some(([, curve]) => curve)) {
    const byHostEnergy = curves
      .filter(([, curve]) => curve)
      .map(([host, curve]) => {
        const list = byHost.get(host)!;
        const { joules, seconds } = hostJoules(list, curve!, inputs.maxSampleGapMs ?? Number.POSITIVE_INFINITY);
        // Mean draw over the time counted (a silent stretch beyond the staleness limit is not a low draw).
        return { host, kWh: joules / 3.6e6, meanWatts: seconds > 0 ? joules / seconds : 0 };
      })
      .sort((a, b) => (a.host < b.host ? -1 : 1));
    energy = {
      kWh: byHostEnergy.reduce((sum, h) => sum + h.kWh, 0),
      byHost: byHostEnergy,
      hostsWithoutCurve: curves.filter(([, curve]) => !curve).map(([host]) => host),
    };
  }

  const events = [...inputs.events].sort((a, b) => a.timeMs - b.timeMs);
  const imbalance: SeriesPoint[] = [];
  const started = new Map<string, LbvmEvent>();
  const migrations: MigrationRow[] = [];
  for (const event of events) {
    if (event.type === 'monitor.round') {
      const value = event.detail?.imbalanceBefore;
      if (typeof value === 'number') imbalance.push({ timeMs: event.timeMs, value });
    } else if (event.type === 'migration.started' && event.jobId) {
      started.set(event.jobId, event);
    } else if (
      event.type === 'migration.finished' ||
      event.type === 'migration.failed' ||
      event.type === 'migration.dropped'
    ) {
      const start = event.jobId ? started.get(event.jobId) : undefined;
      const alreadyThere = foundAlreadyMoved(event);
      migrations.push({
        vm: event.vm ?? '?',
        from: event.from ?? '?',
        to: event.to ?? '?',
        requestedBy: event.requestedBy ?? start?.requestedBy ?? 'monitor',
        reason: event.reason ?? start?.reason ?? '',
        mode: event.mode ?? start?.mode ?? 'live',
        startMs: start?.timeMs ?? null,
        endMs: event.timeMs,
        outcome: alreadyThere
          ? 'already-there'
          : event.type === 'migration.finished'
            ? 'finished'
            : event.type === 'migration.failed'
              ? 'failed'
              : 'dropped',
        totalMs: alreadyThere ? null : (event.totalMs ?? (start ? event.timeMs - start.timeMs : null)),
        downtimeMs: event.downtimeMs ?? null,
        error: event.error,
      });
    }
  }
  const downtimes = migrations
    .filter((m) => m.outcome === 'finished' && m.downtimeMs !== null)
    .map((m) => m.downtimeMs!)
    .sort((a, b) => a - b);
  return {
    fromMs: inputs.fromMs,
    toMs: inputs.toMs,
    hosts,
    ...(energy ? { energy } : {}),
    imbalance,
    migrations,
    overloads,
    totals: {
      migrations: migrations.filter((m) => m.outcome === 'finished').length,
      alreadyThere: migrations.filter((m) => m.outcome === 'already-there').length,
      failed: migrations.filter((m) => m.outcome === 'failed').length,
      dropped: migrations.filter((m) => m.outcome === 'dropped').length,
      medianDowntimeMs: downtimes.length ? downtimes[Math.floor((downtimes.length - 1) / 2)]! : null,
      // Rounded up: an overload of 8 seconds is not "0 overloaded host-minutes".
      overloadedHostMinutes: Math.ceil(overloads.reduce((sum, o) => sum + (o.toMs - o.fromMs), 0) / 60_000),
      overloadedHostSeconds: Math.round(overloads.reduce((sum, o) => sum + (o.toMs - o.fromMs), 0) / 1000),
    },
  };
}
