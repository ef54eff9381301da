/**
 * Redis connections for the queue, the limits, the events and the sim driver, and the start-up
 * check that Redis is set up the way BullMQ needs it. `redis://` and `rediss://` (TLS) URLs with
 * a password (`redis://:pw@host:6379/0` or `redis://user:pw@...`) are read by ioredis itself.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { QueueUnavailable } from '../errors.ts';
import { redactUrl } from '../config/load.ts';

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

export interface RedisSettings {
  maxmemoryPolicy: string | null;
  aofEnabled: boolean;
  /** The `save` setting (RDB snapshots), or null when CONFIG is not allowed. */
  save: string | null;
}

export async function readRedisSettings(client: Redis): Promise<RedisSettings> {
  const info = (await client.info('memory')) + (await client.info('persistence'));
  const field = (name: string) => info.match(new RegExp(`^${name}:(.*)\\r?$`, 'm'))?.[1]?.trim() ?? null;
  let save: string | null = null;
  try {
    const reply = (await client.config('GET', 'save')) as string[];
    save = reply[1] ?? '';
  } catch {
    save = null; // managed Redis often forbids CONFIG; the AOF flag from INFO still tells.
  }
  return { maxmemoryPolicy: field('maxmemory_policy'), aofEnabled: field('aof_enabled') === '1', save };
}

/**
 * BullMQ loses jobs silently when Redis evicts keys, and a restart without persistence forgets
 * every queued migration and every held slot. Refuse to run on such a Redis, naming the setting.
 */
export async function assertRedisFitForQueue(client: Redis, url: string): Promise<RedisSettings> {
  let settings: RedisSettings;
  try {
    settings = await readRedisSettings(client);
  } catch (error) {
    throw new QueueUnavailable(`Redis at ${redactUrl(url)} cannot be reached: ${(error as Error).message}. Start Redis or fix redis.url (LBVM_REDIS_URL).`, error);
  }
  const problems: string[] = [];
  if (settings.maxmemoryPolicy !== null && settings.maxmemoryPolicy !== 'noeviction') {
    problems.push(
      `Redis at ${redactUrl(url)} has maxmemory-policy ${settings.maxmemoryPolicy}; BullMQ needs maxmemory-policy noeviction (an evicted job is a lost or repeated migration). Set "maxmemory-policy noeviction" in redis.conf or run CONFIG SET maxmemory-policy noeviction.`,
    );
  }
  const rdbOn = settings.save !== null && settings.save.trim() !== '';
  if (!settings.aofEnabled && !rdbOn) {
    problems.push(
      `Redis at ${redactUrl(url)} has persistence off (appendonly no${settings.save === null ? '' : ', save ""'}); a restart would forget queued migrations and held slots. Set "appendonly yes" in redis.conf or run CONFIG SET appendonly yes.`,
    );
  }
  if (problems.length > 0) throw new QueueUnavailable(problems.join('\n'));
  return settings;
}
