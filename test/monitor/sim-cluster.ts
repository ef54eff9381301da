/**
 * A small cluster for monitor-level tests: the `sim` driver's hosts and VMs, the real collector core
 * writing into a real store (a files store in a temporary folder unless `storeUrl` is given), the real
 * queue and worker on a real Redis, and real Monitor instances. Used by test/monitor/ and test/faults/.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before } from 'node:test';
import type { Redis } from 'ioredis';
import { collectRound } from '../../collectors/collect.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { LbvmConfig } from '../../src/config/schema.ts';
import { SimDriver, type SimHost, type SimVm } from '../../src/drivers/sim.ts';
import { createLogger, type Logger } from '../../src/log.ts';
import { Monitor } from '../../src/monitor/daemon.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { startMigrationWorker, type MigrationWorker } from '../../src/queue/worker.ts';
import { openStore, Spool, type SampleStore } from '../../src/store/index.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

export const GiB = 1024 ** 3;
const quiet = createLogger({ level: 'error', format: 'json' });

export interface SimCluster {
  config: LbvmConfig;
  redis: Redis;
  blocking: Redis;
  store: SampleStore;
  driver: SimDriver;
  queue: MigrationQueue;
  worker: MigrationWorker | null;
  dir: string;
  hostNames: string[];
  /** One collect round on each host (or on `hosts` only), as `lbvm collect` on a logical host of 4 cores, 16 GiB. */
  collect(hosts?: string[]): Promise<void>;
  monitor(): Monitor;
  close(): Promise<void>;
}

export interface SimClusterOptions {
  /** How many hosts (h1, h2, ...), or their names. */
  hosts: number | string[];
  vms: SimVm[];
  /** VM → host; all on the first host (badly placed on purpose) when absent. */
  placement?: Record<string, string>;
  /** Config overrides by dotted key. */
  config?: Record<string, unknown>;
  /** Start a migration worker (default true). */
  worker?: boolean;
  /** The store (default: a files store in the cluster's folder). */
  storeUrl?: string;
  /** Where the store, the collectors and the monitor log (default: errors only). */
  log?: Logger;
}

let prefixCounter = 0;

export async function simCluster(redisUrl: string, options: SimClusterOptions): Promise<SimCluster> {
  const dir = tmpDir('lbvm-monitor-');
  const prefix = `mon${++prefixCounter}`;
  const log = options.log ?? quiet;
  const { config } = loadConfig({
    env: {},
    cwd: dir,
    overrides: {
      'redis.url': redisUrl,
      'redis.prefix': prefix,
      'store.url': options.storeUrl ?? `files:${path.join(dir, 'samples')}`,
      'store.spoolDir': path.join(dir, 'spool'),
      'collect.stateFile': path.join(dir, 'state.json'),
      'monitor.interval': '1s',
      'monitor.window': '30s',
      'monitor.lease': '2s',
      'monitor.listen': '127.0.0.1:0',
      'limits.cooldown': '1s',
      'limits.movesPerRound': 4,
      'limits.migrationsPerSourceHost': 4,
      'limits.migrationsPerDestinationHost': 2,
      'limits.migrationsInCluster': 8,
      'migration.slotWait': '200ms',
      'migration.backoff': '200ms',
      'sim.speedup': 200,
      ...options.config,
    },
  });
  const redis = connectRedis(redisUrl);
  const blocking = connectRedis(redisUrl, { blocking: true });
  const store = openStore(config.store.url, { log });
  const driver = new SimDriver({ config, redis });
  const names =
    typeof options.hosts === 'number' ? Array.from({ length: options.hosts }, (_, i) => `h${i + 1}`) : options.hosts;
  const hosts: SimHost[] = names.map((name) => ({ name, cpuCores: 4, memBytes: 16 * GiB }));
  await driver.cluster.define(
    hosts,
    options.vms,
    options.placement ?? Object.fromEntries(options.vms.map((vm) => [vm.name, names[0]!])),
  );
  const queue = new MigrationQueue(redis, config);
  const worker = options.worker === false ? null : startMigrationWorker({ config, driver, log, connection: blocking });
  const spool = new Spool({ dir: config.store.spoolDir, maxBytes: config.store.spoolMaxBytes, log });
  const monitors: Monitor[] = [];
  return {
    config,
    redis,
    blocking,
    store,
    driver,
    queue,
    worker,
    dir,
    hostNames: names,
    async collect(only) {
      for (const host of only ?? names) {
        await collectRound({
          node: host,
          store,
          spool,
          driver,
          stateFile: config.collect.stateFile,
          logicalCapacity: { cpuCores: 4, memBytes: 16 * GiB },
          log,
          baselineWaitMs: 0,
        });
      }
    },
    monitor() {
      const monitor = new Monitor({ config, log, store, redis, queue, id: `test-${monitors.length}` });
      monitors.push(monitor);
      return monitor;
    },
    async close() {
      for (const monitor of monitors) await monitor.lease.release();
      await worker?.close(true);
      await queue.close();
      await store.close();
      redis.disconnect();
      blocking.disconnect();
    },
  };
}

/** A VM of 1 vCPU busy at `share` (flat), 2 GiB. */
export const simVm = (name: string, share: number): SimVm => ({
  name,
  vcpus: 1,
  memBytes: 2 * GiB,
  cpuBase: share,
  cpuSwing: 0,
  phase: 0,
  memUse: 0.5,
});

/** Waits until no migration is queued or running (10 s at most). */
export async function settle(cluster: SimCluster): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await cluster.queue.inFlight()).length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail('migrations did not finish within 10 s');
}

/**
 * For a describe block: a real Redis started before its tests; the clusters made through `cluster()`
 * closed and Redis stopped after them.
 */
export function simClusterFixture(): { cluster(options: SimClusterOptions): Promise<SimCluster>; redisUrl(): string } {
  let server: RedisServer | undefined;
  const made: SimCluster[] = [];
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    for (const cluster of made) await cluster.close();
    await server?.stop();
  });
  return {
    async cluster(options) {
      const cluster = await simCluster(server!.url, options);
      made.push(cluster);
      return cluster;
    },
    redisUrl: () => server!.url,
  };
}
