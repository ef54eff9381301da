/** Shared set-up of the queue tests: a config pointing at a test Redis, a sim cluster, workers. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { loadConfig } from '../../src/config/load.ts';
import type { LbvmConfig } from '../../src/config/schema.ts';
import { SimDriver, type SimVm } from '../../src/drivers/sim.ts';
import { createLogger } from '../../src/log.ts';
import type { LbvmEvent, MigrationJobData } from '../../src/model/index.ts';
import { RedisEventLog } from '../../src/queue/events.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { startMigrationWorker, type MigrationWorker } from '../../src/queue/worker.ts';
import { tmpDir } from '../helpers/tmp.ts';

let counter = 0;
/** A unique key prefix per test, so tests on one Redis never see each other's keys. */
export function uniquePrefix(): string {
  return `t${process.pid}x${++counter}`;
}

export function testConfig(redisUrl: string, overrides: Record<string, unknown> = {}): LbvmConfig {
  return loadConfig({
    env: {},
    cwd: tmpDir(),
    overrides: {
      'redis.url': redisUrl,
      'redis.prefix': uniquePrefix(),
      'log.level': 'warn',
      'log.format': 'json',
      ...overrides,
    },
  }).config;
}

/** The config as environment variables, for spawned `lbvm` processes. */
export function configEnv(config: LbvmConfig): Record<string, string> {
  return {
    LBVM_REDIS_URL: config.redis.url,
    LBVM_REDIS_PREFIX: config.redis.prefix,
    ...(config.redis.sentinels.length > 0
      ? { LBVM_REDIS_SENTINELS: config.redis.sentinels.join(','), LBVM_REDIS_NAME: config.redis.name }
      : {}),
    ...(config.redis.sentinelPassword ? { LBVM_REDIS_SENTINEL_PASSWORD: config.redis.sentinelPassword } : {}),
    LBVM_LIMITS_MIGRATIONS_PER_SOURCE_HOST: String(config.limits.migrationsPerSourceHost),
    LBVM_LIMITS_MIGRATIONS_PER_DESTINATION_HOST: String(config.limits.migrationsPerDestinationHost),
    LBVM_LIMITS_MIGRATIONS_IN_CLUSTER: String(config.limits.migrationsInCluster),
    LBVM_MIGRATION_LOCK_DURATION: String(config.migration.lockDuration),
    LBVM_MIGRATION_SLOT_WAIT: String(config.migration.slotWait),
    LBVM_MIGRATION_BACKOFF: String(config.migration.backoff),
    LBVM_MIGRATION_ATTEMPTS: String(config.migration.attempts),
    LBVM_MIGRATION_BANDWIDTH_BYTES_PER_SEC: String(config.migration.bandwidthBytesPerSec),
    LBVM_SIM_SPEEDUP: String(config.sim.speedup),
    LBVM_COLLECT_DRIVER: 'sim',
    LBVM_LOG_FORMAT: 'json',
    LBVM_LOG_LEVEL: 'info',
  };
}

export const MIB = 1024 * 1024;

export function simVm(name: string, memBytes = 64 * MIB): SimVm {
  return { name, vcpus: 1, memBytes, cpuBase: 0.2, cpuSwing: 0.1, phase: 0, memUse: 0.5 };
}

/** A sim cluster of `hosts` hosts and the given VMs placed as told. */
export async function defineCluster(
  redis: Redis,
  config: LbvmConfig,
  hosts: string[],
  placement: Record<string, string>,
  memBytes = 64 * MIB,
): Promise<SimDriver> {
  const driver = new SimDriver({ config, redis });
  await driver.cluster.define(
    hosts.map((name) => ({ name, cpuCores: 8, memBytes: 64 * 1024 * MIB })),
    Object.keys(placement).map((vm) => simVm(vm, memBytes)),
    placement,
  );
  return driver;
}

export interface QueueRig {
  config: LbvmConfig;
  redis: Redis;
  queue: MigrationQueue;
  events: RedisEventLog;
  driver: SimDriver;
  workers: MigrationWorker[];
  startWorker(concurrency?: number): MigrationWorker;
  close(): Promise<void>;
}

export async function queueRig(
  redisUrl: string,
  hosts: string[],
  placement: Record<string, string>,
  overrides: Record<string, unknown> = {},
  memBytes = 64 * MIB,
): Promise<QueueRig> {
  const config = testConfig(redisUrl, overrides);
  // config.redis: with redis.sentinels in the overrides, the rig follows the master too.
  const redis = connectRedis(config.redis, { blocking: true });
  const driver = await defineCluster(redis, config, hosts, placement, memBytes);
  const queue = new MigrationQueue(redis, config);
  const log = createLogger({ level: 'warn', format: 'json' });
  const connections: Redis[] = [];
  const rig: QueueRig = {
    config,
    redis,
    queue,
    events: queue.events,
    driver,
    workers: [],
    startWorker(concurrency) {
      const connection = connectRedis(config.redis, { blocking: true });
      const worker = startMigrationWorker({ config, driver, log, connection, concurrency });
      rig.workers.push(worker);
      connections.push(connection);
      return worker;
    },
    async close() {
      await Promise.all(rig.workers.map((worker) => worker.close(true).catch(() => {})));
      for (const connection of connections) connection.disconnect();
      await queue.close().catch(() => {});
      redis.disconnect();
    },
  };
  return rig;
}

export function job(vm: string, from: string, to: string, extra: Partial<MigrationJobData> = {}): MigrationJobData {
  return {
    vm,
    from,
    to,
    reason: 'test',
    planId: 'plan-1',
    requestedBy: 'monitor',
    fencingToken: null,
    mode: 'live',
    ...extra,
  };
}

export async function eventsOf(rig: { events: RedisEventLog }, type?: LbvmEvent['type']): Promise<LbvmEvent[]> {
  const all = (await rig.events.read()).map((stored) => stored.event);
  return type ? all.filter((event) => event.type === type) : all;
}

/** Waits until `check` holds, failing with `describe()` after `timeoutMs`. */
export async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 30_000,
  describe?: () => Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${describe ? `\n${await describe()}` : ''}`);
    await sleep(100);
  }
}

/** Most migrations running at once on any single host (by source and by destination), from events. */
export function peakConcurrency(events: LbvmEvent[]): { source: number; destination: number; cluster: number } {
  const running = new Map<string, LbvmEvent>();
  const peak = { source: 0, destination: 0, cluster: 0 };
  for (const event of events) {
    const key = `${event.jobId}`;
    if (event.type === 'migration.started') running.set(key, event);
    else if (event.type === 'migration.finished' || event.type === 'migration.failed') running.delete(key);
    else continue;
    const bySource = new Map<string, number>();
    const byDestination = new Map<string, number>();
    for (const active of running.values()) {
      bySource.set(active.from!, (bySource.get(active.from!) ?? 0) + 1);
      byDestination.set(active.to!, (byDestination.get(active.to!) ?? 0) + 1);
    }
    peak.source = Math.max(peak.source, ...bySource.values(), 0);
    peak.destination = Math.max(peak.destination, ...byDestination.values(), 0);
    peak.cluster = Math.max(peak.cluster, running.size);
  }
  return peak;
}
