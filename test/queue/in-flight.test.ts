/**
 * `lbm`'s views ask for the migrations in flight without loading BullMQ when none can be: BullMQ keeps
 * its unfinished jobs in lists and sorted sets (`queueKeys().bullUnfinished`) that Redis drops when they
 * empty. Against real BullMQ (a real Redis, real workers, the sim driver): whenever MigrationQueue.inFlight
 * lists a job, one of those keys exists; once every job has finished none does, and CliContext.inFlight
 * answers [] without opening the queue.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CliContext } from '../../src/cli/context.ts';
import { queueKeys } from '../../src/queue/keys.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { job, MIB, queueRig, until, type QueueRig } from './support.ts';

/** Whether the context has opened its MigrationQueue (and so loaded BullMQ). */
const queueOpened = (context: CliContext) => (context as unknown as { queueHandle: unknown }).queueHandle !== null;

describe('migrations in flight without BullMQ', () => {
  let server: RedisServer;
  let rig: QueueRig | undefined;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await rig?.close();
    await server?.stop();
  });

  it('an unfinished-job key exists whenever MigrationQueue.inFlight lists a job, waiting, delayed or active, and none after', async () => {
    // One migration at a time from h1 (4 s each at 16 MiB/s): the others wait, delayed for the slot.
    rig = await queueRig(
      server.url,
      ['h1', 'h2'],
      { vm1: 'h1', vm2: 'h1', vm3: 'h1' },
      {
        'migration.bandwidthBytesPerSec': 16 * MIB,
        'migration.slotWait': '300ms',
        'migration.lockDuration': '5s',
        'limits.migrationsPerSourceHost': 1,
      },
    );
    const r = rig;
    const unfinished = async () => (await r.redis.exists(...queueKeys(r.config.redis.prefix).bullUnfinished)) > 0;

    const idle = new CliContext(r.config, null, 'test', 'command');
    assert.deepEqual(await idle.inFlight(), []);
    assert.equal(queueOpened(idle), false);
    assert.equal(await unfinished(), false);

    for (const vm of ['vm1', 'vm2', 'vm3']) assert.equal((await r.queue.enqueue(job(vm, 'h1', 'h2'))).status, 'queued');
    // Queued, no worker yet: the context opens the queue and answers as it does.
    const waiting = new CliContext(r.config, null, 'test', 'command');
    const fromContext = await waiting.inFlight();
    assert.equal(queueOpened(waiting), true);
    assert.deepEqual(fromContext.map((entry) => `${entry.vm} ${entry.state}`).sort(), [
      'vm1 waiting',
      'vm2 waiting',
      'vm3 waiting',
    ]);
    await waiting.close();

    r.startWorker();
    const seen = new Set<string>();
    await until('every migration to finish', async () => {
      // The keys first: no job is enqueued meanwhile, and BullMQ moves a job between its lists atomically.
      const keys = await unfinished();
      const inFlight = await r.queue.inFlight();
      for (const entry of inFlight) seen.add(entry.state);
      assert.ok(keys || inFlight.length === 0, `no unfinished-job key, but in flight: ${JSON.stringify(inFlight)}`);
      return !keys && inFlight.length === 0;
    });
    assert.ok(seen.has('active') && seen.has('delayed'), [...seen].join());
    assert.deepEqual(
      (await r.queue.jobs()).map((view) => view.state),
      ['completed', 'completed', 'completed'],
    );

    const after = new CliContext(r.config, null, 'test', 'command');
    assert.deepEqual(await after.inFlight(), []);
    assert.equal(queueOpened(after), false);
    await after.close();
    await idle.close();

    // No worker: one job delayed, then one prioritized, each alone in BullMQ's unfinished sets.
    await r.workers[0]!.close(true);
    const alone = async (jobId: string, options: { delay: number } | { priority: number }, state: string) => {
      await r.queue.queue.add('migrate', job('vm1', 'h2', 'h1', { planId: jobId }), { ...options, jobId });
      const context = new CliContext(r.config, null, 'test', 'command');
      assert.deepEqual(
        (await context.inFlight()).map((entry) => `${entry.jobId} ${entry.state}`),
        [`${jobId} ${state}`],
      );
      await context.close();
      await (await r.queue.queue.getJob(jobId))!.remove();
      assert.equal(await unfinished(), false);
    };
    await alone('later', { delay: 60_000 }, 'delayed');
    await alone('first', { priority: 1 }, 'waiting');
  });
});
