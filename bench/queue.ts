/**
 * `npm run bench -- queue`: 1,000 sim migrations enqueued at once across 50 hosts, with a limit of
 * 2 migrations per source host and 2 per destination host, run by 4 workers (25 jobs each at once,
 * already running when the burst arrives) on a real Redis. Reports the time from enqueue to start (median and p99, from the events) and
 * the most migrations any host ever had at once (from the event stream), which must stay <= 2.
 * Each simulated migration copies 256 MiB at 2 GiB/s (125 ms).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../src/config/load.ts';
import { SimDriver } from '../src/drivers/sim.ts';
import { createLogger } from '../src/log.ts';
import type { LbvmEvent } from '../src/model/index.ts';
import { MigrationQueue } from '../src/queue/queue.ts';
import { connectRedis } from '../src/util/redis.ts';
import { startMigrationWorker } from '../src/queue/worker.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { tmpDir } from '../test/helpers/tmp.ts';
import { peakConcurrency } from '../test/queue/support.ts';

const HOSTS = 50;
const JOBS = 1000;
const PER_HOST = 2;
const WORKERS = 4;
const MIB = 1024 * 1024;

const redis = await startRedis();
const { config } = loadConfig({
  env: {},
  cwd: tmpDir(),
  overrides: {
    'redis.url': redis.url,
    'redis.prefix': 'bench',
    'limits.migrationsPerSourceHost': PER_HOST,
    'limits.migrationsPerDestinationHost': PER_HOST,
    'limits.migrationsInCluster': HOSTS * PER_HOST,
    'migration.bandwidthBytesPerSec': 2048 * MIB,
    'migration.slotWait': '100ms',
    'migration.attempts': 1,
  },
});
const client = connectRedis(redis.url, { blocking: true });
const driver = new SimDriver({ config, redis: client });
const hosts = Array.from({ length: HOSTS }, (_, index) => `h${String(index).padStart(2, '0')}`);
const placement: Record<string, string> = {};
for (let index = 0; index < JOBS; index++) placement[`vm${index}`] = hosts[index % HOSTS]!;
await driver.cluster.define(
  hosts.map((name) => ({ name, cpuCores: 32, memBytes: 256 * 1024 * MIB })),
  Object.keys(placement).map((name) => ({
    name,
    vcpus: 2,
    memBytes: 256 * MIB,
    cpuBase: 0.2,
    cpuSwing: 0.1,
    phase: 0,
    memUse: 0.5,
  })),
  placement,
);
const queue = new MigrationQueue(client, config);
const log = createLogger({ level: 'error', format: 'json' });

// Workers are up and idle when the burst arrives, as in a running cluster.
const workers = Array.from({ length: WORKERS }, () =>
  startMigrationWorker({
    config,
    driver,
    log,
    connection: connectRedis(redis.url, { blocking: true }),
    concurrency: 25,
  }),
);
await sleep(500);
const enqueueStartMs = Date.now();
// Seeded destinations: a different host, spread (index*7+3 steps away).
const results = await Promise.all(
  Array.from({ length: JOBS }, (_, index) => {
    const from = hosts[index % HOSTS]!;
    const to = hosts[((index % HOSTS) + 1 + ((index * 7 + 3) % (HOSTS - 1))) % HOSTS]!;
    return queue.enqueue({
      vm: `vm${index}`,
      from,
      to,
      reason: 'bench',
      planId: 'bench-1',
      requestedBy: 'monitor',
      fencingToken: null,
      mode: 'live',
    });
  }),
);
const enqueueMs = Date.now() - enqueueStartMs;
if (results.some((result) => result.status !== 'queued')) throw new Error('some jobs were not queued');
process.stderr.write(`enqueued ${JOBS} jobs in ${enqueueMs} ms (${WORKERS} workers running)\n`);
const runStartMs = enqueueStartMs;
let events: LbvmEvent[] = [];
for (;;) {
  events = (await queue.events.read({ count: 1_000_000 })).map((stored) => stored.event);
  const done = events.filter(
    (event) => event.type === 'migration.finished' || event.type === 'migration.failed',
  ).length;
  if (done >= JOBS) break;
  if (Date.now() - runStartMs > 600_000) throw new Error(`only ${done} of ${JOBS} finished in 10 minutes`);
  await sleep(250);
}
const wallMs = Date.now() - runStartMs;
await Promise.all(workers.map((worker) => worker.close()));

const queuedAt = new Map<string, number>();
const startedAt = new Map<string, number>();
for (const event of events) {
  if (event.type === 'migration.queued') queuedAt.set(event.jobId!, event.timeMs);
  if (event.type === 'migration.started' && !startedAt.has(event.jobId!)) startedAt.set(event.jobId!, event.timeMs);
}
const waits = [...startedAt.entries()].map(([jobId, started]) => started - queuedAt.get(jobId)!).sort((x, y) => x - y);
const quantile = (q: number) => waits[Math.min(waits.length - 1, Math.floor(q * waits.length))]!;

// Replay the stream: the most migrations any host had at once, as source and as destination
// (the same replay the queue tests assert with).
const peak = peakConcurrency(events);
const finalPlacement = await driver.cluster.placement();
const failed = events.filter((event) => event.type === 'migration.failed').length;

const result = {
  benchmark: 'queue',
  jobs: JOBS,
  hosts: HOSTS,
  perHostLimit: PER_HOST,
  workers: WORKERS,
  workerConcurrency: 25,
  simMigrationMs: 125,
  enqueueAllMs: enqueueMs,
  wallMs,
  migrationsPerSec: Number((JOBS / (wallMs / 1000)).toFixed(1)),
  enqueueToStartMs: { median: quantile(0.5), p99: quantile(0.99), max: waits.at(-1) },
  peakPerSourceHost: peak.source,
  peakPerDestinationHost: peak.destination,
  peakCluster: peak.cluster,
  limitNeverExceeded: peak.source <= PER_HOST && peak.destination <= PER_HOST,
  failed,
  moved: Object.entries(finalPlacement).filter(([vm, host]) => host !== placement[vm]).length,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
await queue.close();
client.disconnect();
await redis.stop();
process.exit(0);
