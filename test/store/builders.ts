/** Sample builders with overrides, and a window reader, for store, collector and fault tests. */
import type { HostSample, Sample, Snapshot, VmSample } from '../../src/model/index.ts';
import { SnapshotBuilder } from '../../src/monitor/snapshot.ts';
import { openStore, type SampleStore, type SampleWindowQuery, type SkipReport } from '../../src/store/index.ts';

export function hostSample(host: string, timeMs: number, overrides: Partial<HostSample> = {}): HostSample {
  return {
    kind: 'host',
    host,
    timeMs,
    cpuCores: 8,
    cpuUsedCores: 2.5,
    memBytes: 32 * 2 ** 30,
    memUsedBytes: 12 * 2 ** 30,
    ...overrides,
  };
}

export function vmSample(vm: string, host: string, timeMs: number, overrides: Partial<VmSample> = {}): VmSample {
  return {
    kind: 'vm',
    vm,
    host,
    timeMs,
    vcpus: 2,
    cpuUsedCores: 0.5,
    memBytes: 2 ** 30,
    memUsedBytes: 2 ** 29,
    state: 'running',
    ...overrides,
  };
}

/**
 * Every sample of a window of `store` (or of the store at a URL), with what the reader skipped. The
 * default window is the last hour; "now" defaults to the window's end when it is given, else the clock.
 */
export async function readWindow(
  store: SampleStore | string,
  query: Partial<SampleWindowQuery> = {},
): Promise<{ samples: Sample[]; skips: SkipReport }> {
  const opened = typeof store === 'string' ? openStore(store) : store;
  const toMs = query.toMs ?? Date.now();
  const stream = opened.readSamples({
    fromMs: toMs - 3_600_000,
    ...query,
    toMs,
    nowMs: query.nowMs ?? (query.toMs === undefined ? undefined : toMs),
  });
  const samples: Sample[] = [];
  for await (const sample of stream) samples.push(sample);
  return { samples, skips: stream.skips };
}

/** The snapshot a read of a window gives, with plain inputs (no rules, controls or jobs): for read tests. */
export function snapshotOf(fill: (builder: SnapshotBuilder) => void, nowMs: number, intervalMs = 60_000): Snapshot {
  const builder = new SnapshotBuilder();
  fill(builder);
  return builder.build({
    nowMs,
    intervalMs,
    staleAfterIntervals: 3,
    configuredHosts: {},
    maintenance: new Set(),
    rules: { groups: [], pins: [], ignoredVms: [] },
    inFlight: [],
    quarantineAfterFailures: 2,
    quarantineMs: 3_600_000,
  });
}
