/**
 * The monitor end to end, against a real Redis, a real files store, the real collector core and
 * migration worker, and the `sim` driver: an imbalanced cluster becomes balanced; report mode and
 * pause move nothing; a silent host is unknown and receives no VM; too many unknown hosts halt it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { collectRound } from '../../collectors/collect.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { LbvmConfig } from '../../src/config/schema.ts';
import { SimDriver, type SimHost, type SimVm } from '../../src/drivers/sim.ts';
import { createLogger } from '../../src/log.ts';
import { setPaused } from '../../src/monitor/control.ts';
import { Monitor, type RoundRecord } from '../../src/monitor/daemon.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/queue/redis.ts';
import { startMigrationWorker, type MigrationWorker } from '../../src/queue/worker.ts';
import { openStore, Spool, type SampleStore } from '../../src/store/index.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

const GiB = 1024 ** 3;
const log = createLogger({ level: 'error', format: 'json' });

interface Cluster {
  config: LbvmConfig;
  redis: Redis;
  blocking: Redis;
  store: SampleStore;
  driver: SimDriver;
  queue: MigrationQueue;
  worker: MigrationWorker | null;
  dir: string;
  collect(hosts?: string[]): Promise<void>;
  monitor(): Monitor;
  close(): Promise<void>;
}

let server: RedisServer;
let prefixCounter = 0;

/** n hosts of 4 cores and 16 GiB; `vms` all on h1 (badly placed on purpose) unless placed. */
async function cluster(options: { hosts: number; vms: SimVm[]; placement?: Record<string, string>; config?: Record<string, unknown>; worker?: boolean }): Promise<Cluster> {
  const dir = tmpDir('lbvm-monitor-');
  const prefix = `mon${++prefixCounter}`;
  const { config } = loadConfig({
    env: {},
    cwd: dir,
    overrides: {
      'redis.url': server.url,
      'redis.prefix': prefix,
      'store.url': `files:${path.join(dir, 'samples')}`,
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
  const redis = connectRedis(server.url);
  const blocking = connectRedis(server.url, { blocking: true });
  const store = openStore(config.store.url, { log });
  const driver = new SimDriver({ config, redis });
  const hosts: SimHost[] = Array.from({ length: options.hosts }, (_, i) => ({ name: `h${i + 1}`, cpuCores: 4, memBytes: 16 * GiB }));
  await driver.cluster.define(hosts, options.vms, options.placement ?? Object.fromEntries(options.vms.map((vm) => [vm.name, 'h1'])));
  const queue = new MigrationQueue(redis, config);
  const worker = options.worker === false ? null : startMigrationWorker({ config, driver, log, connection: blocking });
  const spool = new Spool({ dir: config.store.spoolDir, maxBytes: config.store.spoolMaxBytes, log });
  const monitors: Monitor[] = [];
  return {
    config, redis, blocking, store, driver, queue, worker, dir,
    async collect(only) {
      for (const host of only ?? hosts.map((h) => h.name)) {
        await collectRound({ node: host, store, spool, driver, stateFile: config.collect.stateFile, logicalCapacity: { cpuCores: 4, memBytes: 16 * GiB }, log, baselineWaitMs: 0 });
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
const vm = (name: string, share: number): SimVm => ({ name, vcpus: 1, memBytes: 2 * GiB, cpuBase: share, cpuSwing: 0, phase: 0, memUse: 0.5 });

async function settle(c: Cluster): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if ((await c.queue.inFlight()).length === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail('migrations did not finish within 10 s');
}

describe('lbvm monitor end to end (real Redis, files store, worker; sim driver)', () => {
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server.stop();
  });

  let c: Cluster | null = null;
  beforeEach(async () => {
    await c?.close();
    c = null;
  });
  after(async () => {
    await c?.close();
  });

  it('balances an imbalanced cluster within a few rounds', async () => {
    c = await cluster({ hosts: 4, vms: Array.from({ length: 8 }, (_, i) => vm(`vm-${i}`, 0.45)) });
    const monitor = c.monitor();
    const records: RoundRecord[] = [];
    for (let round = 0; round < 6; round++) {
      await c.collect();
      records.push(await monitor.round());
      await settle(c);
    }
    await c.collect();
    const placement = await c.driver.cluster.placement();
    const perHost = new Map<string, number>();
    for (const host of Object.values(placement)) perHost.set(host, (perHost.get(host) ?? 0) + 1);
    assert.equal(records[0]!.mode, 'enforce');
    assert.ok(records[0]!.enqueued.length > 0, `the first round enqueued nothing: ${JSON.stringify(records[0]!.notes)}`);
    assert.ok(Math.max(...perHost.values()) <= 3, `still imbalanced: ${JSON.stringify(Object.fromEntries(perHost))}`);
    assert.ok(perHost.size >= 3, `only ${perHost.size} hosts used: ${JSON.stringify(Object.fromEntries(perHost))}`);
    const last = records[records.length - 1]!;
    assert.ok(last.imbalanceBefore! < records[0]!.imbalanceBefore!, `imbalance did not fall: ${records[0]!.imbalanceBefore} → ${last.imbalanceBefore}`);
    for (const record of records) assert.equal(new Set(record.enqueued.map((e) => e.vm)).size, record.enqueued.length, 'a VM enqueued twice in one round');
  });

  it('in report mode plans and records, moves nothing', async () => {
    c = await cluster({ hosts: 3, vms: Array.from({ length: 6 }, (_, i) => vm(`vm-${i}`, 0.6)), config: { 'monitor.mode': 'report' } });
    await c.collect();
    const record = await c.monitor().round();
    assert.equal(record.mode, 'report');
    assert.ok(record.moves.length > 0, 'the plan must still be made');
    assert.deepEqual(record.enqueued, []);
    assert.ok(record.heldBack.every((held) => held.reason === 'REPORT_MODE'));
    assert.match(record.moves[0]!.reason, /h1/);
    assert.equal((await c.queue.jobs()).length, 0);
    const stored = JSON.parse((await c.redis.get(`${c.config.redis.prefix}:monitor:last-round`))!) as RoundRecord;
    assert.equal(stored.roundId, record.roundId);
  });

  it('pause stops new moves from the next round; resume lets them go', async () => {
    c = await cluster({ hosts: 3, vms: Array.from({ length: 6 }, (_, i) => vm(`vm-${i}`, 0.6)), worker: false });
    await c.collect();
    const monitor = c.monitor();
    await setPaused(c.redis, c.config.redis.prefix, true, { by: 'test', nowMs: Date.now(), reason: 'testing' });
    const paused = await monitor.round();
    assert.equal(paused.mode, 'paused');
    assert.deepEqual(paused.enqueued, []);
    assert.ok(paused.notes.some((note) => /paused by test/.test(note)), paused.notes.join('\n'));
    await setPaused(c.redis, c.config.redis.prefix, false, { by: 'test', nowMs: Date.now() });
    const resumed = await monitor.round();
    assert.equal(resumed.mode, 'enforce');
    assert.ok(resumed.enqueued.length > 0);
  });

  it('a host that stops sending samples becomes unknown and receives no VM', async () => {
    c = await cluster({ hosts: 4, vms: Array.from({ length: 8 }, (_, i) => vm(`vm-${i}`, 0.45)), worker: false, config: { 'monitor.maxUnknownHostShare': 0.5 } });
    await c.collect();
    // h2 falls silent: only h1, h3, h4 report for more than 3 intervals.
    await new Promise((resolve) => setTimeout(resolve, 3300));
    await c.collect(['h1', 'h3', 'h4']);
    const record = await c.monitor().round();
    assert.deepEqual(record.inputs.unknownHosts, ['h2']);
    assert.ok(record.enqueued.length > 0, 'the other hosts still get VMs');
    assert.ok(record.enqueued.every((e) => e.to !== 'h2'), `a VM was sent to the silent host: ${JSON.stringify(record.enqueued)}`);
  });

  it('with more than the allowed share of hosts unknown, moves nothing and says why', async () => {
    c = await cluster({ hosts: 4, vms: Array.from({ length: 8 }, (_, i) => vm(`vm-${i}`, 0.45)), worker: false });
    await c.collect();
    await new Promise((resolve) => setTimeout(resolve, 3300));
    await c.collect(['h1', 'h3']);
    const record = await c.monitor().round();
    assert.equal(record.mode, 'halted');
    assert.deepEqual(record.enqueued, []);
    assert.ok(record.notes.some((note) => /moving nothing: 2 of 4 hosts are unknown \(50% > 30%/.test(note)), record.notes.join('\n'));
  });
});
