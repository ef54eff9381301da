/**
 * Fault 4: Redis restarted (AOF on) while one migration runs and others wait, and away for a few
 * seconds: the worker reconnects by itself, the waiting jobs run after the restart (the AOF kept
 * them), the running one completes or fails cleanly, and no VM is migrated twice.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { eventsOf, job, MIB, queueRig, until, type QueueRig } from '../queue/support.ts';

describe('fault 4: Redis restarted with jobs waiting and one running', () => {
  let redis: RedisServer;
  let rig: QueueRig | undefined;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await rig?.close();
    await redis?.stop();
  });

  it('waiting jobs run after the restart, the running one ends cleanly, none runs twice', async () => {
    const placement = { vm1: 'src', vm2: 'src', vm3: 'src', vm4: 'src' };
    rig = await queueRig(
      redis.url,
      ['src', 'd1', 'd2', 'd3', 'd4'],
      placement,
      {
        'migration.bandwidthBytesPerSec': 32 * MIB,
        'migration.lockDuration': '10s',
        'migration.slotWait': '200ms',
        'limits.migrationsPerSourceHost': 1,
        'migration.backoff': '500ms',
      },
      64 * MIB,
    );
    const ids: string[] = [];
    for (let index = 1; index <= 4; index++)
      ids.push((await rig.queue.enqueue(job(`vm${index}`, 'src', `d${index}`))).jobId);
    rig.startWorker();
    await until('the first migration to start', async () => (await eventsOf(rig!, 'migration.started')).length === 1);
    const running = (await eventsOf(rig, 'migration.started'))[0]!.jobId!;
    await redis.stop();
    await sleep(3000);
    await redis.start();
    await until(
      'all four jobs to end',
      async () => {
        const states = await Promise.all(ids.map(async (id) => (await rig!.queue.job(id))?.state));
        return states.every((state) => state === 'completed' || state === 'failed');
      },
      90_000,
    );
    const states = await Promise.all(ids.map(async (id) => (await rig!.queue.job(id))?.state));
    assert.deepEqual(states, ['completed', 'completed', 'completed', 'completed']);
    for (let index = 1; index <= 4; index++) assert.equal(await rig.driver.locate(`vm${index}`), `d${index}`);
    const migrated = (await eventsOf(rig, 'migration.finished')).filter(
      (event) => event.detail?.outcome === 'migrated',
    );
    assert.equal(new Set(migrated.map((event) => event.vm)).size, migrated.length, 'no VM was migrated twice');
    assert.equal(migrated.length, 4);
    // Each job ended once: one finished event per job, and the job that was running when Redis went
    // away either finished on its first attempt or recorded its failure before it was re-run.
    const finishedJobs = (await eventsOf(rig, 'migration.finished')).map((event) => event.jobId);
    assert.deepEqual([...finishedJobs].sort(), [...ids].sort());
    const runningEvents = (await eventsOf(rig))
      .filter((event) => event.jobId === running && /started|finished|failed/.test(event.type))
      .map((event) => event.type);
    const count = (type: string) => runningEvents.filter((event) => event === type).length;
    assert.equal(runningEvents.at(-1), 'migration.finished', runningEvents.join(','));
    assert.equal(
      count('migration.failed'),
      count('migration.started') - 1,
      `every attempt but the last ended with a failure event: ${runningEvents.join(',')}`,
    );
  });
});
