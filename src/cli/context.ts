/**
 * What commands open: the config, a logger, Redis (the queue, the lease, controls, events) and the
 * sample store. Opened lazily, closed together; failures become errors an operator can act on
 * (which URL, what to check), never a stack trace.
 */
import type { Redis } from 'ioredis';
import type { LbvmConfig } from '../config/schema.ts';
import { QueueUnavailable } from '../errors.ts';
import { createLogger, loggerFor, type Logger } from '../log.ts';
import type { InFlightMigration } from '../model/index.ts';
import { RedisEventLog } from '../queue/events.ts';
import { queueKeys } from '../queue/keys.ts';
import type { MigrationQueue } from '../queue/queue.ts';
import {
  connectRedis,
  describeRedis,
  lastConnectionError,
  redisCertificateProblem,
  redisTargetOf,
} from '../util/redis.ts';
import { openStoreFor, type SampleStore } from '../store/index.ts';
import { loadFor, type CommonOptions } from './run.ts';

export class CliContext {
  private redisClient: Redis | null = null;
  private storeHandle: SampleStore | null = null;
  private queueHandle: MigrationQueue | null = null;
  private queueOpening: Promise<MigrationQueue> | null = null;
  readonly log: Logger;

  constructor(
    readonly config: LbvmConfig,
    readonly configFile: string | null,
    name: string,
    /** Daemons retry Redis forever with backoff; one-shot commands fail fast with a clear message. */
    private readonly mode: 'daemon' | 'command',
  ) {
    this.log =
      mode === 'daemon'
        ? loggerFor(config, name)
        : createLogger({
            level: config.log.level === 'info' ? 'warn' : config.log.level,
            format: config.log.format,
            name,
          });
  }

  static open(
    options: CommonOptions,
    name: string,
    mode: 'daemon' | 'command' = 'command',
    overrides: Record<string, unknown> = {},
  ): CliContext {
    const { config, file } = loadFor(options, overrides);
    return new CliContext(config, file, name, mode);
  }

  /** A connected Redis client; a one-shot command fails with what to check when Redis is away. */
  async redis(): Promise<Redis> {
    if (this.redisClient) return this.redisClient;
    const target = this.config.redis;
    const client = connectRedis(redisTargetOf(this.config), { failFast: this.mode === 'command' });
    if (this.mode === 'command') {
      try {
        await client.ping();
      } catch (error) {
        client.disconnect();
        const certificate = redisCertificateProblem(
          redisTargetOf(this.config),
          lastConnectionError(client) ?? (error as Error),
        );
        if (certificate) throw new QueueUnavailable(`${certificate}.`, error);
        const reason = (error as Error).message;
        const keys = target.sentinels.length > 0 ? 'redis.sentinels, redis.name and redis.url' : 'redis.url';
        const where = `${keys} in ${this.configFile ?? 'the config'} or LBVM_REDIS_URL (password: redis://:PASSWORD@host:6379)`;
        throw new QueueUnavailable(
          /NOAUTH|WRONGPASS|invalid password|invalid username-password/i.test(reason)
            ? `Redis at ${describeRedis(target)} refused authentication (${reason}). Check the password in ${where}.`
            : `Redis at ${describeRedis(target)} is unreachable (${reason}). Check that ` +
                `${target.sentinels.length > 0 ? 'the sentinels and the master run' : 'redis-server runs there'}, and ${where}.`,
          error,
        );
      }
    }
    this.redisClient = client;
    return client;
  }

  /** The migration queue; BullMQ (a tenth of an `lbm` view's start) is loaded on the first call. */
  queue(): Promise<MigrationQueue> {
    this.queueOpening ??= (async () => {
      const { MigrationQueue } = await import('../queue/queue.ts');
      this.queueHandle = new MigrationQueue(await this.redis(), this.config);
      return this.queueHandle;
    })().catch((error: unknown) => {
      this.queueOpening = null;
      throw error;
    });
    return this.queueOpening;
  }

  /** LBVM's event log (the queue's `events`, without BullMQ). */
  async events(): Promise<RedisEventLog> {
    return this.queueHandle?.events ?? new RedisEventLog(await this.redis(), this.config.redis.prefix);
  }

  /**
   * The migrations in flight, as MigrationQueue.inFlight reads them; when BullMQ holds no unfinished
   * job (one EXISTS, the usual answer between moves) the queue, and BullMQ, are not even loaded.
   */
  async inFlight(): Promise<InFlightMigration[]> {
    const redis = await this.redis();
    if (!this.queueHandle && (await redis.exists(...queueKeys(this.config.redis.prefix).bullUnfinished)) === 0)
      return [];
    return (await this.queue()).inFlight();
  }

  store(): SampleStore {
    this.storeHandle ??= openStoreFor(this.config, this.log);
    return this.storeHandle;
  }

  /** Closes everything opened, each step even when an earlier one fails. */
  async close(): Promise<void> {
    const steps: (() => Promise<unknown>)[] = [];
    if (this.queueHandle) steps.push(() => this.queueHandle!.close());
    if (this.storeHandle) steps.push(() => this.storeHandle!.close());
    if (this.redisClient) steps.push(async () => this.redisClient!.quit().catch(() => this.redisClient!.disconnect()));
    for (const step of steps) {
      try {
        await step();
      } catch {
        /* keep closing the rest */
      }
    }
  }
}

/** Opens a one-shot command's context, runs `body`, and closes everything it opened. */
export async function withContext<T>(
  options: CommonOptions,
  name: string,
  body: (context: CliContext) => Promise<T>,
): Promise<T> {
  const context = CliContext.open(options, name);
  try {
    return await body(context);
  } finally {
    await context.close();
  }
}
