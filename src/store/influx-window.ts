/**
 * The InfluxDB store's incremental window reader. InfluxDB cannot say when a point was stored, only
 * the time it carries, so each read after the first takes every row whose time is after the previous
 * read's end less an overlap (`overlapMs`, 60 s by default): a sample stored up to that long after its
 * measurement (a collector's round in flight while the monitor read, clocks a little apart) is read
 * the next round; the same point read twice is the same point. Samples stored later than
 * LATE_AFTER_MS after their time (a late round, a spool replayed after an outage) are announced by
 * their writer in `lbvm_late` (influx.ts): the reader reads those announcements and reads the named
 * hosts' whole windows again, or the whole window when they are many. A row that fails the checks
 * also has its host read again whole, so the window keeps the digest's rules for bad rows.
 *
 * What is new is read as host rows (one series per host, one query), then the VMs of the packed rounds
 * (`lbvm_round`, one row per host and round: a minute of 1,000 hosts × 30 VMs is 1,000 rows, where
 * reading the 30,000 VM series' newest minute cost InfluxDB seconds). The overlap holds two rounds of
 * each host, one of them taken already: the text of the rounds dated after the previous read is
 * fetched beside the overlap's keys (host and exact time, a small field each), and the text of an
 * older round only when no earlier read took it (stored after that read), so a round is fetched and
 * decoded once (3.5 MB a minute at 1,000 hosts, instead of 7 MB). A host with a round but no packed
 * row for it (a collector of before, which writes series only) has its VMs read series by series, as
 * before; `paths` in the read's report counts the hosts each way. Whole reads stay series by series:
 * two hours of packed rows are 120,000 rows of 9 KB, a gigabyte of JSON, where the digest reads one
 * field (cpuUsedCores) and each series' newest row.
 *
 * The overlap must exceed LATE_AFTER_MS plus the clock difference between collectors and the
 * monitor: with the defaults, 30 s of clock difference.
 */
import type { Logger } from '../log.ts';
import type { Sample } from '../model/index.ts';
import type {
  SampleWindowQuery,
  SkipReport,
  WindowRead,
  WindowReader,
  WindowReaderOptions,
  WindowSink,
} from './types.ts';
import { HostCrossCheck } from './validate.ts';

export const DEFAULT_OVERLAP_MS = 60_000;
/** More hosts announced late than this share of the hosts just read (and more than a few): read everything. */
const LATE_SHARE_FOR_FULL_READ = 0.1;
const LATE_HOSTS_ALWAYS_REREAD = 20;

/** One announcement of samples stored late: which hosts, the samples' time span, and when it was stored. */
export interface LateWrite {
  key: string;
  storedAtMs: number;
  hosts: string[];
  fromMs: number;
  toMs: number;
}

/** What the reader needs of the store (InfluxStore). */
export interface InfluxWindowSource {
  readonly displayUrl: string;
  readonly log: Logger | undefined;
  digestInto(query: SampleWindowQuery, sink: Pick<WindowSink, 'cpu' | 'latest'>): Promise<SkipReport>;
  rowsInto(
    kind: Sample['kind'],
    query: SampleWindowQuery,
    crossCheck: HostCrossCheck,
    onSample: (sample: Sample) => void,
    onBad: (host: string) => void,
    oneQuery?: boolean,
  ): Promise<number>;
  lateWrites(sinceMs: number): Promise<LateWrite[]>;
  packedKeys(query: SampleWindowQuery): Promise<PackedKey[]>;
  packedRows(query: SampleWindowQuery, fromNs: bigint): Promise<InfluxSeries[]>;
  packedInto(
    series: InfluxSeries[],
    nowMs: number,
    crossCheck: HostCrossCheck,
    onSample: (sample: Sample) => void,
    onBad: (host: string) => void,
    seen?: ReadonlySet<string>,
  ): { good: Set<string>; taken: Set<string> };
}

/** A host's round at `timeMs` (ms): how the host rows' rounds and the packed rounds taken are matched. */
export function hostRound(host: string, timeMs: number): string {
  return `${host}\n${timeMs}`;
}

/** One packed round (lbvm_round row) without its text: its host, its exact time, and both as its key. */
export interface PackedKey {
  host: string;
  /** `host\ntime`, the time as InfluxDB's RFC 3339 text (exact to the nanosecond). */
  key: string;
  ns: bigint;
  /** The round's time, ms (the rows' measurement time). */
  timeMs: number;
}

/** One series of an InfluxDB answer. */
export interface InfluxSeries {
  columns: string[];
  values: unknown[][];
  tags?: Record<string, string>;
}

export class InfluxWindowReader implements WindowReader {
  /** The packed rounds the previous reads took whole (their keys): in the overlap, neither fetched nor decoded again. */
  private seenPacked: ReadonlySet<string> = new Set();
  readonly uniqueTimes = true;
  private readonly overlapMs: number;
  /** The end of the previous read; null when the next read must be whole. */
  private previousToMs: number | null = null;
  /** Announcements already acted on (they stay within the overlap for a read or two), by key. */
  private readonly seenLate = new Map<string, number>();
  private crossCheck = new HostCrossCheck();

  constructor(
    private readonly source: InfluxWindowSource,
    options: WindowReaderOptions = {},
  ) {
    this.overlapMs = options.overlapMs ?? DEFAULT_OVERLAP_MS;
  }

  async read(query: SampleWindowQuery & { full?: boolean; reason?: string }, sink: WindowSink): Promise<WindowRead> {
    const previousToMs = this.previousToMs;
    // A read that throws leaves the reader at a whole read.
    this.previousToMs = null;
    const reasons: string[] = [];
    const sinceMs = previousToMs === null ? -Infinity : previousToMs - this.overlapMs;
    let full = query.full === true || previousToMs === null;
    if (full) reasons.push(query.reason ?? 'start');
    else if (sinceMs < query.fromMs) {
      full = true;
      reasons.push('the previous read ended before the window begins');
    }
    let items = 0;
    const counting: Pick<WindowSink, 'cpu' | 'latest'> = {
      cpu: (point) => {
        items++;
        sink.cpu(point);
      },
      latest: (sample) => {
        items++;
        sink.latest(sample);
      },
    };
    const wholeRead = async (): Promise<WindowRead> => {
      this.seenPacked = new Set();
      sink.clear();
      this.crossCheck = new HostCrossCheck();
      const skips = await this.source.digestInto(query, counting);
      this.previousToMs = query.toMs;
      return { full: true, reasons, rereadHosts: [], items, skips };
    };
    if (full) return wholeRead();

    // The late announcements are asked for first, as before, but not waited for: the reads below go
    // out beside that query (one round trip less in the round's time).
    const lateAnswer = this.source.lateWrites(sinceMs);
    lateAnswer.catch(() => {}); // awaited below

    const badHosts = new Set<string>();
    const hostsRead = new Set<string>();
    const since = { fromMs: Math.floor(sinceMs) + 1, toMs: query.toMs, nowMs: query.nowMs };
    const take = (sample: Sample) => {
      hostsRead.add(sample.host);
      items++;
      sink.sample(sample);
    };
    const bad = (host: string) => badHosts.add(host);
    // Host rows first (every VM row is checked against its host's size), then the VMs of the packed
    // rounds (lbvm_round, one row per host and round), then, series by series, the VMs of hosts with
    // a round that has no packed row: a collector that does not write them.
    const hostRounds = new Map<string, Set<number>>();
    // The text of the rounds dated after the previous read (none of them taken yet), and beside it
    // which rounds the overlap holds (a small field each); then the text of the overlap's rounds no
    // earlier read took (stored after that read), from the oldest of them. A round an earlier read
    // took is not fetched again.
    const seenBefore = this.seenPacked;
    const boundaryNs = BigInt(Math.floor(previousToMs!) + 1) * 1_000_000n;
    const newRows = this.source.packedRows(since, boundaryNs);
    newRows.catch(() => {}); // awaited below
    const packedAnswer = this.source.packedKeys(since).then(async (keys) => {
      let fromNs: bigint | null = null;
      for (const { key, ns } of keys)
        if (ns < boundaryNs && !seenBefore.has(key) && (fromNs === null || ns < fromNs)) fromNs = ns;
      const stragglers =
        fromNs === null ? [] : await this.source.packedRows({ ...since, toMs: Math.floor(previousToMs!) }, fromNs);
      return { keys, rows: [...stragglers, ...(await newRows)] };
    });
    packedAnswer.catch(() => {}); // awaited below; this only keeps it quiet should the host read throw first
    await this.source.rowsInto(
      'host',
      since,
      this.crossCheck,
      (sample) => {
        take(sample);
        let times = hostRounds.get(sample.host);
        if (!times) hostRounds.set(sample.host, (times = new Set()));
        times.add(sample.timeMs);
      },
      bad,
      // One row per host and round since the previous read (a gap longer than a few rounds reads whole).
      true,
    );
    const { keys, rows } = await packedAnswer;
    // The rounds taken: those fetched now, and those an earlier read took. A round the keys name but
    // neither holds (stored between the two queries) counts as not packed: its host's VMs are read series
    // by series this time, its text the next time.
    const { good, taken: packed } = this.source.packedInto(
      rows,
      query.nowMs ?? Date.now(),
      this.crossCheck,
      take,
      bad,
      seenBefore,
    );
    for (const { host, key, timeMs } of keys)
      if (seenBefore.has(key)) {
        packed.add(hostRound(host, timeMs));
        good.add(key);
      }
    this.seenPacked = good;
    const unpacked: string[] = [];
    for (const [host, times] of hostRounds)
      if ([...times].some((timeMs) => !packed.has(hostRound(host, timeMs)))) unpacked.push(host);
    if (unpacked.length > 0)
      await this.source.rowsInto('vm', { ...since, hosts: unpacked }, this.crossCheck, take, bad);
    // Hosts whose late samples fall before what this read takes again anyway.
    const lateHosts = new Set<string>();
    for (const write of await lateAnswer) {
      if (this.seenLate.has(write.key)) continue;
      this.seenLate.set(write.key, write.storedAtMs);
      if (write.toMs < query.fromMs || write.fromMs > sinceMs) continue;
      for (const host of write.hosts) lateHosts.add(host);
    }
    for (const [key, storedAtMs] of this.seenLate) if (storedAtMs <= sinceMs) this.seenLate.delete(key);
    const paths = { packedHosts: hostRounds.size - unpacked.length, seriesHosts: unpacked.length };
    if (lateHosts.size > Math.max(LATE_HOSTS_ALWAYS_REREAD, hostsRead.size * LATE_SHARE_FOR_FULL_READ)) {
      reasons.push(`samples of ${hosts(lateHosts.size)} were stored late (lbvm_late)`);
      return wholeRead();
    }
    const reread = new Set([...lateHosts, ...badHosts]);
    let skips: SkipReport = { skipped: 0, byReason: {}, examples: [] };
    if (reread.size > 0) {
      this.seenPacked = new Set();
      if (lateHosts.size > 0) reasons.push(`samples of ${hosts(lateHosts.size)} were stored late (lbvm_late)`);
      if (badHosts.size > 0) reasons.push(`bad rows from ${hosts(badHosts.size)}`);
      sink.clearHosts(reread);
      skips = await this.source.digestInto({ ...query, hosts: [...reread] }, counting);
    }
    this.previousToMs = query.toMs;
    return { full: false, reasons, rereadHosts: [...reread].sort(), items, skips, paths };
  }
}

function hosts(count: number): string {
  return `${count} host${count === 1 ? '' : 's'}`;
}
