/**
 * Logging with pino: JSON lines by default (for journald and log shippers), readable lines when
 * stderr is a terminal. Every daemon logs its configuration at start, secrets redacted.
 */
import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import type { LbvmConfig } from './config/schema.ts';

export type { Logger } from 'pino';

// pino is loaded on the first line a logger writes: a cron `lbvm collect` round that has nothing to
// warn about never loads it (a fifth of the round's CPU). pino-pretty is loaded only for a terminal.
const require = createRequire(import.meta.url);
const loadPino = (): typeof import('pino') => require('pino') as typeof import('pino');
const prettyStream = (): typeof import('pino-pretty') => require('pino-pretty') as typeof import('pino-pretty');

const LEVEL_VALUES: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };

export interface LogOptions {
  level?: string;
  format?: 'auto' | 'json' | 'pretty';
  /** Component name carried by every line (`monitor`, `worker`, `agent`, ...). */
  name?: string;
  /** Destination stream; stderr by default so stdout stays clean for `--json` output. */
  destination?: NodeJS.WritableStream;
}

/** Keys whose values never reach a log line. */
export const REDACT_PATHS = [
  '*.password',
  '*.token',
  '*.secret',
  'password',
  'token',
  'authorization',
  '*.authorization',
];

export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? 'info';
  if (level !== 'silent' && LEVEL_VALUES[level] === undefined) return pinoLogger(options); // pino names the bad level
  return lazyLogger(level, () => pinoLogger(options));
}

/**
 * A Logger that makes its pino logger on the first line at an enabled level (or the first use of
 * anything but the level methods). Children made before that are lazy too.
 */
function lazyLogger(level: string, make: () => Logger): Logger {
  let real: Logger | null = null;
  const get = (): Logger => (real ??= make());
  const threshold = level === 'silent' ? Infinity : LEVEL_VALUES[level]!;
  const lazy: Record<string, unknown> = {
    isLevelEnabled: (name: string) =>
      real ? real.isLevelEnabled(name) : (LEVEL_VALUES[name] ?? -Infinity) >= threshold,
    child: (bindings: Record<string, unknown>, childOptions?: object) =>
      real ? real.child(bindings, childOptions) : lazyLogger(level, () => get().child(bindings, childOptions)),
    flush: (callback?: (error?: Error) => void) => (real ? real.flush(callback) : callback?.()),
  };
  Object.defineProperty(lazy, 'level', {
    get: () => (real ? real.level : level),
    set: (value: string) => {
      get().level = value;
    },
  });
  for (const [name, value] of Object.entries(LEVEL_VALUES)) {
    lazy[name] = (...args: unknown[]) => {
      if (real || value >= threshold) (get()[name as 'info'] as (...line: unknown[]) => void)(...args);
    };
  }
  lazy.silent = () => {};
  // Anything else (bindings(), setBindings(), levels, ...) is the real logger's.
  return new Proxy(lazy, {
    get: (target, key, receiver) =>
      typeof key === 'string' && !(key in target) ? Reflect.get(get(), key) : Reflect.get(target, key, receiver),
  }) as unknown as Logger;
}

function pinoLogger(options: LogOptions): Logger {
  const { pino } = loadPino();
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
    return pino(
      base,
      prettyStream()({ colorize: isTty, sync: true, destination, ignore: 'pid,hostname', translateTime: 'HH:MM:ss' }),
    );
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
