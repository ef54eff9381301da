/**
 * The `influx://[user:pass@]host:port/db` backend (`influxs://` for HTTPS), InfluxDB 1.x through the
 * npm `influx` client. Schema (also in the README, "Samples and the store"):
 *
 *   retention policy lbvm_raw (DEFAULT, duration store.retention): raw samples and events
 *     host_sample  tags: host        fields: cpuCores, cpuUsedCores, cpuStealCores, memBytes, memUsedBytes,
 *                                    memAvailableBytes, load1, load5, load15, diskReadBytesPerSec,
 *                                    diskWriteBytesPerSec, netRxBytesPerSec, netTxBytesPerSec, vmCount,
 *                                    memCommittedBytes (floats)
 *     vm_sample    tags: host, vm    fields: vcpus, cpuUsedCores, memBytes, memUsedBytes, memDirtyBytesPerSec,
 *                                    disk/net *BytesPerSec (floats), state, busy, haState (strings, the
 *                                    last two only while set), tags (string, JSON list)
 *     lbvm_event   tags: type        fields: json (the whole event), host, vm (strings)
 *     lbvm_round   tags: host        fields: vms (string: the host's VM rows of one round as JSON columns,
 *                                    {"c": [field names], "r": [[values]]}), vmCount. One point per host and round (ROUND_MEASUREMENT): the
 *                                    monitor's incremental read takes a minute of 1,000 hosts as 1,000
 *                                    rows instead of 30,000 series. The per-series rows stay (Grafana,
 *                                    `lbm logs`, the continuous queries, whole reads).
 *   retention policy lbvm_5m (duration store.downsampleRetention): continuous queries lbvm_host_5m and
 *     lbvm_vm_5m write mean(*) per 5 minutes into host_sample_5m and vm_sample_5m (fields mean_<field>).
 *
 * Tag values are written with `%`, `\` and control characters as %XX (lone surrogates as %uXXXX),
 * so no name can break the line protocol; readers decode them. Timestamps are the measurement time
 * in ms; the same sample written twice is the same point (InfluxDB overwrites it), so a replay cannot
 * duplicate. Events get a sub-millisecond offset from a hash of their content for the same reason.
 *
 * Known trap of the client: with a single host it does not retry and buffers nothing, and after a
 * connection error it disables the host for a backoff period (answering "No host available" with
 * a timer that keeps the process alive). We turn that off (no retries, no disabling) and rely on the
 * spool instead, which is durable.
 */
import type { createHash as CreateHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { IPoint } from 'influx';
import { StoreUnavailable } from '../errors.ts';
import { describeCertificateError } from '../util/tls.ts';
import type { Logger } from '../log.ts';
import type { HostSample, LbvmEvent, Sample, VmSample } from '../model/index.ts';
import { HOST_NUMERIC_FIELDS, VM_NUMERIC_FIELDS, VM_TEXT_FIELDS } from '../model/index.ts';
import { StoreAuthFailed, StoreWriteFailed } from './errors.ts';
import { hostRound, InfluxWindowReader, type LateWrite, type PackedKey } from './influx-window.ts';
import { sampleStream, warnSkips } from './stream.ts';
import type {
  CpuPoint,
  SampleStore,
  SampleStream,
  SampleWindowQuery,
  SkipReport,
  WindowDigest,
  WindowReader,
  WindowReaderOptions,
  WindowSink,
  WriteReport,
} from './types.ts';
import {
  DEFAULT_FUTURE_TOLERANCE_MS,
  HostCrossCheck,
  SkipCounter,
  maxVmCores,
  screenSamples,
  validateEvent,
  validateSample,
} from './validate.ts';

// Loaded on first use: a collector writing to a files store does not pay for the client at start.
const require = createRequire(import.meta.url);
type InfluxModule = typeof import('influx');
let loaded: InfluxModule | undefined;
const influxModule = (): InfluxModule => (loaded ??= require('influx') as InfluxModule);
const escape = {
  quoted: (value: string) => influxModule().escape.quoted(value),
  stringLit: (value: string) => influxModule().escape.stringLit(value),
};

/** One series of an InfluxDB answer (`tags` when the query had GROUP BY). */
interface Series {
  columns: string[];
  values: unknown[][];
  tags?: Record<string, string>;
}

export const RAW_POLICY = 'lbvm_raw';
export const DOWNSAMPLED_POLICY = 'lbvm_5m';
export const HOST_MEASUREMENT = 'host_sample';
export const VM_MEASUREMENT = 'vm_sample';
export const EVENT_MEASUREMENT = 'lbvm_event';
/**
 * Announcements of samples stored long after their measurement time (a late round, a spool replayed
 * after an outage): time = when they were stored, fields `hosts` (a JSON list), `fromMs`, `toMs` (the
 * samples' times) and `samples`. A monitor reading only what is new (influx-window.ts) reads these to
 * learn which hosts' windows to read again: InfluxDB cannot say when a point was stored.
 */
export const LATE_MEASUREMENT = 'lbvm_late';
/**
 * Each host's round, its VM samples packed in one row (a string field `vms`: the rows vm_sample
 * gets as JSON columns, tag `vm` and `time` in ms included), time = the samples' time plus a sub-millisecond
 * offset from a hash of the field, so two writes of parts of one round are two points and the same
 * write replayed is the same point. A round larger than ROUND_ROW_CHARS is cut into several rows.
 * A collector's round (one batch) sends them in the same request as its series rows; a larger write
 * after all its series rows are stored. A host with no VMs gets a row with an empty list: the monitor knows then its
 * collector packs, and that it has no VMs to read series by series.
 */
export const ROUND_MEASUREMENT = 'lbvm_round';
const ROUND_ROW_CHARS = 48_000;
/** A sample stored more than this after its measurement time is announced in lbvm_late. */
export const LATE_AFTER_MS = 30_000;
/** Hosts named in one announcement (InfluxDB string fields hold up to 64 KB). */
const HOSTS_PER_ANNOUNCEMENT = 200;
/** Rows per read query: bounded memory (~100 bytes of JSON a row) with few queries. */
const ROWS_PER_QUERY = 50_000;

export interface InfluxStoreOptions {
  url: URL;
  displayUrl: string;
  retentionMs: number;
  downsampleRetentionMs: number;
  batchSize: number;
  log?: Logger;
  futureToleranceMs?: number;
  requestTimeoutMs?: number;
  /** Announce samples stored long after their time in lbvm_late (default true; off only to load history in bulk). */
  announceLate?: boolean;
  /** The clock that says when samples were stored (tests run a cluster's rounds on their own clock). */
  clock?: () => number;
  /** Also write each host's round packed in one lbvm_round row (default true; false writes as collectors before it did). */
  packRounds?: boolean;
  /** PEM text of the CA that signed InfluxDB's certificate (`tls.ca`), for `influxs://`; none: the system's CAs. */
  ca?: string;
}

/** Never disables the host: the spool, not the client, handles outages. */
const NO_BACKOFF = {
  getDelay: () => 0,
  next() {
    return NO_BACKOFF;
  },
  reset() {
    return NO_BACKOFF;
  },
};

// eslint-disable-next-line no-control-regex
const NEEDS_TAG_ENCODING = /[\u0000-\u001f\u007f%\\\ud800-\udfff]/;

export function encodeTag(value: string): string {
  if (!NEEDS_TAG_ENCODING.test(value)) return value;
  // eslint-disable-next-line no-control-regex
  return value.replace(
    /[\u0000-\u001f\u007f%\\]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g,
    (char) => {
      const code = char.charCodeAt(0);
      return code > 0xff ? `%u${code.toString(16).padStart(4, '0')}` : `%${code.toString(16).padStart(2, '0')}`;
    },
  );
}

export function decodeTag(value: string): string {
  // Most names hold no escape: no regular expression for them (decoded once per row read).
  if (!value.includes('%')) return value;
  return value.replace(
    /%u([0-9a-f]{4})|%([0-9a-f]{2})/g,
    (_match, wide: string | undefined, narrow: string | undefined) =>
      String.fromCharCode(parseInt(wide ?? narrow!, 16)),
  );
}

/** Influx duration literal from ms: 14d -> "336h0m0s" style is not needed; whole hours or "INF". */
function durationLiteral(ms: number): string {
  if (ms <= 0) return 'INF';
  const hours = Math.max(1, Math.ceil(ms / 3_600_000));
  return `${hours}h`;
}

function statusOf(error: unknown): number | undefined {
  return (error as { res?: { statusCode?: number } })?.res?.statusCode;
}

function bodyOf(error: unknown): string {
  const message = (error as Error)?.message ?? String(error);
  return message.replace(/^A \d+ [^:]*error occurred: /, '').trim();
}

export class InfluxStore implements SampleStore {
  readonly kind = 'influx' as const;
  readonly displayUrl: string;
  private readonly client: InstanceType<InfluxModule['InfluxDB']>;
  private readonly database: string;
  private schemaReady: Promise<void> | null = null;

  constructor(private readonly options: InfluxStoreOptions) {
    this.displayUrl = options.displayUrl;
    const url = options.url;
    this.database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    this.client = new (influxModule().InfluxDB)({
      host: url.hostname,
      port: url.port ? Number(url.port) : 8086,
      protocol: url.protocol === 'influxs:' ? 'https' : 'http',
      database: this.database,
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: url.password ? decodeURIComponent(url.password) : undefined,
      pool: { maxRetries: 0, requestTimeout: options.requestTimeoutMs ?? 10_000, backoff: NO_BACKOFF },
      options: options.ca && url.protocol === 'influxs:' ? { ca: options.ca } : undefined,
    });
  }

  /** Where warnings go (the window reader's too). */
  get log(): Logger | undefined {
    return this.options.log;
  }

  /** A StoreUnavailable for `error`, with a message naming the URL (redacted) and, for 401/403, authentication. */
  private failure<T extends Sample | LbvmEvent>(what: string, rawError: unknown, unwritten: T[]): StoreWriteFailed<T> {
    const status = statusOf(rawError);
    // The client's RequestError keeps the request, Authorization header included: never pass it on,
    // where a logger serialising `cause` would print the credentials.
    const error = status
      ? Object.assign(new Error(`${status}: ${bodyOf(rawError)}`), { res: { statusCode: status } })
      : Object.assign(new Error(bodyOf(rawError)), { code: (rawError as NodeJS.ErrnoException)?.code });
    if (status === 401 || status === 403) {
      return new StoreAuthFailed(
        `InfluxDB at ${this.displayUrl} refused authentication (${status}) while ${what}: check the user and password in store.url (LBVM_STORE_URL)` +
          (status === 403 ? ', and that the user may write to the database' : ''),
        unwritten,
        error,
      );
    }
    const certificate = status ? null : describeCertificateError(error);
    if (certificate)
      return new StoreWriteFailed(
        `InfluxDB at ${this.displayUrl}: TLS failed while ${what}: ${certificate}. ` +
          (this.options.ca
            ? 'The CA in tls.ca (LBVM_TLS_CA) did not sign it, or it does not name the address in store.url: ' +
              'sign it with that CA (deploy/certs.sh server NAME ADDRESS...)'
            : 'Give the CA that signed it in tls.ca (LBVM_TLS_CA)'),
        unwritten,
        error,
      );
    const reason = status ? `${status}: ${bodyOf(error)}` : ((error as NodeJS.ErrnoException).code ?? bodyOf(error));
    return new StoreWriteFailed(
      `InfluxDB at ${this.displayUrl} is unavailable while ${what} (${reason})`,
      unwritten,
      error,
    );
  }

  /** Creates the database, the retention policies and the continuous queries once per process. */
  ensureSchema(): Promise<void> {
    this.schemaReady ??= this.createSchema().catch((error) => {
      this.schemaReady = null;
      throw error;
    });
    return this.schemaReady;
  }

  private async createSchema(): Promise<void> {
    const db = this.database;
    const q = (text: string) => this.client.queryRaw(text, { method: 'POST' } as never).then(checkResults);
    try {
      await q(`CREATE DATABASE ${escape.quoted(db)}`);
    } catch (error) {
      // A user with write rights only: the administrator made the database; use it as it is.
      if (statusOf(error) === 403 || /requires admin privilege/i.test(bodyOf(error))) {
        this.options.log?.info(
          { store: this.displayUrl },
          'not an InfluxDB admin: using the existing database, retention policies and continuous queries as they are',
        );
        return;
      }
      throw error;
    }
    const policies = (await this.client.showRetentionPolicies(db)) as unknown as { name: string; duration: string }[];
    const raw = durationLiteral(this.options.retentionMs);
    const long = durationLiteral(this.options.downsampleRetentionMs);
    const verb = (name: string) => (policies.some((policy) => policy.name === name) ? 'ALTER' : 'CREATE');
    await q(
      `${verb(RAW_POLICY)} RETENTION POLICY ${escape.quoted(RAW_POLICY)} ON ${escape.quoted(db)} DURATION ${raw} REPLICATION 1 DEFAULT`,
    );
    await q(
      `${verb(DOWNSAMPLED_POLICY)} RETENTION POLICY ${escape.quoted(DOWNSAMPLED_POLICY)} ON ${escape.quoted(db)} DURATION ${long} REPLICATION 1`,
    );
    const queries = (await this.client.showContinousQueries(db)) as unknown as { name: string }[];
    for (const [name, from, into] of [
      ['lbvm_host_5m', HOST_MEASUREMENT, `${HOST_MEASUREMENT}_5m`],
      ['lbvm_vm_5m', VM_MEASUREMENT, `${VM_MEASUREMENT}_5m`],
    ] as const) {
      if (queries.some((query) => query.name === name)) continue;
      await q(
        `CREATE CONTINUOUS QUERY ${escape.quoted(name)} ON ${escape.quoted(db)} BEGIN ` +
          `SELECT mean(*) INTO ${escape.quoted(db)}.${escape.quoted(DOWNSAMPLED_POLICY)}.${escape.quoted(into)} ` +
          `FROM ${escape.quoted(db)}.${escape.quoted(RAW_POLICY)}.${escape.quoted(from)} GROUP BY time(5m), * END`,
      );
    }
  }

  private toPoint(sample: Sample): IPoint {
    const fields: Record<string, number | string> = {};
    const numeric = sample.kind === 'host' ? HOST_NUMERIC_FIELDS : VM_NUMERIC_FIELDS;
    for (const field of numeric) {
      if (field === 'timeMs') continue;
      const value = (sample as unknown as Record<string, unknown>)[field];
      if (typeof value === 'number') fields[field] = value;
    }
    if (sample.kind === 'vm') {
      if (sample.state) fields.state = sample.state;
      for (const field of VM_TEXT_FIELDS) if (sample[field]) fields[field] = sample[field];
      if (sample.tags && sample.tags.length > 0) fields.tags = JSON.stringify(sample.tags);
      return {
        measurement: VM_MEASUREMENT,
        tags: { host: encodeTag(sample.host), vm: encodeTag(sample.vm) },
        fields,
        timestamp: sample.timeMs,
      };
    }
    return { measurement: HOST_MEASUREMENT, tags: { host: encodeTag(sample.host) }, fields, timestamp: sample.timeMs };
  }

  async writeSamples(samples: readonly Sample[]): Promise<WriteReport> {
    const screened = screenSamples(samples, this.options.log, this.displayUrl);
    // InfluxDB drops points beyond the retention policy, but when a batch also has another problem its
    // answer counts only one of them: count these here, exactly, and do not send them.
    const oldestMs = Date.now() - this.options.retentionMs;
    const valid = screened.valid.filter((sample) => sample.timeMs >= oldestMs);
    const tooOld = screened.valid.length - valid.length;
    const rejected = screened.rejected + tooOld;
    const rejectedReasons = [...screened.rejectedReasons];
    if (tooOld > 0)
      rejectedReasons.push(`${tooOld} points beyond retention policy ${RAW_POLICY} (older than store.retention)`);
    const report: WriteReport = { written: 0, rejected, rejectedReasons };
    if (tooOld > 0) {
      this.options.log?.warn(
        { store: this.displayUrl, rejected: tooOld },
        `set aside ${tooOld} samples older than the retention of ${this.displayUrl} (beyond retention policy ${RAW_POLICY}); not written, not retried`,
      );
    }
    if (valid.length === 0) return report;
    try {
      await this.ensureSchema();
    } catch (error) {
      throw this.failure('creating the database', error, valid);
    }
    // Two batches in flight: the client builds one while InfluxDB ingests the other. Points are keyed
    // by series and time, so their arrival order does not matter; on a failure, exactly the batches
    // not confirmed go back to the caller, in their original order.
    const batches: Sample[][] = [];
    for (let start = 0; start < valid.length; start += this.options.batchSize)
      batches.push(valid.slice(start, start + this.options.batchSize));
    const packed = this.options.packRounds === false ? [] : this.roundPoints(valid);
    // A collector's round is one batch: its packed rows go in the same request (nanoseconds, for
    // their offsets), so packing costs no second request. A larger write sends them after every
    // batch is stored, so a packed row never names a sample that is not.
    const together = batches.length === 1 && packed.length > 0;
    const done = new Array<boolean>(batches.length).fill(false);
    let firstError: unknown;
    let next = 0;
    const worker = async () => {
      while (firstError === undefined && next < batches.length) {
        const index = next++;
        const batch = batches[index]!;
        try {
          if (together) {
            const points = batch.map((sample) => ({
              ...this.toPoint(sample),
              timestamp: (BigInt(Math.round(sample.timeMs)) * 1_000_000n).toString(),
            }));
            const written = report.written;
            await this.writeBatch<Sample | IPoint>([...batch, ...packed], [...points, ...packed], 'n', report);
            // What the caller counts is samples; the packed rows repeat them.
            report.written = Math.max(written, report.written - packed.length);
          } else
            await this.writeBatch(
              batch,
              batch.map((sample) => this.toPoint(sample)),
              'ms',
              report,
            );
          done[index] = true;
        } catch (error) {
          firstError ??= error;
        }
      }
    };
    await Promise.all([worker(), worker()]);
    if (firstError !== undefined) {
      throw this.failure('writing samples', firstError, batches.filter((_batch, index) => !done[index]).flat());
    }
    if (packed.length > 0 && !together) {
      try {
        const packedReport: WriteReport = { written: 0, rejected: 0, rejectedReasons: [] };
        for (let start = 0; start < packed.length; start += this.options.batchSize) {
          const batch = packed.slice(start, start + this.options.batchSize);
          await this.writeBatch(batch, batch, 'n', packedReport);
        }
      } catch (error) {
        throw this.failure('writing the packed rounds (lbvm_round)', error, [...valid]);
      }
    }
    // Samples stored long after their time are announced once stored. Until the announcement is, they
    // count as not written: the caller spools them, and writing them again is harmless (same points).
    const storedAtMs = (this.options.clock ?? Date.now)();
    const late = valid.filter((sample) => sample.timeMs < storedAtMs - LATE_AFTER_MS);
    if (late.length > 0 && this.options.announceLate !== false) {
      try {
        await this.announceLate(late, storedAtMs);
      } catch (error) {
        throw this.failure('announcing late samples', error, late);
      }
    }
    if (report.rejected > rejected) {
      this.options.log?.warn(
        { store: this.displayUrl, rejected: report.rejected - rejected, reasons: report.rejectedReasons },
        `InfluxDB refused ${report.rejected - rejected} points (set aside, not retried): ${report.rejectedReasons.slice(-3).join('; ')}`,
      );
    }
    return report;
  }

  /**
   * Writes one batch. A 400 is about the points, not the server: a "partial write" has already stored
   * the good points and dropped the bad ones (counted); another 400 is split in halves until the bad
   * points are isolated and set aside. Anything else (down, 5xx, 401) is thrown for the caller.
   */
  private async writeBatch<T>(items: T[], points: IPoint[], precision: 'ms' | 'n', report: WriteReport): Promise<void> {
    try {
      await this.client.writePoints(points, { precision, retentionPolicy: undefined });
      report.written += points.length;
    } catch (error) {
      if (statusOf(error) === 404 && /database not found/i.test(bodyOf(error))) {
        // Dropped under our feet: make it again, once.
        this.schemaReady = null;
        await this.ensureSchema();
        await this.client.writePoints(points, { precision });
        report.written += points.length;
        return;
      }
      if (statusOf(error) !== 400) throw error;
      const body = bodyOf(error);
      const partial = body.match(/partial write: (.*?) dropped=(\d+)/s);
      if (partial) {
        // Lines InfluxDB could not parse are dropped too, yet not counted in its "dropped=".
        const dropped = Number(partial[2]) + (partial[1]!.match(/unable to parse '/g)?.length ?? 0);
        report.rejected += dropped;
        report.written += points.length - dropped;
        report.rejectedReasons.push(
          `${dropped} points refused by InfluxDB: ${partial[1]!.replace(/^"|"$/g, '').slice(0, 300)}`,
        );
        return;
      }
      if (points.length === 1) {
        report.rejected += 1;
        report.rejectedReasons.push(`1 point refused by InfluxDB: ${body.slice(0, 300)}`);
        return;
      }
      const half = Math.ceil(points.length / 2);
      await this.writeBatch(items.slice(0, half), points.slice(0, half), precision, report);
      await this.writeBatch(items.slice(half), points.slice(half), precision, report);
    }
  }

  /** The lbvm_round points of `samples` (see ROUND_MEASUREMENT): one per host and time, or more when large. */
  private roundPoints(samples: readonly Sample[]): IPoint[] {
    const rounds = new Map<string, { host: string; timeMs: number; rows: Record<string, unknown>[] }>();
    for (const sample of samples) {
      const key = `${sample.host}\n${sample.timeMs}`;
      let round = rounds.get(key);
      if (!round) rounds.set(key, (round = { host: sample.host, timeMs: sample.timeMs, rows: [] }));
      if (sample.kind !== 'vm') continue;
      const point = this.toPoint(sample);
      round.rows.push({ vm: point.tags!.vm, time: sample.timeMs, ...point.fields });
    }
    const points: IPoint[] = [];
    const add = (host: string, timeMs: number, rows: Record<string, unknown>[], vms = packRows(rows)) => {
      points.push({
        measurement: ROUND_MEASUREMENT,
        tags: { host: encodeTag(host) },
        fields: { vms, vmCount: rows.length },
        timestamp: (BigInt(timeMs) * 1_000_000n + BigInt(subMillisecondOffset(vms))).toString(),
      });
    };
    for (const { host, timeMs, rows } of rounds.values()) {
      // One row when the text fits (a host's usual round, packed once); else cut where it would pass
      // ROUND_ROW_CHARS (a VM's row is a few hundred characters).
      const whole = packRows(rows);
      if (whole.length <= ROUND_ROW_CHARS) {
        add(host, timeMs, rows, whole);
        continue;
      }
      const size = Math.max(1, Math.ceil(rows.length / Math.ceil(whole.length / ROUND_ROW_CHARS)));
      for (let start = 0; start < rows.length; start += size) add(host, timeMs, rows.slice(start, start + size));
    }
    return points;
  }

  /**
   * Which packed rounds (lbvm_round) there are with fromMs <= time <= toMs, without their text: a
   * small integer field per row, where their `vms` text is a few KB. Each row's key is its host and
   * its exact time (nanoseconds, as RFC 3339): a round's time carries a hash of its text (see
   * ROUND_MEASUREMENT), so a key stands for one text.
   */
  async packedKeys(query: SampleWindowQuery): Promise<PackedKey[]> {
    const series = await this.select(
      `SELECT "vmCount" FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(ROUND_MEASUREMENT)} ` +
        `WHERE time >= ${query.fromMs}ms AND time < ${query.toMs + 1}ms GROUP BY "host"`,
      'rfc3339',
    );
    const keys: PackedKey[] = [];
    for (const { values, tags } of series) {
      const host = decodeTag(String(tags?.host ?? ''));
      for (const [time] of values) {
        const ns = nanosecondsOf(String(time));
        if (ns !== null) keys.push({ host, key: packedKey(host, String(time)), ns, timeMs: Number(ns / 1_000_000n) });
      }
    }
    return keys;
  }

  /** The packed rounds (lbvm_round) from `fromNs` (nanoseconds) to toMs, by host, times as RFC 3339: what `packedInto` takes. */
  async packedRows(query: SampleWindowQuery, fromNs: bigint): Promise<Series[]> {
    return this.select(
      `SELECT "vms" FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(ROUND_MEASUREMENT)} ` +
        `WHERE time >= ${fromNs} AND time < ${query.toMs + 1}ms GROUP BY "host"`,
      'rfc3339',
    );
  }

  /**
   * The VM samples of packed rounds (`packedRows`), whole and checked, in `onSample`; a row that
   * fails the checks names its host in `onBad`. A round whose key is in `seen` (every row of it
   * taken by an earlier read) is not decoded again: the window holds it. Returns the keys of the
   * rounds whose every row was good, and the hosts and times of every round it was given (`host\ntimeMs`).
   */
  packedInto(
    series: Series[],
    nowMs: number,
    crossCheck: HostCrossCheck,
    onSample: (sample: Sample) => void,
    onBad: (host: string) => void,
    seen: ReadonlySet<string> = new Set(),
  ): { good: Set<string>; taken: Set<string> } {
    const checks = { nowMs, futureToleranceMs: this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS };
    const quiet = new SkipCounter(0);
    const good = new Set<string>();
    const taken = new Set<string>();
    for (const { values, tags } of series) {
      const host = decodeTag(String(tags?.host ?? ''));
      for (const [time, vms] of values) {
        const key = packedKey(host, String(time));
        const ns = nanosecondsOf(String(time));
        if (ns !== null) taken.add(hostRound(host, Number(ns / 1_000_000n)));
        if (seen.has(key)) {
          good.add(key);
          continue;
        }
        const text = String(vms);
        let round: { c?: unknown; r?: unknown } | null;
        try {
          round = JSON.parse(text) as { c?: unknown; r?: unknown };
        } catch {
          round = null;
        }
        if (!round || !Array.isArray(round.c) || !Array.isArray(round.r)) {
          onBad(host);
          continue;
        }
        let allGood = true;
        for (const row of round.r as unknown[]) {
          const sample = Array.isArray(row)
            ? this.sampleOf('vm', round.c as string[], row, tags, checks, quiet, crossCheck)
            : null;
          if (sample) onSample(sample);
          else {
            allGood = false;
            onBad(host);
          }
        }
        if (allGood) good.add(key);
      }
    }
    return { good, taken };
  }

  /** Writes the lbvm_late announcements of `late` (see LATE_MEASUREMENT), stored at `storedAtMs`. */
  private async announceLate(late: readonly Sample[], storedAtMs: number): Promise<void> {
    let fromMs = Infinity;
    let toMs = -Infinity;
    const hosts = new Set<string>();
    for (const sample of late) {
      fromMs = Math.min(fromMs, sample.timeMs);
      toMs = Math.max(toMs, sample.timeMs);
      hosts.add(sample.host);
    }
    const names = [...hosts].sort();
    const points: IPoint[] = [];
    for (let start = 0; start < names.length; start += HOSTS_PER_ANNOUNCEMENT) {
      const json = JSON.stringify(names.slice(start, start + HOSTS_PER_ANNOUNCEMENT));
      points.push({
        measurement: LATE_MEASUREMENT,
        fields: { hosts: json, fromMs, toMs, samples: late.length },
        // Two writers announcing in the same millisecond must not overwrite each other's point.
        timestamp: (
          BigInt(storedAtMs) * 1_000_000n +
          BigInt(subMillisecondOffset(`${json}${fromMs}${toMs}`))
        ).toString(),
      });
    }
    const report: WriteReport = { written: 0, rejected: 0, rejectedReasons: [] };
    await this.writeBatch(points, points, 'n', report);
  }

  /** The late-sample announcements stored after `sinceMs`, oldest first (see LATE_MEASUREMENT). */
  async lateWrites(sinceMs: number): Promise<LateWrite[]> {
    const series = await this.select(
      `SELECT "hosts", "fromMs", "toMs" FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(LATE_MEASUREMENT)} ` +
        `WHERE time > ${Math.floor(sinceMs)}ms`,
    );
    const writes: LateWrite[] = [];
    for (const { values } of series) {
      for (const [time, hosts, fromMs, toMs] of values) {
        let names: unknown;
        try {
          names = JSON.parse(String(hosts));
        } catch {
          names = null;
        }
        if (!Array.isArray(names) || typeof fromMs !== 'number' || typeof toMs !== 'number') continue;
        writes.push({
          key: `${String(time)} ${String(hosts)} ${fromMs} ${toMs}`,
          storedAtMs: Number(time),
          hosts: names.filter((name): name is string => typeof name === 'string'),
          fromMs,
          toMs,
        });
      }
    }
    return writes;
  }

  /**
   * Every row of one kind with fromMs <= time <= toMs, whole and checked, in `onSample`; a row that
   * fails the checks names its host in `onBad`. For the window reader's short spans (what arrived
   * since its previous read): reading all fields of a minute costs about what one field of the
   * whole window does, and gives each series' newest row with it.
   */
  async rowsInto(
    kind: Sample['kind'],
    query: SampleWindowQuery,
    crossCheck: HostCrossCheck,
    onSample: (sample: Sample) => void,
    onBad: (host: string) => void,
    /** One query, not planned by a count first: a span known to be short (host rows of a minute or two). */
    oneQuery = false,
  ): Promise<number> {
    const nowMs = query.nowMs ?? Date.now();
    const checks = { nowMs, futureToleranceMs: this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS };
    const quiet = new SkipCounter(0);
    let rows = 0;
    for await (const answer of this.answers(await this.planReads(kind, query, { oneQuery }))) {
      for (const { columns, values } of answer) {
        const hostColumn = columns.indexOf('host');
        for (const row of values) {
          rows++;
          const sample = this.sampleOf(kind, columns, row, undefined, checks, quiet, crossCheck);
          if (sample) onSample(sample);
          else onBad(decodeTag(String(row[hostColumn] ?? '')));
        }
      }
    }
    return rows;
  }

  openWindowReader(options: WindowReaderOptions = {}): WindowReader {
    return new InfluxWindowReader(this, options);
  }

  async writeEvents(events: readonly LbvmEvent[]): Promise<WriteReport> {
    const report: WriteReport = { written: 0, rejected: 0, rejectedReasons: [] };
    if (events.length === 0) return report;
    try {
      await this.ensureSchema();
    } catch (error) {
      throw this.failure('creating the database', error, [...events]);
    }
    const points = events.map((event): IPoint => {
      const json = JSON.stringify(event);
      const offsetNs = BigInt(subMillisecondOffset(json));
      const fields: Record<string, string> = { json };
      if (event.host) fields.host = event.host;
      if (event.vm) fields.vm = event.vm;
      return {
        measurement: EVENT_MEASUREMENT,
        tags: { type: encodeTag(event.type) },
        fields,
        timestamp: (BigInt(Math.round(event.timeMs)) * 1_000_000n + offsetNs).toString(),
      };
    });
    try {
      await this.writeBatch([...events], points, 'n', report);
    } catch (error) {
      throw this.failure('writing events', error, [...events]);
    }
    return report;
  }

  /** Runs one query; times in epoch ms, or as InfluxDB's RFC 3339 text (exact to the nanosecond). */
  private async select(text: string, times: 'ms' | 'rfc3339' = 'ms'): Promise<Series[]> {
    try {
      // POST: a query naming many (or long) host names does not fit in a URL.
      const raw = (await this.client.queryRaw(text, {
        precision: times === 'ms' ? 'ms' : undefined,
        database: this.database,
        method: 'POST',
      } as never)) as {
        results: { error?: string; series?: Series[] }[];
      };
      checkResults(raw);
      return raw.results.flatMap((result) => result.series ?? []);
    } catch (error) {
      if (statusOf(error) === 404 || /database not found/i.test(bodyOf(error))) return [];
      const failure = this.failure('reading', error, []);
      throw failure instanceof StoreAuthFailed ? failure : new StoreUnavailable(failure.message, error);
    }
  }

  readSamples(query: SampleWindowQuery): SampleStream {
    const counter = new SkipCounter();
    const crossCheck = new HostCrossCheck();
    const store = this;
    const nowMs = query.nowMs ?? Date.now();
    const futureToleranceMs = this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS;
    const kinds = query.kinds ?? ['host', 'vm'];
    const hostNames = query.hosts ? new Set(query.hosts) : null;
    async function* produce(): AsyncGenerator<Sample[]> {
      for (const kind of kinds) {
        for await (const series of store.answers(await store.planReads(kind, query))) {
          const batch: Sample[] = [];
          for (const { columns, values, tags } of series) {
            for (const row of values) {
              const sample = store.sampleOf(
                kind,
                columns,
                row,
                tags,
                { nowMs, futureToleranceMs },
                counter,
                crossCheck,
              );
              if (sample && (!hostNames || hostNames.has(sample.host))) batch.push(sample);
            }
          }
          if (batch.length > 0) yield batch;
        }
      }
    }
    return sampleStream(counter, { log: this.options.log, store: this.displayUrl }, produce);
  }

  /**
   * The snapshot's view of a window at a fraction of `SELECT *`'s cost: InfluxDB keeps each field of
   * each series apart, so the VMs' window is read as one field (cpuUsedCores) plus the newest row of
   * each series (GROUP BY host, vm ... LIMIT 1). Host samples are few and read whole. Every CPU
   * point is checked by itself (a number from 0 to what its series' newest size allows); the other
   * fields of rows older than the newest are not read, so unlike readSamples a bad value there does
   * not cost the row its CPU point.
   */
  async readDigest(query: SampleWindowQuery): Promise<WindowDigest> {
    const latest: Sample[] = [];
    const cpu: CpuPoint[] = [];
    const skips = await this.digestInto(query, {
      latest: (sample) => latest.push(sample),
      cpu: (point) => cpu.push(point),
    });
    return { latest, cpu, skips };
  }

  /** `readDigest`, handed to `sink` as it comes: memory stays bounded by one answer, whatever the window. */
  async digestInto(query: SampleWindowQuery, sink: Pick<WindowSink, 'cpu' | 'latest'>): Promise<SkipReport> {
    const counter = new SkipCounter();
    // Hosts are read first, so every VM row and CPU point is checked against its host's size.
    const crossCheck = new HostCrossCheck();
    const nowMs = query.nowMs ?? Date.now();
    const checks = { nowMs, futureToleranceMs: this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS };
    const kinds = query.kinds ?? ['host', 'vm'];
    const hostNames = query.hosts ? new Set(query.hosts) : null;
    const keep = (sample: Sample | null): sample is Sample =>
      sample !== null && (!hostNames || hostNames.has(sample.host));
    try {
      if (kinds.includes('host')) {
        for await (const series of this.answers(await this.planReads('host', query))) {
          for (const { columns, values, tags } of series) {
            for (const row of values) {
              const sample = this.sampleOf('host', columns, row, tags, checks, counter, crossCheck);
              if (!keep(sample)) continue;
              sink.latest(sample);
              sink.cpu({
                kind: 'host',
                name: sample.host,
                host: sample.host,
                timeMs: sample.timeMs,
                cores: sample.cpuUsedCores,
              });
            }
          }
        }
      }
      if (kinds.includes('vm')) {
        const grouped = ' GROUP BY "host", "vm"';
        const keyOf = (tags: Record<string, string> | undefined) => `${tags?.host ?? ''}\n${tags?.vm ?? ''}`;
        // The newest row of each series. A series whose newest row is bad is read whole instead
        // (below), so its older good rows count as they would in readSamples.
        const vcpusOf = new Map<string, number>();
        const suspect: Record<string, string>[] = [];
        const quiet = new SkipCounter(0);
        for await (const answer of this.answers(
          await this.planReads('vm', query, { suffix: `${grouped} ORDER BY time DESC LIMIT 1`, byTime: false }),
        )) {
          for (const { columns, values, tags } of answer) {
            const sample = values[0] ? this.sampleOf('vm', columns, values[0], tags, checks, quiet, crossCheck) : null;
            if (!sample || sample.kind !== 'vm') {
              if (tags) suspect.push(tags);
              continue;
            }
            vcpusOf.set(keyOf(tags), sample.vcpus);
            if (keep(sample)) sink.latest(sample);
          }
        }
        for (let start = 0; start < suspect.length; start += 100) {
          const clause = suspect
            .slice(start, start + 100)
            .map(
              (tags) => `("host" = ${escape.stringLit(tags.host ?? '')} AND "vm" = ${escape.stringLit(tags.vm ?? '')})`,
            )
            .join(' OR ');
          const text =
            `SELECT * FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(VM_MEASUREMENT)} ` +
            `WHERE time >= ${query.fromMs}ms AND time <= ${query.toMs}ms AND (${clause})`;
          for (const { columns, values, tags } of await this.select(text)) {
            for (const row of values) {
              const sample = this.sampleOf('vm', columns, row, tags, checks, counter, crossCheck);
              if (!keep(sample) || sample.kind !== 'vm') continue;
              sink.latest(sample);
              sink.cpu({
                kind: 'vm',
                name: sample.vm,
                host: sample.host,
                timeMs: sample.timeMs,
                cores: sample.cpuUsedCores,
              });
            }
          }
        }
        // Every CPU point of the window, checked by itself against its series' newest size.
        for await (const answer of this.answers(
          await this.planReads('vm', query, { select: '"cpuUsedCores"', suffix: grouped }),
        )) {
          for (const { values, tags } of answer) {
            const vcpus = vcpusOf.get(keyOf(tags));
            if (vcpus === undefined) continue; // read whole above
            const host = decodeTag(String(tags?.host ?? ''));
            if (hostNames && !hostNames.has(host)) continue;
            const vm = decodeTag(String(tags?.vm ?? ''));
            for (const [timeMs, cores] of values as [number, unknown][]) {
              const problem =
                typeof cores !== 'number' || !Number.isFinite(cores) || cores < 0 || cores > maxVmCores(vcpus)
                  ? `cpuUsedCores ${String(cores)} is not from 0 to ${maxVmCores(vcpus)} cores (${vcpus} vCPUs)`
                  : crossCheck.vmCoresProblem(host, cores);
              if (problem) {
                counter.add(
                  `${VM_MEASUREMENT} host=${host.slice(0, 80)} vm=${vm.slice(0, 80)} time=${timeMs}`,
                  problem,
                );
                continue;
              }
              sink.cpu({ kind: 'vm', name: vm, host, timeMs, cores: cores as number });
            }
          }
        }
      }
    } finally {
      warnSkips(this.options.log, counter, this.displayUrl);
    }
    return counter.report();
  }

  /** The answers to `plan`'s queries in plan order, two in flight (InfluxDB answers each on one core). */
  private async *answers(plan: string[]): AsyncGenerator<Series[]> {
    const inFlight: Promise<Series[]>[] = [];
    let next = 0;
    const launch = () => {
      if (next >= plan.length) return;
      const answer = this.select(plan[next++]!);
      answer.catch(() => {}); // awaited below, in order; this only keeps an abandoned one quiet
      inFlight.push(answer);
    };
    launch();
    launch();
    while (inFlight.length > 0) {
      const series = await inFlight.shift()!;
      launch();
      yield series;
    }
  }

  /** One row of an answer as a checked sample, or null (counted in `counter`) when it is not valid. */
  private sampleOf(
    kind: Sample['kind'],
    columns: string[],
    row: unknown[],
    tags: Record<string, string> | undefined,
    checks: { nowMs: number; futureToleranceMs: number },
    counter: SkipCounter,
    crossCheck: HostCrossCheck,
  ): Sample | null {
    const record: Record<string, unknown> = { kind };
    for (const [tag, value] of Object.entries(tags ?? {}))
      if (tag === 'host' || tag === 'vm') record[tag] = decodeTag(value);
    for (let index = 0; index < columns.length; index++) {
      const column = columns[index]!;
      const value = row[index];
      if (value === null || value === undefined) continue;
      if (column === 'time') record.timeMs = value;
      else if (column === 'host' || column === 'vm') record[column] = decodeTag(String(value));
      else if (column === 'tags') {
        try {
          record.tags = JSON.parse(String(value));
        } catch {
          record.tags = value;
        }
      } else record[column] = value;
    }
    const verdict = validateSample(record, checks);
    const problem = verdict.ok ? crossCheck.check(verdict.value) : verdict.reason;
    if (verdict.ok && problem === null) return verdict.value;
    const measurement = kind === 'host' ? HOST_MEASUREMENT : VM_MEASUREMENT;
    counter.add(
      `${measurement} host=${String(record.host).slice(0, 80)}${kind === 'vm' ? ` vm=${String(record.vm).slice(0, 80)}` : ''} time=${String(record.timeMs)}`,
      problem ?? 'invalid',
    );
    return null;
  }

  /**
   * The queries that read one kind of sample in a window. Each answer is held whole in memory by the
   * client, and InfluxDB's cost grows with series x fields per query, so the window is cut into
   * about ROWS_PER_QUERY rows per query: by groups of hosts (run two at a time, on both cores), and by
   * time when there are more rows than hosts can split. The row count comes from a cheap query over
   * the host samples (one series per host; each carries its VM count).
   */
  async planReads(
    kind: Sample['kind'],
    query: SampleWindowQuery,
    shape: { select?: string; suffix?: string; byTime?: boolean; oneQuery?: boolean } = {},
  ): Promise<string[]> {
    const measurement = kind === 'host' ? HOST_MEASUREMENT : VM_MEASUREMENT;
    const hostClause = (hosts: string[]) =>
      ` AND (${hosts.map((host) => `"host" = ${escape.stringLit(host)}`).join(' OR ')})`;
    const wanted = query.hosts ? [...new Set(query.hosts.map(encodeTag))] : null;
    let pieces = 1;
    if (!shape.oneQuery) {
      const counts = await this.select(
        `SELECT count("cpuUsedCores"), sum("vmCount") FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(HOST_MEASUREMENT)} ` +
          `WHERE time >= ${query.fromMs}ms AND time <= ${query.toMs}ms${wanted ? hostClause(wanted) : ''}`,
      );
      const [, hostRows, vmRows] = (counts[0]?.values[0] ?? [0, 0, 0]) as [unknown, number | null, number | null];
      const rows = kind === 'host' ? (hostRows ?? 0) : (vmRows ?? (hostRows ?? 0) * 30);
      pieces = rows > 10_000 ? Math.max(2, Math.ceil(rows / ROWS_PER_QUERY)) : 1;
    }
    let hosts = wanted;
    if (!hosts && pieces > 1) {
      const tagValues = await this.select(`SHOW TAG VALUES FROM ${escape.quoted(measurement)} WITH KEY = "host"`);
      hosts = tagValues.flatMap((entry) => entry.values.map((row) => String(row[1])));
    }
    const groups: (string[] | null)[] = [];
    if (!hosts || hosts.length === 0) groups.push(null);
    else {
      const count = Math.max(1, Math.min(pieces, hosts.length));
      const size = Math.ceil(hosts.length / count);
      for (let start = 0; start < hosts.length; start += size) groups.push(hosts.slice(start, start + size));
    }
    // A query that keeps one row per series (LIMIT 1) is cut by hosts only.
    const slices = shape.byTime === false ? 1 : Math.max(1, Math.ceil(pieces / groups.length));
    const sliceMs = Math.max(1, Math.ceil((query.toMs - query.fromMs + 1) / slices));
    const plan: string[] = [];
    for (let from = query.fromMs; from <= query.toMs; from += sliceMs) {
      const to = Math.min(query.toMs, from + sliceMs - 1);
      for (const group of groups) {
        plan.push(
          `SELECT ${shape.select ?? '*'} FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(measurement)} ` +
            `WHERE time >= ${from}ms AND time <= ${to}ms${group ? hostClause(group) : ''}${shape.suffix ?? ''}`,
        );
      }
    }
    return plan;
  }

  async lastSampleTimes(options: { sinceMs?: number; nowMs?: number } = {}): Promise<Map<string, number>> {
    const nowMs = options.nowMs ?? Date.now();
    const sinceMs = options.sinceMs ?? nowMs - this.options.retentionMs;
    const untilMs = nowMs + (this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS);
    const result = new Map<string, number>();
    const series = await this.select(
      `SELECT last("cpuUsedCores") FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(HOST_MEASUREMENT)} ` +
        `WHERE time >= ${sinceMs}ms AND time <= ${untilMs}ms GROUP BY "host"`,
    );
    for (const entry of series as { columns: string[]; values: unknown[][]; tags?: { host?: string } }[]) {
      const host = entry.tags?.host;
      const time = entry.values[0]?.[0];
      if (typeof host === 'string' && typeof time === 'number') result.set(decodeTag(host), time);
    }
    return result;
  }

  async readEvents(query: { fromMs: number; toMs: number }): Promise<LbvmEvent[]> {
    const counter = new SkipCounter();
    const series = await this.select(
      `SELECT "json" FROM ${escape.quoted(RAW_POLICY)}.${escape.quoted(EVENT_MEASUREMENT)} WHERE time >= ${query.fromMs}ms AND time < ${query.toMs + 1}ms`,
    );
    const events: LbvmEvent[] = [];
    for (const { values } of series) {
      for (const [time, json] of values) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(String(json));
        } catch {
          counter.add(`${EVENT_MEASUREMENT} time=${String(time)}`, 'json field is not valid JSON');
          continue;
        }
        const verdict = validateEvent(parsed);
        if (verdict.ok) events.push(verdict.value);
        else counter.add(`${EVENT_MEASUREMENT} time=${String(time)}`, verdict.reason);
      }
    }
    warnSkips(this.options.log, counter, this.displayUrl, 'events');
    return events.sort((a, b) => a.timeMs - b.timeMs);
  }

  async prune(): Promise<{ removed: number }> {
    // The lbvm_raw retention policy expires raw samples; nothing to do here.
    return { removed: 0 };
  }

  async close(): Promise<void> {}
}

/** A round's VM rows as columns: `{"c": [names], "r": [[values], ...]}`, null where a row has no value. */
function packRows(rows: readonly Record<string, unknown>[]): string {
  const columns: string[] = [];
  const index = new Map<string, number>();
  for (const row of rows)
    for (const name of Object.keys(row))
      if (!index.has(name)) {
        index.set(name, columns.length);
        columns.push(name);
      }
  const table = rows.map((row) => {
    const values = new Array<unknown>(columns.length).fill(null);
    for (const [name, value] of Object.entries(row)) values[index.get(name)!] = value;
    return values;
  });
  return JSON.stringify({ c: columns, r: table });
}

/** A packed round's key: its host and its exact time as InfluxDB's RFC 3339 text (see PackedKey). */
function packedKey(host: string, time: string): string {
  return `${host}\n${time}`;
}

/** Epoch nanoseconds of an RFC 3339 time as InfluxDB writes it (UTC, up to nine decimals), or null. */
function nanosecondsOf(time: string): bigint | null {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(time);
  const seconds = match ? Date.parse(`${match[1]}Z`) : NaN;
  if (!match || Number.isNaN(seconds)) return null;
  return BigInt(seconds) * 1_000_000n + BigInt((match[2] ?? '').padEnd(9, '0'));
}

/** Nanoseconds (0..999,999) from a hash of `text`: distinct points written in the same millisecond stay apart. */
function subMillisecondOffset(text: string): number {
  const { createHash } = require('node:crypto') as { createHash: typeof CreateHash };
  return parseInt(createHash('sha1').update(text).digest('hex').slice(0, 8), 16) % 1_000_000;
}

function checkResults(raw: unknown): unknown {
  const results = (raw as { results?: { error?: string }[] })?.results ?? [];
  const failed = results.find((result) => result.error);
  if (failed)
    throw Object.assign(new Error(failed.error), {
      res: { statusCode: /authoriz|privilege/i.test(failed.error!) ? 403 : 400 },
    });
  return raw;
}
