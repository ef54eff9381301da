/**
 * The `files:DIR` backend: JSON lines in a folder that every host may share (NFS, CephFS, ...).
 *
 *   DIR/YYYY-MM-DD/<encoded host>.jsonl           one file per host per UTC day, host and VM samples
 *   DIR/events/YYYY-MM-DD/<encoded writer>.jsonl  events, one file per writing machine per day
 *
 * Each host appends only to its own files, and each line goes down in one write(2) on a descriptor
 * opened with O_APPEND, so concurrent writers never interleave inside a line and a crash leaves at
 * worst one truncated last line, which readers skip. Names are encoded (names.ts): no name can
 * reach outside DIR. Readers stream file by file in bounded chunks, enter a time-ordered file at the
 * window by bisection (see UNSORTED_SUFFIX), and skip bad lines with one warning per read that names
 * file:line.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.ts';
import type { LbvmEvent, Sample } from '../model/index.ts';
import { StoreWriteFailed } from './errors.ts';
import { readLineBatches, readLines, readTail, type Line } from './lines.ts';
import { sampleStream, warnSkips } from './stream.ts';
import { encodeName } from './names.ts';
import type {
  SampleStore,
  SampleStream,
  SampleWindowQuery,
  WindowRead,
  WindowReader,
  WindowSink,
  WriteReport,
} from './types.ts';
import {
  DEFAULT_FUTURE_TOLERANCE_MS,
  futureDated,
  HostCrossCheck,
  SkipCounter,
  screenSamples,
  validateEvent,
  validateSample,
  type Verdict,
} from './validate.ts';
import { makeDirs } from '../util/dirs.ts';

const DAY_MS = 86_400_000;

export interface FilesStoreOptions {
  dir: string;
  retentionMs: number;
  log?: Logger;
  futureToleranceMs?: number;
  /** Name of the file events are appended to (default: this machine's hostname). */
  writerName?: string;
}

export function dayOf(timeMs: number): string {
  return new Date(timeMs).toISOString().slice(0, 10);
}

function daysBetween(fromMs: number, toMs: number): string[] {
  const days: string[] = [];
  for (let day = Math.floor(fromMs / DAY_MS) * DAY_MS; day <= toMs; day += DAY_MS) days.push(dayOf(day));
  return days;
}

const DAY_DIR = /^\d{4}-\d{2}-\d{2}$/;

/** The sample files of the days from `fromMs` to `toMs`, day by day, by name within a day. */
async function sampleFiles(
  samplesDir: string,
  fromMs: number,
  toMs: number,
): Promise<{ name: string; file: string }[]> {
  const files: { name: string; file: string }[] = [];
  for (const day of daysBetween(fromMs, toMs)) {
    const dayDir = path.join(samplesDir, day);
    let names: string[];
    try {
      names = (await fsp.readdir(dayDir)).filter((name) => name.endsWith('.jsonl')).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    for (const name of names) files.push({ name, file: path.join(dayDir, name) });
  }
  return files;
}

/** Samples are written with `timeMs` first, so a reader can filter a line by time without parsing it. */
function serialize(sample: Sample): string {
  const { timeMs, ...rest } = sample;
  return `${JSON.stringify({ timeMs, ...rest })}\n`;
}

const TIME_PREFIX = '{"timeMs":';

/** The time of a line written by `serialize`, or null when the line looks different (then it is parsed). */
function quickTime(text: string): number | null {
  if (!text.startsWith(TIME_PREFIX)) return null;
  const end = text.indexOf(',', TIME_PREFIX.length);
  if (end === -1) return null;
  const value = Number(text.slice(TIME_PREFIX.length, end));
  return Number.isFinite(value) ? value : null;
}

/**
 * A write cut short (disk full, crash) can leave a last line without its newline; the next line
 * appended would then be glued to it and lost with it. End such a line first (readers skip it).
 * When another process's line is being written at that moment, this adds an empty line after it,
 * which readers skip too: harmless, unlike a glued line.
 */
function endLineIfCut(fd: number): number | null {
  const { size } = fs.fstatSync(fd);
  if (size === 0) return null;
  const last = Buffer.alloc(1);
  fs.readSync(fd, last, 0, 1, size - 1);
  if (last[0] !== 10) {
    fs.writeSync(fd, '\n');
    return null;
  }
  return lastLineTime(fd, size);
}

/** The time of the last complete line of a file (from its `{"timeMs":` prefix), or null when it cannot tell. */
function lastLineTime(fd: number, size: number): number | null {
  for (const span of [4096, 65_536]) {
    const length = Math.min(size, span);
    const buffer = Buffer.alloc(length);
    fs.readSync(fd, buffer, 0, length, size - length);
    // buffer ends with "\n"; the last line starts after the newline before it.
    const start = buffer.lastIndexOf(10, length - 2);
    if (start === -1 && length < size) continue;
    return quickTime(buffer.toString('utf8', start + 1, Math.min(length, start + 1 + 40)));
  }
  return null;
}

/**
 * Sample files are normally in time order (a host appends its rounds as it takes them; a spool
 * replays before the next round). Readers then seek to a window by bisection instead of scanning
 * the whole day. A writer that appends a sample older than the file's last line (clock stepped back,
 * a round written while another replayed its spool) drops this marker beside the file, and readers
 * scan that file whole.
 */
export const UNSORTED_SUFFIX = '.unsorted';

export class FilesStore implements SampleStore {
  readonly kind = 'files' as const;
  readonly displayUrl: string;
  private readonly samplesDir: string;
  private readonly eventsDir: string;
  private readonly madeDirs = new Set<string>();

  constructor(private readonly options: FilesStoreOptions) {
    this.displayUrl = `files:${options.dir}`;
    this.samplesDir = options.dir;
    this.eventsDir = path.join(options.dir, 'events');
  }

  /** The file that holds `host`'s samples of the UTC day of `timeMs`. Always inside DIR. */
  fileFor(host: string, timeMs: number): string {
    return path.join(this.samplesDir, dayOf(timeMs), `${encodeName(host)}.jsonl`);
  }

  async writeSamples(samples: readonly Sample[]): Promise<WriteReport> {
    const { valid, rejected, rejectedReasons } = screenSamples(samples, this.options.log, this.displayUrl);
    const report = await this.appendAll(
      valid,
      (sample) => this.fileFor(sample.host, sample.timeMs),
      serialize,
      'samples',
    );
    return { ...report, rejected, rejectedReasons };
  }

  async writeEvents(events: readonly LbvmEvent[]): Promise<WriteReport> {
    const writer = encodeName(this.options.writerName ?? os.hostname());
    return this.appendAll(
      events,
      (event) => path.join(this.eventsDir, dayOf(event.timeMs), `${writer}.jsonl`),
      (event) => `${JSON.stringify(event)}\n`,
      'events',
    );
  }

  /**
   * Appends each item as one line to its file, one write(2) per line. Items are grouped by file (in
   * order of first appearance, order kept within a file). On the first failure, everything not yet
   * written goes back to the caller in the original order.
   */
  private async appendAll<T extends Sample | LbvmEvent>(
    items: readonly T[],
    fileOf: (item: T) => string,
    lineOf: (item: T) => string,
    what: string,
  ): Promise<WriteReport> {
    const groups = new Map<string, number[]>();
    for (let index = 0; index < items.length; index++) {
      const file = fileOf(items[index]!);
      let group = groups.get(file);
      if (!group) groups.set(file, (group = []));
      group.push(index);
    }
    const written = new Uint8Array(items.length);
    let count = 0;
    for (const [file, indices] of groups) {
      let fd: number | undefined;
      try {
        const dir = path.dirname(file);
        if (!this.madeDirs.has(dir)) {
          makeDirs(dir);
          this.madeDirs.add(dir);
        }
        fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT, 0o644);
        let lastTimeMs = endLineIfCut(fd);
        // When the last line tells no time (cut, foreign), order is judged from the lines written now.
        let sorted = what === 'samples';
        for (const index of indices) {
          const item = items[index]!;
          if (sorted) {
            if (lastTimeMs !== null && item.timeMs < lastTimeMs) {
              fs.closeSync(fs.openSync(`${file}${UNSORTED_SUFFIX}`, 'a'));
              sorted = false;
            }
            lastTimeMs = Math.max(lastTimeMs ?? 0, item.timeMs);
          }
          const buffer = Buffer.from(lineOf(item), 'utf8');
          const bytes = fs.writeSync(fd, buffer);
          if (bytes !== buffer.length) {
            // A short write (disk full): end the partial line so readers skip it, then give up.
            try {
              fs.writeSync(fd, '\n');
            } catch {
              /* the reader skips the unterminated line too */
            }
            throw Object.assign(new Error(`short write (${bytes} of ${buffer.length} bytes)`), { code: 'ENOSPC' });
          }
          written[index] = 1;
          count++;
        }
      } catch (error) {
        const unwritten = items.filter((_item, index) => written[index] === 0);
        const code = (error as NodeJS.ErrnoException).code ?? '';
        throw new StoreWriteFailed(
          `cannot write ${what} to ${this.displayUrl} (${file}: ` +
            `${code ? `${code}: ` : ''}${(error as Error).message.replace(/^[A-Z]+: /, '')}); ${unwritten.length} not written`,
          unwritten as T[],
          error,
        );
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
    }
    return { written: count, rejected: 0, rejectedReasons: [] };
  }

  readSamples(query: SampleWindowQuery): SampleStream {
    const counter = new SkipCounter();
    const crossCheck = new HostCrossCheck();
    const store = this;
    const nowMs = query.nowMs ?? Date.now();
    const wantHosts = query.hosts ? new Set(query.hosts.map((host) => `${encodeName(host)}.jsonl`)) : null;
    const hostNames = query.hosts ? new Set(query.hosts) : null;
    const kinds = new Set(query.kinds ?? ['host', 'vm']);
    const futureToleranceMs = this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS;
    async function* produce(): AsyncGenerator<Sample[]> {
      for (const { name, file } of await sampleFiles(store.samplesDir, query.fromMs, query.toMs)) {
        if (wantHosts && !wantHosts.has(name)) continue;
        // A file in time order is entered at the window by bisection and left after it.
        const sorted = !fs.existsSync(`${file}${UNSORTED_SUFFIX}`);
        const startOffset = sorted ? seekTo(file, query.fromMs) : 0;
        // Line numbers count from the offset; the lines before it are counted only for a warning.
        let linesBefore: number | null = startOffset === 0 ? 0 : null;
        const skip = async (number: number, reason: string) => {
          linesBefore ??= await countLines(file, startOffset);
          counter.add(`${file}:${linesBefore + number}`, reason);
        };
        let done = false;
        for await (const lines of readLineBatches(file, startOffset)) {
          const batch: Sample[] = [];
          for (const line of lines) {
            if (line.text.length === 0 && !line.oversized) continue;
            const quick = quickTime(line.text);
            if (quick !== null && !line.unterminated && (quick < query.fromMs || quick > query.toMs)) {
              // A line from the future is a broken clock: said, even beyond the window, and no
              // proof of where the window ends.
              if (quick > nowMs + futureToleranceMs) {
                await skip(line.number, futureDated(quick, nowMs));
                continue;
              }
              // In a time-ordered file nothing after a later line is in the window.
              if (sorted && quick > query.toMs) {
                done = true;
                break;
              }
              continue;
            }
            const verdict = sampleOfLine(line, { nowMs, futureToleranceMs }, crossCheck);
            if (!verdict.ok) {
              await skip(line.number, verdict.reason);
              continue;
            }
            const sample = verdict.value;
            if (sample.timeMs < query.fromMs || sample.timeMs > query.toMs) continue;
            if (!kinds.has(sample.kind)) continue;
            if (hostNames && !hostNames.has(sample.host)) continue;
            batch.push(sample);
          }
          if (batch.length > 0) yield batch;
          if (done) break;
        }
      }
    }
    return sampleStream(counter, { log: this.options.log, store: this.displayUrl }, produce);
  }

  openWindowReader(): WindowReader {
    return new FilesWindowReader(this, this.samplesDir, this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS);
  }

  /** Where warnings go (the window reader's too). */
  get log(): Logger | undefined {
    return this.options.log;
  }

  async lastSampleTimes(options: { sinceMs?: number; nowMs?: number } = {}): Promise<Map<string, number>> {
    const nowMs = options.nowMs ?? Date.now();
    const sinceMs = options.sinceMs ?? nowMs - this.options.retentionMs;
    const futureToleranceMs = this.options.futureToleranceMs ?? DEFAULT_FUTURE_TOLERANCE_MS;
    const result = new Map<string, number>();
    const seenFiles = new Set<string>();
    // Newest day first: a host's newest file decides, older days only for hosts silent since.
    for (const day of daysBetween(sinceMs, nowMs + futureToleranceMs).reverse()) {
      const dayDir = path.join(this.samplesDir, day);
      let names: string[];
      try {
        names = await fsp.readdir(dayDir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!name.endsWith('.jsonl') || seenFiles.has(name)) continue;
        const file = path.join(dayDir, name);
        let best: { host: string; timeMs: number } | null = null;
        const consider = (text: string) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            return;
          }
          const verdict = validateSample(parsed, { nowMs, futureToleranceMs });
          if (verdict.ok && verdict.value.timeMs >= sinceMs && (!best || verdict.value.timeMs > best.timeMs)) {
            best = { host: verdict.value.host, timeMs: verdict.value.timeMs };
          }
        };
        for (const text of await readTail(file, 256 * 1024)) consider(text);
        if (!best) for await (const line of readLines(file)) consider(line.text);
        if (best) {
          seenFiles.add(name);
          const found = best as { host: string; timeMs: number };
          result.set(found.host, Math.max(result.get(found.host) ?? 0, found.timeMs));
        }
      }
    }
    return result;
  }

  async readEvents(query: { fromMs: number; toMs: number }): Promise<LbvmEvent[]> {
    const events: LbvmEvent[] = [];
    const counter = new SkipCounter();
    for (const day of daysBetween(query.fromMs, query.toMs)) {
      const dayDir = path.join(this.eventsDir, day);
      let names: string[];
      try {
        names = (await fsp.readdir(dayDir)).filter((name) => name.endsWith('.jsonl')).sort();
      } catch {
        continue;
      }
      for (const name of names) {
        const file = path.join(dayDir, name);
        for await (const line of readLines(file)) {
          if (line.text.length === 0) continue;
          let parsed: unknown;
          try {
            parsed = JSON.parse(line.text);
          } catch {
            counter.add(`${file}:${line.number}`, line.unterminated ? 'truncated line' : 'not valid JSON');
            continue;
          }
          const verdict = validateEvent(parsed);
          if (!verdict.ok) {
            counter.add(`${file}:${line.number}`, verdict.reason);
            continue;
          }
          if (verdict.value.timeMs >= query.fromMs && verdict.value.timeMs <= query.toMs) events.push(verdict.value);
        }
      }
    }
    warnSkips(this.options.log, counter, this.displayUrl, 'events');
    return events.sort((a, b) => a.timeMs - b.timeMs);
  }

  async prune(nowMs = Date.now()): Promise<{ removed: number }> {
    const cutoffDay = dayOf(nowMs - this.options.retentionMs);
    let removed = 0;
    for (const base of [this.samplesDir, this.eventsDir]) {
      let days: string[];
      try {
        days = await fsp.readdir(base);
      } catch {
        continue;
      }
      for (const day of days) {
        // A day folder goes when all of its day is older than the retention.
        if (DAY_DIR.test(day) && day < cutoffDay) {
          await fsp.rm(path.join(base, day), { recursive: true, force: true });
          this.madeDirs.delete(path.join(base, day));
          removed++;
        }
      }
    }
    return { removed };
  }

  async close(): Promise<void> {}
}

/** One line of a sample file as a checked sample, or why it is skipped. */
function sampleOfLine(
  line: Line,
  checks: { nowMs: number; futureToleranceMs: number },
  crossCheck: HostCrossCheck,
): Verdict<Sample> {
  if (line.oversized) return { ok: false, reason: 'line longer than 1 MiB' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.text);
  } catch {
    return {
      ok: false,
      reason: line.unterminated ? 'truncated line (no newline at the end of the file)' : 'not valid JSON',
    };
  }
  const verdict = validateSample(parsed, checks);
  if (!verdict.ok) return verdict;
  const crossProblem = crossCheck.check(verdict.value);
  return crossProblem ? { ok: false, reason: crossProblem } : verdict;
}

/** Where a window reader stands in one day file. */
interface FilePlace {
  /** Just after the last complete line read: the next read starts here. */
  offset: number;
  /** The file's identity, to notice one replaced (or cut shorter) under the same name. */
  dev: number;
  ino: number;
  /** Lines before `offset`, for warnings (null until needed, when the first read started by bisection). */
  linesBefore: number | null;
}

/**
 * The files store's incremental reader. Day files only grow (one O_APPEND write per line), so the
 * bytes past where the previous read stopped are exactly what arrived since, whatever their
 * measurement time: a late round or a spool replaying old samples appends to the day file of their
 * time, and is read the next round like any other line. A file that is shorter than where the reader
 * stopped, or is another file under the same name, makes it read the whole window again. Samples
 * dated after the window's end go to the sink, which holds them until the window reaches them.
 */
class FilesWindowReader implements WindowReader {
  readonly uniqueTimes = false;
  private places: Map<string, FilePlace> | null = null;
  private crossCheck = new HostCrossCheck();

  constructor(
    private readonly store: FilesStore,
    private readonly samplesDir: string,
    private readonly futureToleranceMs: number,
  ) {}

  async read(query: SampleWindowQuery & { full?: boolean; reason?: string }, sink: WindowSink): Promise<WindowRead> {
    const reasons: string[] = [];
    let full = query.full === true || this.places === null;
    if (full) reasons.push(query.reason ?? 'start');
    const places = full ? new Map<string, FilePlace>() : this.places!;
    // A read that throws leaves the reader at a whole read.
    this.places = null;
    if (full) {
      sink.clear();
      this.crossCheck = new HostCrossCheck();
    }
    const counter = new SkipCounter();
    const nowMs = query.nowMs ?? Date.now();
    let items = 0;
    const seen = new Set<string>();
    for (const { file } of await sampleFiles(this.samplesDir, query.fromMs, query.toMs)) {
      seen.add(file);
      let stat: fs.Stats;
      try {
        stat = fs.statSync(file);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      let place = places.get(file);
      if (place && (place.dev !== stat.dev || place.ino !== stat.ino || stat.size < place.offset)) {
        // Not the file we were reading: nothing said what changed in it, so read everything again.
        this.places = null;
        return this.read(
          { ...query, full: true, reason: `${file} was replaced or cut shorter since the previous read` },
          sink,
        );
      }
      if (!place) {
        const sorted = !fs.existsSync(`${file}${UNSORTED_SUFFIX}`);
        const offset = sorted ? seekTo(file, query.fromMs) : 0;
        place = { offset, dev: stat.dev, ino: stat.ino, linesBefore: offset === 0 ? 0 : null };
        places.set(file, place);
      }
      if (stat.size === place.offset) continue;
      const start = place.offset;
      const progress = { completeTo: start };
      let lines = 0;
      for await (const batch of readLineBatches(file, start, progress)) {
        for (const line of batch) {
          // A line still being written (or cut short) is read whole next time, once it ends.
          if (line.unterminated) break;
          lines++;
          if (line.text.length === 0 && !line.oversized) continue;
          const quick = quickTime(line.text);
          if (quick !== null && quick < query.fromMs) continue;
          // Dated beyond the clock-skew tolerance: said, as a whole read says it, and held like any
          // other sample dated after the window's end, for the round its time comes.
          const verdict = sampleOfLine(line, { nowMs: Infinity, futureToleranceMs: 0 }, this.crossCheck);
          if (verdict.ok && verdict.value.timeMs > nowMs + this.futureToleranceMs) {
            place.linesBefore ??= await countLines(file, start);
            counter.add(`${file}:${place.linesBefore + lines}`, futureDated(verdict.value.timeMs, nowMs));
          }
          if (!verdict.ok) {
            place.linesBefore ??= await countLines(file, start);
            counter.add(`${file}:${place.linesBefore + lines}`, verdict.reason);
            continue;
          }
          if (verdict.value.timeMs < query.fromMs) continue;
          sink.sample(verdict.value);
          items++;
        }
      }
      place.offset = progress.completeTo;
      if (place.linesBefore !== null) place.linesBefore += lines;
    }
    for (const file of places.keys()) if (!seen.has(file)) places.delete(file);
    warnSkips(this.store.log, counter, this.store.displayUrl);
    this.places = places;
    return { full, reasons, rereadHosts: [], items, skips: counter.report() };
  }
}

/** Below this size a file is simply read from its start. */
const SEEK_MIN_BYTES = 1024 * 1024;

/**
 * The offset of a line start in a time-ordered file such that every line before it is older than
 * `timeMs`: bisection on the `{"timeMs":` prefix of the first whole line after each probe. Falls back
 * to an earlier offset (never a later one) whenever a probe cannot tell.
 */
function seekTo(file: string, timeMs: number): number {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return 0;
  }
  try {
    const { size } = fs.fstatSync(fd);
    if (size < SEEK_MIN_BYTES) return 0;
    const probe = Buffer.alloc(64 * 1024);
    let low = 0;
    let high = size;
    while (high - low > 256 * 1024) {
      const middle = Math.floor((low + high) / 2);
      const bytesRead = fs.readSync(fd, probe, 0, probe.length, middle);
      const newline = probe.subarray(0, bytesRead).indexOf(10);
      if (newline === -1 || newline + 1 >= bytesRead) return low;
      const lineStart = middle + newline + 1;
      const time = quickTime(probe.toString('utf8', newline + 1, Math.min(bytesRead, newline + 41)));
      if (time === null) return low;
      if (time < timeMs) low = lineStart;
      else high = middle;
    }
    return low;
  } finally {
    fs.closeSync(fd);
  }
}

/** Newlines in the first `bytes` of a file: the line number of what follows, for warnings. */
async function countLines(file: string, bytes: number): Promise<number> {
  const handle = await fsp.open(file, 'r');
  try {
    const buffer = Buffer.alloc(256 * 1024);
    let count = 0;
    for (let position = 0; position < bytes;) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, bytes - position), position);
      if (bytesRead === 0) break;
      for (let index = buffer.indexOf(10, 0); index !== -1 && index < bytesRead; index = buffer.indexOf(10, index + 1))
        count++;
      position += bytesRead;
    }
    return count;
  } finally {
    await handle.close();
  }
}
