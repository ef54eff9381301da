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
import { readLineBatches, readLines, readTail } from './lines.ts';
import { sampleStream, warnSkips } from './stream.ts';
import { encodeName } from './names.ts';
import type { SampleStore, SampleStream, SampleWindowQuery, WriteReport } from './types.ts';
import {
  DEFAULT_FUTURE_TOLERANCE_MS,
  futureDated,
  HostCrossCheck,
  SkipCounter,
  screenSamples,
  validateEvent,
  validateSample,
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
      for (const day of daysBetween(query.fromMs, query.toMs)) {
        const dayDir = path.join(store.samplesDir, day);
        let names: string[];
        try {
          names = (await fsp.readdir(dayDir)).filter((name) => name.endsWith('.jsonl')).sort();
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw error;
        }
        for (const name of names) {
          if (wantHosts && !wantHosts.has(name)) continue;
          const file = path.join(dayDir, name);
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
              if (line.oversized) {
                await skip(line.number, 'line longer than 1 MiB');
                continue;
              }
              let parsed: unknown;
              try {
                parsed = JSON.parse(line.text);
              } catch {
                await skip(
                  line.number,
                  line.unterminated ? 'truncated line (no newline at the end of the file)' : 'not valid JSON',
                );
                continue;
              }
              const verdict = validateSample(parsed, { nowMs, futureToleranceMs });
              if (!verdict.ok) {
                await skip(line.number, verdict.reason);
                continue;
              }
              const sample = verdict.value;
              const crossProblem = crossCheck.check(sample);
              if (crossProblem) {
                await skip(line.number, crossProblem);
                continue;
              }
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
    }
    return sampleStream(counter, { log: this.options.log, store: this.displayUrl }, produce);
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
