/**
 * A monitor for the scale benches (round, headroom, cli): the real Monitor on a real Redis and store,
 * on the cluster's clock, its lease renewed on its own timer as in the daemon, plus the collectors'
 * store on the same clock (so a new minute is stored on time, not announced late).
 */
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/log.ts';
import { Monitor } from '../src/monitor/daemon.ts';
import { MigrationQueue } from '../src/queue/queue.ts';
import { openStore } from '../src/store/index.ts';
import { connectRedis } from '../src/util/redis.ts';
import { tmpDir } from '../test/helpers/tmp.ts';

export function benchMonitor(options: {
  storeUrl: string;
  redisUrl: string;
  prefix: string;
  id: string;
  clock: () => number;
  overrides: Record<string, unknown>;
  /** InfluxDB: the collectors write packed rounds (lbvm_round) beside the series (default true). */
  packRounds?: boolean;
}) {
  const log = createLogger({ level: 'error', format: 'json' });
  const { config } = loadConfig({
    env: {},
    cwd: tmpDir(),
    overrides: {
      'store.url': options.storeUrl,
      'redis.url': options.redisUrl,
      'redis.prefix': options.prefix,
      ...options.overrides,
    },
  });
  const writer = openStore(options.storeUrl, {
    clock: options.clock,
    requestTimeoutMs: 120_000,
    packRounds: options.packRounds,
  });
  const store = openStore(options.storeUrl, { log });
  const redis = connectRedis(options.redisUrl);
  const queue = new MigrationQueue(redis, config);
  const monitor = new Monitor({ config, log, store, redis, queue, id: options.id, clock: options.clock });
  monitor.lease.start();
  return {
    config,
    monitor,
    writer,
    redis,
    queue,
    async close() {
      await monitor.lease.release();
      await queue.close();
      await writer.close();
      await store.close();
      redis.disconnect();
    },
  };
}
