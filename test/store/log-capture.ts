/** A real pino logger whose lines are kept in memory, so tests can read what an operator would see. */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { REDACT_PATHS } from '../../src/log.ts';

export interface CapturedLog {
  log: Logger;
  /** Every line written so far, parsed. */
  lines(): { level: number; msg: string; [key: string]: unknown }[];
  /** Every line as written (to search for secrets). */
  text(): string;
  warnings(): { level: number; msg: string; [key: string]: unknown }[];
}

export function captureLog(): CapturedLog {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const log = pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '***' } }, stream);
  const lines = () =>
    chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { level: number; msg: string });
  return { log, lines, text: () => chunks.join(''), warnings: () => lines().filter((line) => line.level === 40) };
}
