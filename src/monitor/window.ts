/**
 * The sample window the leader keeps in memory between rounds, so a round reads only what the store
 * took since the previous one (the store's `WindowReader`) instead of the whole `monitor.window`.
 *
 * Compact: one series per host and per VM on a host, each two typed arrays (times, CPU cores) in
 * time order, plus the series' newest sample whole; 16 bytes a point, no object per sample. Points
 * older than the window are dropped at the start of each read; samples dated after the window's end
 * (a host whose clock is ahead) wait until the window reaches them.
 *
 * What it gives the snapshot is what a whole read of the window gives (test/monitor/window.test.ts
 * proves it on both stores): the same points in the same order, the same newest sample per series.
 * A whole read happens on start, on taking the lease, after a gap between reads, after a read that
 * failed, and whenever the store's reader cannot tell exactly what arrived (it says why).
 */
import type { Sample } from '../model/index.ts';
import type { CpuPoint, SampleStore, SampleWindowQuery, WindowRead, WindowReader, WindowSink } from '../store/types.ts';
import type { SnapshotBuilder } from './snapshot.ts';

/** One series' points in time order, in typed arrays that grow by half and reuse the room evicted points leave. */
class Series {
  times = new Float64Array(8);
  cores = new Float64Array(8);
  start = 0;
  end = 0;
  /** The newest valid sample of the series (latest wins a tie, as in a whole read). */
  newest: Sample | undefined;

  constructor(readonly host: string) {}

  get length(): number {
    return this.end - this.start;
  }

  /**
   * Adds a point. `unique`: a point at a time already held replaces it (InfluxDB: the same point read
   * again); else it goes after the points of the same time (files: a second copy counts, in file order).
   */
  add(timeMs: number, cores: number, unique: boolean): void {
    const last = this.end - 1;
    if (this.end === this.start || timeMs > this.times[last]!) return this.insertAt(this.end, timeMs, cores);
    if (timeMs === this.times[last]) {
      if (unique) this.cores[last] = cores;
      else this.insertAt(this.end, timeMs, cores);
      return;
    }
    // Late: the first index after every point at or before timeMs.
    let low = this.start;
    let high = this.end;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.times[middle]! <= timeMs) low = middle + 1;
      else high = middle;
    }
    if (unique && low > this.start && this.times[low - 1] === timeMs) this.cores[low - 1] = cores;
    else this.insertAt(low, timeMs, cores);
  }

  private insertAt(index: number, timeMs: number, cores: number): void {
    if (this.end === this.times.length) {
      if (this.start > 0) {
        // Reuse the room of evicted points before growing.
        this.times.copyWithin(0, this.start, this.end);
        this.cores.copyWithin(0, this.start, this.end);
        index -= this.start;
        this.end -= this.start;
        this.start = 0;
      }
      if (this.end === this.times.length) {
        const size = Math.ceil(this.times.length * 1.5) + 8;
        const times = new Float64Array(size);
        const cores = new Float64Array(size);
        times.set(this.times);
        cores.set(this.cores);
        this.times = times;
        this.cores = cores;
      }
    }
    if (index < this.end) {
      this.times.copyWithin(index + 1, index, this.end);
      this.cores.copyWithin(index + 1, index, this.end);
    }
    this.times[index] = timeMs;
    this.cores[index] = cores;
    this.end++;
  }

  offerNewest(sample: Sample): void {
    if (!this.newest || sample.timeMs >= this.newest.timeMs) this.newest = sample;
  }

  /** Drops points before `fromMs`; true when nothing is left. */
  evict(fromMs: number): boolean {
    while (this.start < this.end && this.times[this.start]! < fromMs) this.start++;
    if (this.newest && this.newest.timeMs < fromMs) this.newest = undefined;
    return this.start === this.end && !this.newest;
  }

  /** Bytes held in its arrays. */
  get bytes(): number {
    return this.times.byteLength + this.cores.byteLength;
  }
}

/** The window in memory: the sink a store's `WindowReader` fills, and the source of the snapshot's samples. */
export class LiveWindow implements WindowSink {
  private readonly hosts = new Map<string, Series>();
  /** VM name → host → series (a VM that moved has one series per host it ran on in the window). */
  private readonly vms = new Map<string, Map<string, Series>>();
  /** Host → the VMs with a series on it, to forget a host's series at once. */
  private readonly vmsOnHost = new Map<string, Set<string>>();
  /** Samples dated after the window's end, in the order read, until the window reaches them. */
  private later: Sample[] = [];
  private fromMs = -Infinity;
  private toMs = Infinity;

  constructor(private readonly uniqueTimes: boolean) {}

  /** Moves the window to [fromMs, toMs] before a read: drops older points, admits samples now inside. */
  moveTo(fromMs: number, toMs: number): void {
    this.fromMs = fromMs;
    this.toMs = toMs;
    for (const [name, series] of this.hosts) if (series.evict(fromMs)) this.hosts.delete(name);
    for (const [name, byHost] of this.vms) {
      for (const [host, series] of byHost) {
        if (!series.evict(fromMs)) continue;
        byHost.delete(host);
        this.vmsOnHost.get(host)?.delete(name);
      }
      if (byHost.size === 0) this.vms.delete(name);
    }
    if (this.later.length > 0) {
      const waiting = this.later;
      this.later = [];
      for (const sample of waiting) this.sample(sample);
    }
  }

  clear(): void {
    this.hosts.clear();
    this.vms.clear();
    this.vmsOnHost.clear();
    this.later = [];
  }

  clearHosts(hosts: ReadonlySet<string>): void {
    for (const host of hosts) {
      this.hosts.delete(host);
      for (const vm of this.vmsOnHost.get(host) ?? []) {
        const byHost = this.vms.get(vm);
        byHost?.delete(host);
        if (byHost?.size === 0) this.vms.delete(vm);
      }
      this.vmsOnHost.delete(host);
    }
    this.later = this.later.filter((sample) => !hosts.has(sample.host));
  }

  sample(sample: Sample): void {
    if (sample.timeMs > this.toMs) {
      this.later.push(sample);
      return;
    }
    if (sample.timeMs < this.fromMs) return;
    const series = this.series(sample.kind, sample.kind === 'host' ? sample.host : sample.vm, sample.host);
    series.add(sample.timeMs, sample.cpuUsedCores, this.uniqueTimes);
    series.offerNewest(sample);
  }

  cpu(point: CpuPoint): void {
    if (point.timeMs < this.fromMs || point.timeMs > this.toMs) return;
    this.series(point.kind, point.name, point.host).add(point.timeMs, point.cores, this.uniqueTimes);
  }

  latest(sample: Sample): void {
    if (sample.timeMs < this.fromMs || sample.timeMs > this.toMs) return;
    this.series(sample.kind, sample.kind === 'host' ? sample.host : sample.vm, sample.host).offerNewest(sample);
  }

  private series(kind: Sample['kind'], name: string, host: string): Series {
    if (kind === 'host') {
      let series = this.hosts.get(name);
      if (!series) this.hosts.set(name, (series = new Series(host)));
      return series;
    }
    let byHost = this.vms.get(name);
    if (!byHost) this.vms.set(name, (byHost = new Map()));
    let series = byHost.get(host);
    if (!series) {
      byHost.set(host, (series = new Series(host)));
      let onHost = this.vmsOnHost.get(host);
      if (!onHost) this.vmsOnHost.set(host, (onHost = new Set()));
      onHost.add(name);
    }
    return series;
  }

  /**
   * Hands every series to the snapshot builder as a whole read would: a host's or VM's CPU points in
   * time order (a VM's series on several hosts merged, ties in host-name order, as a whole read meets
   * them), and its newest sample (on a tie, the one on the host that sorts last, as read last).
   */
  fill(builder: SnapshotBuilder): void {
    for (const [name, series] of this.hosts) {
      if (series.newest) builder.addWindow('host', name, series.newest, pointsOf(series));
    }
    for (const [name, byHost] of this.vms) {
      if (byHost.size === 1) {
        const series = byHost.values().next().value!;
        if (series.newest) builder.addWindow('vm', name, series.newest, pointsOf(series));
        continue;
      }
      const all = [...byHost.values()].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
      let newest: Sample | undefined;
      for (const series of all)
        if (series.newest && (!newest || series.newest.timeMs >= newest.timeMs)) newest = series.newest;
      if (newest) builder.addWindow('vm', name, newest, mergePoints(all));
    }
  }

  /** What the window holds: series, points, samples waiting, and bytes in point arrays. */
  stats(): { hostSeries: number; vmSeries: number; points: number; waiting: number; pointBytes: number } {
    let points = 0;
    let pointBytes = 0;
    let vmSeries = 0;
    for (const series of this.hosts.values()) {
      points += series.length;
      pointBytes += series.bytes;
    }
    for (const byHost of this.vms.values()) {
      for (const series of byHost.values()) {
        vmSeries++;
        points += series.length;
        pointBytes += series.bytes;
      }
    }
    return { hostSeries: this.hosts.size, vmSeries, points, waiting: this.later.length, pointBytes };
  }
}

function pointsOf(series: Series): number[] {
  // A plain loop: Array.from over a typed array goes through its iterator, several times slower (31,000 series a round).
  const points: number[] = [];
  for (let index = series.start; index < series.end; index++) points.push(series.cores[index]!);
  return points;
}

/** Several series' points in one time order; on equal times, the series earlier in `all` first. */
function mergePoints(all: Series[]): number[] {
  const at = all.map((series) => series.start);
  const out: number[] = [];
  for (;;) {
    let best = -1;
    for (let index = 0; index < all.length; index++) {
      const series = all[index]!;
      if (at[index]! >= series.end) continue;
      if (best === -1 || series.times[at[index]!]! < all[best]!.times[at[best]!]!) best = index;
    }
    if (best === -1) return out;
    out.push(all[best]!.cores[at[best]!]!);
    at[best]!++;
  }
}

export interface WindowReadReport extends WindowRead {
  /** Time the read took, in ms. */
  readMs: number;
}

/**
 * The leader's window across rounds: a store's `WindowReader` and the `LiveWindow` it fills, with
 * the rules for when to read everything again (start, the lease taken, a gap, a failed read).
 * Stores without a window reader are read whole every time into a fresh window.
 */
export class IncrementalWindow {
  private reader: WindowReader | null = null;
  private live: LiveWindow | null = null;
  private previousToMs: number | null = null;
  private wholeReason: string | null = 'start';

  constructor(
    private readonly store: SampleStore,
    private readonly options: {
      /** More than this between two reads' ends is a gap: the next read is whole. */
      maxGapMs: number;
      overlapMs?: number;
    },
  ) {}

  /** The next read reads the whole window, for this reason. */
  invalidate(reason: string): void {
    this.wholeReason ??= reason;
  }

  /** Forgets the window (a standby keeps nothing); the next read is whole. */
  drop(reason: string): void {
    this.live = null;
    this.reader = null;
    this.previousToMs = null;
    this.wholeReason = reason;
  }

  /** Reads [fromMs, toMs]: what is new since the previous read, or all of it when it must. */
  async read(query: SampleWindowQuery): Promise<WindowReadReport> {
    const started = performance.now();
    this.reader ??= this.store.openWindowReader?.({ overlapMs: this.options.overlapMs }) ?? wholeReader(this.store);
    this.live ??= new LiveWindow(this.reader.uniqueTimes);
    let reason = this.wholeReason;
    if (reason === null && this.previousToMs !== null) {
      const gapMs = query.toMs - this.previousToMs;
      if (gapMs > this.options.maxGapMs) reason = `${Math.round(gapMs / 1000)} s since the previous read`;
      else if (gapMs < 0) reason = 'the clock went back';
    }
    this.wholeReason = 'the previous read failed';
    this.live.moveTo(query.fromMs, query.toMs);
    const result = await this.reader.read({ ...query, full: reason !== null, reason: reason ?? undefined }, this.live);
    this.wholeReason = null;
    this.previousToMs = query.toMs;
    return { ...result, readMs: performance.now() - started };
  }

  /** Gives the window to a snapshot builder (after `read`). */
  fill(builder: SnapshotBuilder): void {
    this.live?.fill(builder);
  }

  stats() {
    return this.live?.stats() ?? { hostSeries: 0, vmSeries: 0, points: 0, waiting: 0, pointBytes: 0 };
  }
}

/** For a store without a window reader: every read is whole, through `readSamples`. */
function wholeReader(store: SampleStore): WindowReader {
  return {
    uniqueTimes: false,
    async read(query, sink) {
      sink.clear();
      const stream = store.readSamples(query);
      let items = 0;
      for await (const batch of stream.batches()) {
        for (const sample of batch) sink.sample(sample);
        items += batch.length;
      }
      return {
        full: true,
        reasons: [query.reason ?? 'the store reads whole windows only'],
        rereadHosts: [],
        items,
        skips: stream.skips,
      };
    },
  };
}
