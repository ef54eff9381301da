/**
 * The start-up check that Redis is set up the way BullMQ needs it (no eviction, persistence on).
 * Connections themselves are made by src/util/redis.ts.
 */
import type { Redis } from 'ioredis';
import { QueueUnavailable } from '../errors.ts';
import { describeRedis, lastConnectionError, type RedisTarget } from '../util/redis.ts';

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
export async function assertRedisFitForQueue(client: Redis, target: string | RedisTarget): Promise<RedisSettings> {
  const where = describeRedis(target);
  let settings: RedisSettings;
  try {
    settings = await readRedisSettings(client);
  } catch (error) {
    // The connection's own error (a refused connection, a TLS failure) says more than ioredis's
    // "Reached the max retries per request limit" for the command that gave up.
    const reason = (lastConnectionError(client) ?? (error as Error)).message.replace(/\.+$/, '');
    throw new QueueUnavailable(
      `Redis at ${where} cannot be reached: ${reason}. Start Redis or fix redis.url ` +
        `(LBVM_REDIS_URL)${typeof target === 'string' || !target.sentinels?.length ? '' : ', redis.sentinels and redis.name'}.`,
      error,
    );
  }
  const problems: string[] = [];
  if (settings.maxmemoryPolicy !== null && settings.maxmemoryPolicy !== 'noeviction') {
    problems.push(
      `Redis at ${where} has maxmemory-policy ${settings.maxmemoryPolicy}; BullMQ needs maxmemory-policy noeviction (an evicted job ` +
        `is a lost or repeated migration). Set "maxmemory-policy noeviction" in redis.conf or run CONFIG SET maxmemory-policy noeviction.`,
    );
  }
  const rdbOn = settings.save !== null && settings.save.trim() !== '';
  if (!settings.aofEnabled && !rdbOn) {
    problems.push(
      `Redis at ${where} has persistence off (appendonly no${settings.save === null ? '' : ', save ""'}); a restart ` +
        `would forget queued migrations and held slots. Set "appendonly yes" in redis.conf or run CONFIG SET appendonly yes.`,
    );
  }
  if (problems.length > 0) throw new QueueUnavailable(problems.join('\n'));
  return settings;
}
