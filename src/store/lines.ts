/** Reading JSON-lines files in fixed-size chunks: memory stays bounded whatever the file size. */
import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import { breathe } from '../util/breathe.ts';

const CHUNK_BYTES = 256 * 1024;
/** A line longer than this is corrupt by definition (a sample is a few hundred bytes; a 10 KB name fits). */
export const MAX_LINE_BYTES = 1024 * 1024;

export interface Line {
  /** 1-based line number in the file. */
  number: number;
  text: string;
  /** The line had no newline at the end of the file: a write cut short, or still being written. */
  unterminated: boolean;
  /** The line was longer than MAX_LINE_BYTES and was cut; it is corrupt. */
  oversized: boolean;
}

/** Yields every line of `file`, in order. A missing file yields nothing. */
export async function* readLines(file: string, startOffset = 0): AsyncGenerator<Line> {
  for await (const batch of readLineBatches(file, startOffset)) yield* batch;
}

/**
 * The lines of `file` from `startOffset`, a chunk's worth at a time: each chunk is decoded once and
 * cut at its newlines (a newline byte never occurs inside a UTF-8 sequence), which is several times
 * cheaper than a string and a promise per line when a reader goes through a day of samples.
 */
export async function* readLineBatches(
  file: string,
  startOffset = 0,
  /** Kept up to date with the offset just after the last newline read (where the next complete line starts). */
  progress?: { completeTo: number },
): AsyncGenerator<Line[]> {
  // Synchronous reads: a reader goes through hundreds of small files, and under load each trip
  // through libuv's thread pool costs more than the read itself.
  let fd: number;
  try {
    fd = fsSync.openSync(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let position = startOffset;
    // The start of a line that runs on past the chunk read so far.
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let oversized = false;
    let number = 0;
    for (;;) {
      // The reads are synchronous: let timers (the monitor's lease renewals) run between chunks.
      await breathe();
      const bytesRead = fsSync.readSync(fd, buffer, 0, CHUNK_BYTES, position);
      if (bytesRead === 0) break;
      const chunkStart = position;
      position += bytesRead;
      const batch: Line[] = [];
      let start = 0;
      const firstNewline = buffer.indexOf(10, 0);
      if (firstNewline !== -1 && firstNewline < bytesRead && (pendingBytes > 0 || oversized)) {
        pending.push(buffer.subarray(0, firstNewline));
        number++;
        batch.push({
          number,
          text: oversized ? '' : Buffer.concat(pending).toString('utf8'),
          unterminated: false,
          oversized,
        });
        pending = [];
        pendingBytes = 0;
        oversized = false;
        start = firstNewline + 1;
      }
      const lastNewline = firstNewline === -1 || firstNewline >= bytesRead ? -1 : buffer.lastIndexOf(10, bytesRead - 1);
      if (progress && lastNewline !== -1) progress.completeTo = chunkStart + lastNewline + 1;
      if (lastNewline >= start) {
        const text = buffer.toString('utf8', start, lastNewline);
        for (let from = 0; ;) {
          const newline = text.indexOf('\n', from);
          const end = newline === -1 ? text.length : newline;
          number++;
          batch.push({ number, text: text.slice(from, end), unterminated: false, oversized: false });
          if (newline === -1) break;
          from = newline + 1;
        }
        start = lastNewline + 1;
      }
      if (start < bytesRead) {
        if (oversized || pendingBytes + (bytesRead - start) > MAX_LINE_BYTES) {
          oversized = true;
          pending = [];
          pendingBytes = 0;
        } else {
          pending.push(Buffer.from(buffer.subarray(start, bytesRead)));
          pendingBytes += bytesRead - start;
        }
      }
      if (batch.length > 0) yield batch;
    }
    if (pendingBytes > 0 || oversized) {
      number++;
      yield [{ number, text: oversized ? '' : Buffer.concat(pending).toString('utf8'), unterminated: true, oversized }];
    }
  } finally {
    fsSync.closeSync(fd);
  }
}

/** The last `bytes` of a file as complete lines (the first, partial one dropped), with their line numbers unknown. */
export async function readTail(file: string, bytes: number): Promise<string[]> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const start = Math.max(0, size - bytes);
    const buffer = Buffer.allocUnsafe(size - start);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    const lines = buffer.toString('utf8', 0, bytesRead).split('\n');
    if (start > 0) lines.shift();
    return lines.filter((line) => line.length > 0);
  } finally {
    await handle.close();
  }
}
