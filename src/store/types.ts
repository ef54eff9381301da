/**
 * The `SampleStore` contract: what collectors write and what the monitor and `lbm` read. Two
 * backends implement it (`files.ts`, `influx.ts`); `openStore(url)` in `index.ts` picks one.
 * Only model types cross it: samples in, samples out, events in, events out.
 */
import type { LbvmEvent, Sample } from '../model/index.ts';

export interface SampleWindowQuery {
  /** Inclusive bounds, epoch ms, on each sample's measurement time. */
  fromMs: number;
  toMs: number;
  /** Only these hosts (by name). All hosts when absent. */
  hosts?: string[];
  /** Only host samples, only VM samples, or both (default). */
  kinds?: Sample['kind'][];
  /** "Now" for the future-dated check (default: the clock). Samples later than now + the tolerance are skipped. */
  nowMs?: number;
}

/** What a reader skipped, counted by reason; `examples` name file:line (files) or series and time (influx). */
export interface SkipReport {
  skipped: number;
  byReason: Record<string, number>;
  examples: string[];
}

/**
 * A window of samples, streamed: iterate it once. Samples arrive grouped by host (files) or by
 * time slice (influx); within a host file in the order they were written. Not globally sorted.
 * `skips` is complete once the iteration has ended. `batches()` gives the same samples a batch at
 * a time (the way to read a large window: one promise per batch, not per sample).
 */
export interface SampleStream extends AsyncIterable<Sample> {
  readonly skips: SkipReport;
  batches(): AsyncIterable<Sample[]>;
}

/** One CPU measurement of a host (`name` = host) or a VM (`name` = VM, on `host`) in a window. */
export interface CpuPoint {
  kind: Sample['kind'];
  name: string;
  host: string;
  timeMs: number;
  cores: number;
}

export interface WindowDigest {
  /** The newest valid sample of each series (host, or VM on a host) in the window. */
  latest: Sample[];
  /** Every valid CPU point of the window, of the same hosts and VMs. */
  cpu: CpuPoint[];
  skips: SkipReport;
}

export interface WriteReport {
  /** Items the store accepted. */
  written: number;
  /** Items refused as invalid (by our own checks or InfluxDB's 400) and set aside, never retried. */
  rejected: number;
  /** One line per reason, e.g. "2 points beyond retention policy". */
  rejectedReasons: string[];
}

export interface SampleStore {
  /** `files` or `influx`. */
  readonly kind: 'files' | 'influx';
  /** The store URL with any password replaced by ***: safe to log. */
  readonly displayUrl: string;
  /**
   * Writes samples. Throws `StoreWriteFailed` (a StoreUnavailable) when the store cannot take them;
   * its `unwritten` lists, in their original order, exactly the samples that were not stored, so
   * the caller can spool them without duplicating the rest.
   */
  writeSamples(samples: readonly Sample[]): Promise<WriteReport>;
  /** Writes events (migrations, pauses, maintenance). Same failure contract as `writeSamples`. */
  writeEvents(events: readonly LbvmEvent[]): Promise<WriteReport>;
  /** Streams the valid samples of a time window; bad ones are skipped and reported, never thrown. */
  readSamples(query: SampleWindowQuery): SampleStream;
  /**
   * What a snapshot needs of a window, where a backend can read it cheaper than every sample whole:
   * each host's and VM's CPU points, and its newest full sample. InfluxDB stores every field apart,
   * so reading one field of the window and the last row of each series costs a fraction of
   * `SELECT *`. Backends without a cheaper way leave it out; callers then use `readSamples`.
   */
  readDigest?(query: SampleWindowQuery): Promise<WindowDigest>;
  /**
   * A reader that keeps its place between reads of a sliding window, so the monitor reads only what
   * arrived since its last round (see `WindowReader`). One per monitor; stores without one are read whole.
   */
  openWindowReader?(options: WindowReaderOptions): WindowReader;
  /**
   * The time of the newest sample of each host seen since `sinceMs` (default: the retention period),
   * so the monitor can tell a silent host (unknown) from an idle one.
   */
  lastSampleTimes(options?: { sinceMs?: number; nowMs?: number }): Promise<Map<string, number>>;
  /** Events with fromMs <= timeMs <= toMs, oldest first. */
  readEvents(query: { fromMs: number; toMs: number }): Promise<LbvmEvent[]>;
  /** Deletes what is older than the retention (files); InfluxDB expires data by its retention policy. */
  prune(nowMs?: number): Promise<{ removed: number }>;
  close(): Promise<void>;
}

export const EMPTY_WRITE: WriteReport = Object.freeze({ written: 0, rejected: 0, rejectedReasons: [] }) as WriteReport;

/**
 * Where a `WindowReader` puts what it reads: the monitor's in-memory window (src/monitor/window.ts).
 * Series are a host's samples, or a VM's samples on one host.
 */
export interface WindowSink {
  /** Forget everything: the whole window follows. */
  clear(): void;
  /** Forget these hosts' series (the host's own and every VM's on it): their whole windows follow. */
  clearHosts(hosts: ReadonlySet<string>): void;
  /** A whole valid sample: its CPU point, and a candidate for its series' newest sample. */
  sample(sample: Sample): void;
  /** A CPU point alone (a digest read, where the newest sample of the series comes apart through `latest`). */
  cpu(point: CpuPoint): void;
  /** A series' newest sample alone (its CPU point comes through `cpu`). */
  latest(sample: Sample): void;
}

export interface WindowReaderOptions {
  /**
   * How long after its measurement a sample may reach the store and still be read by the next
   * incremental read without anything else (InfluxDB re-reads this much of the past every read;
   * samples stored later are announced by their writer, see influx.ts). Default 60 s.
   */
  overlapMs?: number;
}

/** What one `WindowReader.read` did. */
export interface WindowRead {
  /** The whole window was read (the sink was cleared first). */
  full: boolean;
  /** Why the whole window, or some hosts' windows, were read again ('start', 'file ... was replaced', ...). */
  reasons: string[];
  /** Hosts whose whole windows were read again (late samples, bad rows), when not a full read. */
  rereadHosts: string[];
  /** Samples and points handed to the sink. */
  items: number;
  skips: SkipReport;
  /**
   * How an incremental read took what was new, where a store has more than one way (InfluxDB: hosts
   * whose VMs came from packed rows, lbvm_round, and hosts read series by series: a collector that
   * writes no packed row).
   */
  paths?: { packedHosts: number; seriesHosts: number };
}

/**
 * Reads a sliding window into a sink, keeping its place between reads: the first read (or one asked
 * `full`) reads the whole window, later ones only what the store took since the previous one. A
 * reader that cannot tell exactly what arrived (a file replaced, late samples of too many hosts)
 * reads the whole window again and says why. After a read that threw, the next read is whole.
 */
export interface WindowReader {
  /**
   * True when a series holds one point per time (InfluxDB: the same series and time is the same
   * point, and incremental reads overlap); false when every stored copy counts (files: a line
   * written twice is read twice by a whole read too).
   */
  readonly uniqueTimes: boolean;
  read(query: SampleWindowQuery & { full?: boolean; reason?: string }, sink: WindowSink): Promise<WindowRead>;
}
