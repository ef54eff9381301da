/**
 * The local spool: where a collector puts what the store could not take, so no sample is lost while
 * InfluxDB is down or the shared folder is unwritable. `deliver()` is what a collector calls each
 * round: it first replays the spool, oldest first, then writes the new round; whatever the store does
 * not take is appended to the spool, so the store sees every sample once and in the order taken.
 *
 *   SPOOL/spool.jsonl   one item per line: {"sample":{...}} or {"event":{...}}
 *   SPOOL/spool.offset  byte offset of the first item not yet replayed (so a replay cut short by a
 *                       new outage resumes where it stopped instead of writing a batch twice)
 *   SPOOL/spool.lock    held (O_EXCL, with our pid) while the spool is read or changed
 *
 * The spool is bounded: past `maxBytes`, the oldest items are dropped, with a warning saying how many.
 * Exactly-once holds as long as the process is not killed between a store write and the offset
 * update that follows it (a window of one batch; InfluxDB then overwrites the same points, the files
 * store would hold that batch twice).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreUnavailable } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { LbvmEvent, Sample } from '../model/index.ts';
import { StoreAuthFailed, StoreWriteFailed } from './errors.ts';
import { readLines } from './lines.ts';
import type { SampleStore } from './types.ts';
import { makeDirs } from '../util/dirs.ts';

export type SpoolItem = { sample: Sample; event?: undefined } | { event: LbvmEvent; sample?: undefined };

export interface SpoolOptions {
  dir: string;
  maxBytes: number;
  log?: Logger;
  /** How long to wait for another process holding the spool lock. */
  lockTimeoutMs?: number;
}

export interface ReplayResult {
  replayed: number;
  /** Corrupt spool lines (a crash in the middle of an append) skipped. */
  corrupt: number;
  /** Replayed items the store refused as invalid (set aside, counted, not kept for another try). */
  rejected?: number;
  rejectedReasons?: string[];
  /** Set when the store failed again; the items not yet replayed stay in the spool. */
  error?: StoreUnavailable;
}

export class Spool {
  readonly file: string;
  private readonly offsetFile: string;
  private readonly lockFile: string;

  constructor(private readonly options: SpoolOptions) {
    this.file = path.join(options.dir, 'spool.jsonl');
    this.offsetFile = path.join(options.dir, 'spool.offset');
    this.lockFile = path.join(options.dir, 'spool.lock');
  }

  /** Bytes waiting to be replayed. */
  pendingBytes(): number {
    let size = 0;
    try {
      size = fs.statSync(this.file).size;
    } catch {
      return 0;
    }
    return Math.max(0, size - this.readOffset());
  }

  /** Items waiting (counts lines; for reports and tests). */
  async pendingItems(): Promise<SpoolItem[]> {
    const items: SpoolItem[] = [];
    for await (const line of readLines(this.file, this.readOffset())) {
      try {
        items.push(JSON.parse(line.text) as SpoolItem);
      } catch {
        /* corrupt: replay skips it too */
      }
    }
    return items;
  }

  /** Appends items after the ones already waiting; drops the oldest when `maxBytes` would be passed. */
  async append(items: readonly SpoolItem[]): Promise<{ appended: number; dropped: number }> {
    if (items.length === 0) return { appended: 0, dropped: 0 };
    return this.locked(undefined, async () => {
      let lines = items.map((item) => `${JSON.stringify(item)}\n`);
      let newBytes = lines.reduce((sum, line) => sum + Buffer.byteLength(line), 0);
      let dropped = 0;
      // More new items than the whole spool holds: keep the newest of them.
      while (newBytes > this.options.maxBytes && lines.length > 0) {
        newBytes -= Buffer.byteLength(lines[0]!);
        lines = lines.slice(1);
        dropped++;
      }
      const overflow = this.pendingBytes() + newBytes - this.options.maxBytes;
      if (overflow > 0) dropped += await this.dropOldest(overflow);
      if (lines.length > 0) {
        makeDirs(this.options.dir);
        const fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o600);
        try {
          fs.writeSync(fd, lines.join(''));
        } finally {
          fs.closeSync(fd);
        }
      }
      if (dropped > 0) {
        this.options.log?.warn(
          { spool: this.options.dir, dropped, maxBytes: this.options.maxBytes },
          `spool full (${this.options.maxBytes} bytes, store.spoolMaxBytes): dropped the ${dropped} oldest spooled items; they are lost`,
        );
      }
      return { appended: lines.length, dropped };
    });
  }

  /**
   * Writes spooled items to `store`, oldest first, in batches. Stops at the first failure; what the
   * store did not take stays in the spool, in order. Removes the spool when everything went through.
   */
  async replay(store: SampleStore, batchSize = 5000, lockWaitMs?: number): Promise<ReplayResult> {
    if (this.pendingBytes() === 0) return { replayed: 0, corrupt: 0 };
    return this.locked(lockWaitMs, async () => {
      let offset = this.readOffset();
      let replayed = 0;
      let corrupt = 0;
      const refused = { rejected: 0, rejectedReasons: [] as string[] };
      let batch: { item: SpoolItem; bytes: number }[] = [];
      let batchBytes = 0;
      const flush = async (): Promise<StoreUnavailable | undefined> => {
        // Consecutive samples go in one write, consecutive events in another, order kept.
        let start = 0;
        while (start < batch.length) {
          const isEvent = batch[start]!.item.event !== undefined;
          let end = start;
          while (end < batch.length && (batch[end]!.item.event !== undefined) === isEvent) end++;
          const run = batch.slice(start, end);
          try {
            const written = isEvent
              ? await store.writeEvents(run.map((entry) => entry.item.event!))
              : await store.writeSamples(run.map((entry) => entry.item.sample!));
            refused.rejected += written.rejected;
            refused.rejectedReasons.push(...written.rejectedReasons);
          } catch (error) {
            if (!(error instanceof StoreUnavailable)) throw error;
            // Keep what was not written of this run, then the rest of the spool after it.
            const unwritten = error instanceof StoreWriteFailed ? new Set<unknown>(error.unwritten) : null;
            const keep = run
              .filter((entry) => unwritten === null || unwritten.has(isEvent ? entry.item.event : entry.item.sample))
              .map((entry) => entry.item);
            const runOffset = offset + batch.slice(0, start).reduce((sum, entry) => sum + entry.bytes, 0);
            const afterRun = runOffset + run.reduce((sum, entry) => sum + entry.bytes, 0);
            replayed += run.length - keep.length;
            await this.rewrite(keep, afterRun);
            return error;
          }
          replayed += run.length;
          start = end;
        }
        offset += batchBytes;
        this.writeOffset(offset);
        batch = [];
        batchBytes = 0;
        return undefined;
      };
      let position = offset;
      for await (const line of readLines(this.file, offset)) {
        const bytes = Buffer.byteLength(line.text) + (line.unterminated ? 0 : 1);
        position += bytes;
        let item: SpoolItem | null = null;
        try {
          const parsed = JSON.parse(line.text) as SpoolItem;
          if (parsed && (parsed.sample || parsed.event)) item = parsed;
        } catch {
          /* corrupt */
        }
        if (!item) {
          corrupt++;
          if (batch.length === 0) {
            offset = position;
            this.writeOffset(offset);
          } else {
            // Account its bytes to the batch so the offset moves past it with the batch.
            batch[batch.length - 1]!.bytes += bytes;
            batchBytes += bytes;
          }
          continue;
        }
        batch.push({ item, bytes });
        batchBytes += bytes;
        if (batch.length >= batchSize) {
          const error = await flush();
          if (error) return { replayed, corrupt, error, ...refused };
        }
      }
      if (batch.length > 0) {
        const error = await flush();
        if (error) return { replayed, corrupt, error, ...refused };
      }
      if (corrupt > 0) {
        this.options.log?.warn(
          { spool: this.file, corrupt },
          `skipped ${corrupt} corrupt lines in the spool ${this.file}`,
        );
      }
      // Everything went through: start afresh (unless someone appended meanwhile, which the lock prevents).
      await fsp.rm(this.file, { force: true });
      await fsp.rm(this.offsetFile, { force: true });
      return { replayed, corrupt, ...refused };
    });
  }

  private readOffset(): number {
    try {
      const value = Number(fs.readFileSync(this.offsetFile, 'utf8').trim());
      return Number.isFinite(value) && value >= 0 ? value : 0;
    } catch {
      return 0;
    }
  }

  private writeOffset(offset: number): void {
    const temporary = `${this.offsetFile}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, String(offset));
    fs.renameSync(temporary, this.offsetFile);
  }

  /** Replaces the spool by `first` followed by the file's content from byte `from`, offset reset. */
  private async rewrite(first: readonly SpoolItem[], from: number): Promise<void> {
    const temporary = `${this.file}.${process.pid}.tmp`;
    const out = fs.openSync(temporary, 'w', 0o600);
    try {
      if (first.length > 0) fs.writeSync(out, first.map((item) => `${JSON.stringify(item)}\n`).join(''));
      const input = fs.openSync(this.file, 'r');
      try {
        const buffer = Buffer.allocUnsafe(256 * 1024);
        let position = from;
        for (;;) {
          const bytes = fs.readSync(input, buffer, 0, buffer.length, position);
          if (bytes === 0) break;
          fs.writeSync(out, buffer, 0, bytes);
          position += bytes;
        }
      } finally {
        fs.closeSync(input);
      }
    } finally {
      fs.closeSync(out);
    }
    fs.renameSync(temporary, this.file);
    this.writeOffset(0);
  }

  /** Drops whole items from the front until at least `bytes` are freed; returns how many. */
  private async dropOldest(bytes: number): Promise<number> {
    const start = this.readOffset();
    let freed = 0;
    let dropped = 0;
    for await (const line of readLines(this.file, start)) {
      if (freed >= bytes) break;
      freed += Buffer.byteLength(line.text) + (line.unterminated ? 0 : 1);
      dropped++;
    }
    await this.rewrite([], start + freed);
    return dropped;
  }

  private async locked<T>(waitMs: number | undefined, work: () => Promise<T>): Promise<T> {
    makeDirs(this.options.dir);
    const deadline = Date.now() + (waitMs ?? this.options.lockTimeoutMs ?? 30_000);
    for (;;) {
      try {
        const fd = fs.openSync(this.lockFile, 'wx', 0o600);
        fs.writeSync(fd, String(process.pid));
        fs.closeSync(fd);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number(fs.readFileSync(this.lockFile, 'utf8').trim() || 'NaN');
        if (!isAlive(holder)) {
          // Left behind by a process that died: take it over.
          fs.rmSync(this.lockFile, { force: true });
          continue;
        }
        if (Date.now() > deadline) {
          throw new SpoolBusy(
            `the spool ${this.options.dir} is locked by process ${holder}, which still runs (a long replay, or a stuck collector round)`,
          );
        }
        await sleep(50);
      }
    }
    try {
      return await work();
    } finally {
      fs.rmSync(this.lockFile, { force: true });
    }
  }
}

/** Another live process holds the spool (replaying it); nothing was changed. */
export class SpoolBusy extends StoreUnavailable {
  constructor(message: string) {
    super(message);
    this.name = 'SpoolBusy';
  }
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface DeliveryReport {
  /** New items the store took this time. */
  written: number;
  /** Spooled items from earlier rounds that reached the store now. */
  replayed: number;
  /** Items put in the spool this time (the store did not take them). */
  spooled: number;
  /** Oldest spooled items dropped because the spool was full. */
  dropped: number;
  /** Invalid items set aside (never retried). */
  rejected: number;
  rejectedReasons: string[];
  /** Bytes waiting in the spool after this delivery. */
  spoolBytes: number;
  /** Why the store did not take everything (credentials redacted), when it did not. */
  storeError?: string;
  /** The store refused our credentials. */
  authFailed?: boolean;
}

/**
 * One delivery: replay the spool, then write `samples` and `events`; whatever the store does not take
 * goes to the spool. Never throws for an unreachable store: the report says what happened.
 */
export async function deliver(
  store: SampleStore,
  spool: Spool,
  items: { samples?: readonly Sample[]; events?: readonly LbvmEvent[] },
  options: { batchSize?: number } = {},
): Promise<DeliveryReport> {
  const report: DeliveryReport = {
    written: 0,
    replayed: 0,
    spooled: 0,
    dropped: 0,
    rejected: 0,
    rejectedReasons: [],
    spoolBytes: 0,
  };
  const samples = items.samples ?? [];
  const events = items.events ?? [];
  const toSpool: SpoolItem[] = [];
  let failure: StoreUnavailable | undefined;
  let replay: ReplayResult;
  try {
    replay = await spool.replay(store, options.batchSize, 2000);
  } catch (error) {
    // Another round is replaying a long spool: do not wait for it; write this round directly
    // (its samples then arrive before the older spooled ones, but none is lost or doubled).
    if (!(error instanceof SpoolBusy)) throw error;
    replay = { replayed: 0, corrupt: 0 };
  }
  report.replayed = replay.replayed;
  report.rejected += replay.rejected ?? 0;
  report.rejectedReasons.push(...(replay.rejectedReasons ?? []));
  failure = replay.error;
  if (failure) {
    toSpool.push(...samples.map((sample) => ({ sample })), ...events.map((event) => ({ event })));
  } else {
    try {
      const result = await writeInBatches(store, samples, options.batchSize);
      report.written += result.written;
      report.rejected += result.rejected;
      report.rejectedReasons.push(...result.rejectedReasons);
    } catch (error) {
      if (!(error instanceof StoreUnavailable)) throw error;
      failure = error;
      const unwritten = error instanceof StoreWriteFailed ? (error.unwritten as Sample[]) : [...samples];
      report.written += samples.length - unwritten.length;
      toSpool.push(...unwritten.map((sample) => ({ sample })));
    }
    if (failure) toSpool.push(...events.map((event) => ({ event })));
    else if (events.length > 0) {
      try {
        report.written += (await store.writeEvents(events)).written;
      } catch (error) {
        if (!(error instanceof StoreUnavailable)) throw error;
        failure = error;
        const unwritten = error instanceof StoreWriteFailed ? (error.unwritten as LbvmEvent[]) : [...events];
        report.written += events.length - unwritten.length;
        toSpool.push(...unwritten.map((event) => ({ event })));
      }
    }
  }
  if (toSpool.length > 0) {
    const appended = await spool.append(toSpool);
    report.spooled = appended.appended;
    report.dropped = appended.dropped;
  }
  if (failure) {
    report.storeError = failure.message;
    report.authFailed = failure instanceof StoreAuthFailed;
  }
  report.spoolBytes = spool.pendingBytes();
  return report;
}

/** Writes in batches so a failure in the middle spools only what was not written. */
async function writeInBatches(store: SampleStore, samples: readonly Sample[], batchSize = 5000) {
  const total = { written: 0, rejected: 0, rejectedReasons: [] as string[] };
  for (let start = 0; start < samples.length; start += batchSize) {
    const batch = samples.slice(start, start + batchSize);
    try {
      const result = await store.writeSamples(batch);
      total.written += result.written;
      total.rejected += result.rejected;
      total.rejectedReasons.push(...result.rejectedReasons);
    } catch (error) {
      if (error instanceof StoreWriteFailed) {
        const unwritten = [...(error.unwritten as Sample[]), ...samples.slice(start + batchSize)];
        throw error instanceof StoreAuthFailed
          ? new StoreAuthFailed(error.message, unwritten, error)
          : new StoreWriteFailed(error.message, unwritten, error);
      }
      if (error instanceof StoreUnavailable) throw new StoreWriteFailed(error.message, samples.slice(start), error);
      throw error;
    }
  }
  return total;
}
