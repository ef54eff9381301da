/**
 * Logging with pino: JSON lines by default (for journald and log shippers), readable lines when
 * stderr is a terminal. Every daemon logs its configuration at start, secrets redacted.
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { LbvmConfig } from './config/schema.ts';
import { redactConfig } from './config/load.ts';

export type { Logger } from 'pino';

// pino-pretty is loaded only for a terminal: a cron job or a service logging JSON skips it.
const require = createRequire(import.meta.url);
const prettyStream = (): typeof import('pino-pretty') => require('pino-pretty') as typeof import('pino-pretty');

export interface LogOptions {
  level?: string;
  format?: 'auto' | 'json' | 'pretty';
  /** Component name carried by every line (`monitor`, `worker`, `agent`, ...). */
  name?: string;
  /** Destination stream; stderr by default so stdout stays clean for `--json` output. */
  destination?: NodeJS.WritableStream;
}

/** Keys whose values never reach a log line. */
export const REDACT_PATHS = ['*.password', '*.token', '*.secret', 'password', 'token', 'authorization', '*.authorization'];

export function createLogger(options: LogOptions = {}): Logger {
  const destination = options.destination ?? process.stderr;
  const isTty = (destination as NodeJS.WriteStream).isTTY === true;
  const format = options.format ?? 'auto';
  const usePretty = format === 'pretty' || (format === 'auto' && isTty);
  const base = {
    level: options.level ?? 'info',
    name: options.name,
    redact: { paths: REDACT_PATHS, censor: '***' },
  };
  if (usePretty) {
    return pino(base, prettyStream()({ colorize: isTty, sync: true, destination, ignore: 'pid,hostname', translateTime: 'HH:MM:ss' }));
  }
  return pino(base, pino.destination({ dest: destinationFd(destination), sync: true }));
}

function destinationFd(stream: NodeJS.WritableStream): number {
  if (stream === process.stdout) return 1;
  return 2;
}

export function loggerFor(config: LbvmConfig, name: string): Logger {
  return createLogger({ level: config.log.level, format: config.log.format, name });
}

/** The first line of every daemon: what it runs with (secrets redacted). */
export function logStartup(log: Logger, config: LbvmConfig, file: string | null): void {
  log.info({ configFile: file ?? '(none: defaults and environment)', config: redactConfig(config) }, 'starting');
}
