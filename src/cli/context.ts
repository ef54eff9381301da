/**
 * What commands open: the config, a logger, Redis (the queue, the lease, controls, events) and the
 * sample store. Opened lazily, closed together; failures become errors an operator can act on
 * (which URL, what to check), never a stack trace.
 */
import type { Redis } from 'ioredis';
import type { LbvmConfig } from '../config/schema.ts';
import { QueueUnavailable } from '../errors.ts';
import { createLogger, loggerFor, type Logger } from '../log.ts';
import { MigrationQueue } from '../queue/queue.ts';
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

  async queue(): Promise<MigrationQueue> {
    this.queueHandle ??= new MigrationQueue(await this.redis(), this.config);
    return this.queueHandle;
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
