/**
 * Faults around a real live migration between two agents: the worker SIGKILLed mid-migration
 * (the guest ends in exactly one place, nothing migrates twice), and the destination agent killed
 * mid-migration (the guest keeps running on its source, the job fails with the reason, the
 * destination's leftovers are gone once it restarts).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import { createLogger } from '../../src/log.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/queue/redis.ts';
import { qemuPids, qemuProcessesOf, startAgent, testGuestSpec, ticks, waitBooted, type TestAgent } from '../helpers/agent.ts';
import { cleanEnv, ROOT } from '../helpers/cli.ts';
import { spawnTracked, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { eventsOf, job, testConfig, until } from '../queue/support.ts';

const GUEST = 'db-1';
const MIB = 1024 * 1024;

describe('faults during a live migration (real QEMU guests, lbvm worker processes)', () => {
  let redis: RedisServer;
  let a: TestAgent;
  let b: TestAgent;
  let driver: QemuDriver;
  const workers: Tracked[] = [];
  const log = createLogger({ level: 'warn', format: 'json' });

  before(async () => {
    [redis, a, b] = await Promise.all([startRedis(), startAgent('host-a'), startAgent('host-b')]);
    driver = new QemuDriver(new Map([[a.host, a.client], [b.host, b.client]]), log);
    await a.client.start(testGuestSpec(GUEST, { memPercent: 40, dirtyPercent: 2 }));
    await waitBooted(a, GUEST);
  });
  after(async () => {
    await Promise.all(workers.map((worker) => worker.stop(2000)));
    for (const agent of [a, b]) {
      if (!agent) continue;
      for (const guest of (await agent.client.list().catch(() => ({ guests: [] }))).guests) await agent.client.stop(guest.name).catch(() => {});
      await agent.stop();
    }
    await redis?.stop();
  });

  function setUp(bandwidthBytesPerSec: number, attempts = 3) {
    const config = testConfig(redis.url, { 'migration.lockDuration': '3s', 'migration.slotWait': '200ms', 'migration.bandwidthBytesPerSec': bandwidthBytesPerSec, 'migration.attempts': attempts, 'migration.backoff': '500ms' });
    const redisClient = connectRedis(redis.url);
    const queue = new MigrationQueue(redisClient, config);
    const env = cleanEnv({
      LBVM_REDIS_URL: redis.url,
      LBVM_REDIS_PREFIX: config.redis.prefix,
      LBVM_COLLECT_DRIVER: 'qemu',
      LBVM_HOSTS: JSON.stringify({ [a.host]: { cpuCores: 2, memBytes: '4GiB', agent: a.address }, [b.host]: { cpuCores: 2, memBytes: '4GiB', agent: b.address } }),
      LBVM_AGENT_TOKEN: a.token,
      LBVM_MIGRATION_LOCK_DURATION: '3s',
      LBVM_MIGRATION_SLOT_WAIT: '200ms',
      LBVM_MIGRATION_BANDWIDTH_BYTES_PER_SEC: String(bandwidthBytesPerSec),
      LBVM_MIGRATION_ATTEMPTS: String(attempts),
      LBVM_MIGRATION_BACKOFF: '500ms',
      LBVM_LOG_FORMAT: 'json',
    });
    const spawnWorker = () => {
      const worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker'], { env, cwd: tmpDir() });
      workers.push(worker);
      return worker;
    };
    return { config, queue, events: queue.events, spawnWorker, close: async () => { await queue.close(); redisClient.disconnect(); } };
  }

  it('a worker SIGKILLed mid-migration: after restart the job completes cleanly, the guest runs in exactly one place, moved once', async () => {
    const rig = setUp(12 * MIB);
    const before = ticks(a.console(GUEST)).at(-1)!;
    const queued = await rig.queue.enqueue(job(GUEST, a.host, b.host, { planId: 'crash-1' }));
    const first = rig.spawnWorker();
    await until('the migration to be under way', async () => ((await rig.queue.job(queued.jobId))?.progress?.bytesCopied ?? 0) > 0, 60_000, async () => first.output());
    first.child.kill('SIGKILL');
    await first.exited;
    const second = rig.spawnWorker();
    await until('the job to complete after the restart', async () => (await rig.queue.job(queued.jobId))?.state === 'completed', 120_000, async () => second.output());
    // The agents carry on the move the dead worker started: the re-run either found the VM at its
    // destination, or re-attached to that same migration (never a second one).
    assert.ok(['already-there', 'migrated'].includes((await rig.queue.job(queued.jobId))?.result?.outcome ?? ''));
    assert.equal(await driver.locate(GUEST), b.host);
    assert.deepEqual(qemuPids(a.stateDir), []);
    assert.equal(qemuProcessesOf(GUEST).length, 1);
    await sleep(2000);
    const after = ticks(b.console(GUEST));
    assert.ok(after.length >= 2 && after[0]! >= before, `the counter continued on B (${before} then ${after[0]})`);
    const finished = await eventsOf(rig, 'migration.finished');
    assert.equal(finished.length, 1);
    await second.stop();
    await rig.close();
  });

  it('the destination agent killed mid-migration: the guest keeps running on its source, the job fails with the reason, leftovers go on restart', async () => {
    // Now the guest is on B; move it to A with a slow link, and kill A's agent (the destination).
    const rig = setUp(2 * MIB, 1);
    const queued = await rig.queue.enqueue(job(GUEST, b.host, a.host, { planId: 'dest-dies' }));
    const worker = rig.spawnWorker();
    await until('the migration to be under way', async () => ((await rig.queue.job(queued.jobId))?.progress?.bytesCopied ?? 0) > 0, 60_000, async () => worker.output());
    await a.kill();
    await until('the job to fail', async () => (await rig.queue.job(queued.jobId))?.state === 'failed', 60_000, async () => worker.output());
    assert.match((await rig.queue.job(queued.jobId))!.failedReason!, /destination agent \(host-a\) stopped answering/);
    const guest = (await b.client.list()).guests.find((entry) => entry.name === GUEST)!;
    assert.equal(guest.status, 'running');
    const tick = ticks(b.console(GUEST)).at(-1)!;
    await sleep(2000);
    assert.ok(ticks(b.console(GUEST)).at(-1)! > tick, 'the guest keeps counting on its source');
    await a.start();
    await until('A to clean up the half-started guest', async () => qemuPids(a.stateDir).length === 0 && (await a.client.list()).guests.length === 0, 20_000);
    assert.equal(qemuProcessesOf(GUEST).length, 1);
    assert.equal(await driver.locate(GUEST), b.host);
    await worker.stop();
    await rig.close();
  });
});
