/** Reading JSON-lines files in fixed-size chunks: memory stays bounded whatever the file size. */
import fs from 'node:fs/promises';

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
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  try {
    const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
    let position = startOffset;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let oversized = false;
    let number = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      let start = 0;
      for (;;) {
        const newline = buffer.indexOf(10, start);
        if (newline === -1 || newline >= bytesRead) break;
        number++;
        let text: string;
        if (pendingBytes > 0) {
          pending.push(buffer.subarray(start, newline));
          text = oversized ? '' : Buffer.concat(pending).toString('utf8');
          pending = [];
          pendingBytes = 0;
        } else {
          text = buffer.toString('utf8', start, newline);
        }
        yield { number, text, unterminated: false, oversized };
        oversized = false;
        start = newline + 1;
      }
      if (start < bytesRead) {
        if (pendingBytes + (bytesRead - start) > MAX_LINE_BYTES) {
          oversized = true;
          pending = [];
          pendingBytes = 1;
        } else {
          pending.push(Buffer.from(buffer.subarray(start, bytesRead)));
          pendingBytes += bytesRead - start;
        }
      }
    }
    if (pendingBytes > 0) {
      number++;
      yield { number, text: oversized ? '' : Buffer.concat(pending).toString('utf8'), unterminated: true, oversized };
    }
  } finally {
    await handle.close();
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
