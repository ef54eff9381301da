/**
 * The migration queue and workers against a real Redis and the sim driver: exactly-once
 * enqueueing, one migration per VM, limits that hold across workers (asserted from events),
 * delays that burn no attempt, fencing, and the "where is the VM" check before moving.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { limitsFromConfig } from '../../src/config/limits.ts';
import { MigrationSlots } from '../../src/queue/limits.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { eventsOf, job, MIB, peakConcurrency, queueRig, until, type QueueRig } from './support.ts';

describe('migration queue and workers (sim driver, real Redis)', () => {
  let redis: RedisServer;
  const rigs: QueueRig[] = [];
  const rig = async (...args: Parameters<typeof queueRig>) => {
    const made = await queueRig(...args);
    rigs.push(made);
    return made;
  };
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(rigs.map((made) => made.close()));
    await redis?.stop();
  });

  const fast = {
    'migration.bandwidthBytesPerSec': 256 * MIB,
    'migration.lockDuration': '5s',
    'migration.slotWait': '100ms',
  };

  it('runs the same decision enqueued twice once, and says the second was a duplicate', async () => {
    const r = await rig(redis.url, ['h1', 'h2'], { vm1: 'h1' }, fast);
    const first = await r.queue.enqueue(job('vm1', 'h1', 'h2', { planId: 'p-7' }));
    const second = await r.queue.enqueue(job('vm1', 'h1', 'h2', { planId: 'p-7' }));
    assert.equal(first.status, 'queued');
    assert.deepEqual(second, { status: 'duplicate', jobId: first.jobId });
    r.startWorker();
    await until('the migration to finish', async () => (await eventsOf(r, 'migration.finished')).length === 1);
    // Enqueued again after it finished: still the same decision, still not run again.
    assert.equal((await r.queue.enqueue(job('vm1', 'h1', 'h2', { planId: 'p-7' }))).status, 'duplicate');
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal((await eventsOf(r, 'migration.started')).length, 1);
    assert.equal(await r.driver.locate('vm1'), 'h2');
    const view = await r.queue.job(first.jobId);
    assert.equal(view?.state, 'completed');
    assert.equal(view?.result?.outcome, 'migrated');
    assert.equal(view?.result?.bytesCopied, 64 * MIB);
  });

  it('with a per-host limit of 1, six jobs from one host across two workers never overlap, and waiting burns no attempt', async () => {
    const hosts = ['src', 'd1', 'd2', 'd3', 'd4', 'd5', 'd6'];
    const placement = Object.fromEntries(Array.from({ length: 6 }, (_, index) => [`vm${index + 1}`, 'src']));
    // attempts: 1, so a delay that counted as an attempt would fail the job.
    const r = await rig(redis.url, hosts, placement, {
      ...fast,
      'migration.bandwidthBytesPerSec': 200 * MIB,
      'limits.migrationsPerSourceHost': 1,
      'limits.migrationsInCluster': 10,
      'migration.attempts': 1,
    });
    const ids = [];
    for (let index = 1; index <= 6; index++)
      ids.push((await r.queue.enqueue(job(`vm${index}`, 'src', `d${index}`))).jobId);
    r.startWorker(3);
    r.startWorker(3);
    await until(
      'six migrations to finish',
      async () => (await eventsOf(r, 'migration.finished')).length === 6,
      60_000,
      async () => JSON.stringify(await eventsOf(r)),
    );
    const events = await eventsOf(r);
    const peak = peakConcurrency(events);
    assert.equal(
      peak.source,
      1,
      `at most one migration from src at a time; events: ${JSON.stringify(events.map((e) => [e.type, e.vm]))}`,
    );
    assert.equal(events.filter((event) => event.type === 'migration.failed').length, 0);
    for (const id of ids) assert.equal((await r.queue.job(id))?.state, 'completed');
    for (let index = 1; index <= 6; index++) assert.equal(await r.driver.locate(`vm${index}`), `d${index}`);
    // Every slot was given back.
    const usage = await new MigrationSlots(r.redis, r.config.redis.prefix, limitsFromConfig(r.config), 5000).usage();
    assert.deepEqual({ cluster: usage.cluster, src: usage.source.src ?? 0 }, { cluster: 0, src: 0 });
  });

  it('asks where the VM is first: already at the destination succeeds without moving; elsewhere fails with that reason', async () => {
    const r = await rig(redis.url, ['h1', 'h2', 'h3'], { there: 'h2', elsewhere: 'h3' }, fast);
    const done = await r.queue.enqueue(job('there', 'h1', 'h2'));
    const lost = await r.queue.enqueue(job('elsewhere', 'h1', 'h2'));
    r.startWorker();
    await until(
      'both jobs to finish',
      async () =>
        (await r.queue.job(done.jobId))?.state === 'completed' && (await r.queue.job(lost.jobId))?.state === 'failed',
    );
    assert.equal((await r.queue.job(done.jobId))?.result?.outcome, 'already-there');
    const failed = await r.queue.job(lost.jobId);
    assert.match(failed!.failedReason!, /is on "h3", neither at the source "h1" nor at the destination "h2"/);
    assert.equal(failed!.attemptsMade, 1, 'a VM in the wrong place is not retried');
    assert.equal(await r.driver.locate('elsewhere'), 'h3');
  });

  it('retries a failed migration with backoff, reporting progress and a failure event for each attempt', async () => {
    const r = await rig(
      redis.url,
      ['h1', 'h2'],
      { vm1: 'h1' },
      { ...fast, 'sim.failureRate': 1, 'migration.attempts': 2, 'migration.backoff': '200ms' },
    );
    const queued = await r.queue.enqueue(job('vm1', 'h1', 'h2'));
    r.startWorker();
    await until('the job to fail for good', async () => (await r.queue.job(queued.jobId))?.state === 'failed');
    const failures = await eventsOf(r, 'migration.failed');
    assert.equal(failures.length, 2);
    assert.deepEqual(
      failures.map((event) => event.detail?.willRetry),
      [true, false],
    );
    assert.match(failures[1]!.error!, /simulated migration failure/);
    const view = await r.queue.job(queued.jobId);
    assert.equal(view?.attemptsMade, 2);
    assert.ok(view?.progress && view.progress.bytesCopied > 0, 'progress was reported on the job');
    assert.equal(await r.driver.locate('vm1'), 'h1');
  });
});
