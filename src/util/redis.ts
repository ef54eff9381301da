/**
 * Redis connections for every part (the queue, the lease, the limits, the events, the sim driver,
 * `lbm`), and how their trouble is logged. `redis://` and `rediss://` (TLS) URLs with a password
 * (`redis://:pw@host:6379/0` or `redis://user:pw@...`) are read by ioredis itself.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from './address.ts';

export interface ConnectOptions {
  /**
   * BullMQ workers need `maxRetriesPerRequest: null` (commands wait for a reconnect instead of
   * failing); plain clients fail a command after a few retries so a caller can report it.
   */
  blocking?: boolean;
  /** Give up connecting at once (for a one-shot CLI call) instead of retrying with backoff. */
  failFast?: boolean;
}

export function connectRedis(url: string, options: ConnectOptions = {}): Redis {
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: options.blocking ? null : 3,
    enableReadyCheck: true,
    // Reconnect with backoff up to 5 s between tries; a Redis that is away for a minute is waited for.
    retryStrategy: options.failFast ? () => null : (times) => Math.min(200 * 2 ** Math.min(times, 5), 5000),
    lazyConnect: false,
  };
  const client = new Redis(url, redisOptions);
  // ioredis emits 'error' on every failed reconnect; callers attach their own logger. Without a
  // listener Node would crash the process on the first one.
  client.on('error', () => {});
  return client;
}

/** Is this error Redis being unreachable (refused, reset, timed out, closed), rather than a bug? */
export function isConnectionError(error: Error & { code?: string }): boolean {
  return /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EPIPE|EAI_AGAIN)$/.test(error.code ?? '') || /Connection is closed|connect E[A-Z]+|getaddrinfo|Stream isn't writeable|read ECONNRESET/.test(error.message);
}

/** Logs connection trouble once per outage (not once per retry) and once on recovery. */
export function logConnectionTrouble(client: Redis, log: { warn: (o: object, m: string) => void; info: (o: object, m: string) => void }, url: string): void {
  let down = false;
  client.on('error', (error: Error) => {
    if (down) return;
    down = true;
    log.warn({ redis: redactUrl(url), error: error.message }, 'Redis unreachable; retrying with backoff');
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    log.info({ redis: redactUrl(url) }, 'Redis reachable again');
  });
}

