/**
 * Fault 19: a worker SIGSTOPped past its job lock, then resumed (real `lbvm worker` processes, sim
 * driver, real Redis). BullMQ's stalled check gives the job to another worker; when the paused one
 * wakes, its lock renewal fails (`lockRenewalFailed`) and it cancels its migration; its late
 * completion is refused (the sim driver commits a move only for the attempt that owns it, and the
 * worker reports success only while it still holds its slots); the VM moved exactly once.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventsOf, job, MIB, until } from '../queue/support.ts';
import { faultEnvironment } from './support.ts';

describe('fault 19: worker SIGSTOPped past its job lock, then resumed', () => {
  const environment = faultEnvironment();
  const { daemons } = environment;

  it('another worker runs the job; the paused one cancels on resume, its late completion is refused; moved once', async () => {
    // 256 MiB at 16 MiB/s: a 16 s migration; a worker that stops renewing loses the job after 2 s.
    const r = await environment.rig(
      ['h1', 'h2'],
      { vm1: 'h1' },
      { 'migration.bandwidthBytesPerSec': 16 * MIB, 'migration.lockDuration': '2s', 'migration.slotWait': '200ms' },
      256 * MIB,
    );
    const queued = await r.queue.enqueue(job('vm1', 'h1', 'h2'));
    const paused = daemons.simWorker(r.config);
    await until(
      'the first worker to start',
      async () => (await eventsOf(r, 'migration.started')).length === 1,
      30_000,
      async () => paused.output(),
    );
    const pausedStartedMs = Date.now();
    paused.child.kill('SIGSTOP');
    const other = daemons.simWorker(r.config);
    await until(
      'the other worker to take the job over',
      async () => (await eventsOf(r, 'migration.started')).length === 2,
      30_000,
      async () => other.output(),
    );
    // Resume the paused worker once its own migration would have finished copying, so that it wakes
    // up wanting to commit a move that is no longer its own.
    await sleep(Math.max(0, pausedStartedMs + 17_000 - Date.now()));
    paused.child.kill('SIGCONT');
    await until(
      'the job to complete',
      async () => (await r.queue.job(queued.jobId))?.state === 'completed',
      60_000,
      async () => `${paused.output()}\n${other.output()}`,
    );
    await until(
      'every run but the last to give up',
      async () => {
        const failures = await eventsOf(r, 'migration.failed');
        return failures.length > 0 && failures.length >= (await eventsOf(r, 'migration.started')).length - 1;
      },
      20_000,
      async () => paused.output(),
    );

    const pausedId = `${os.hostname()}:${paused.child.pid}`;
    const otherId = `${os.hostname()}:${other.child.pid}`;
    const started = await eventsOf(r, 'migration.started');
    // The paused worker's run, then the other worker's. On a loaded machine the other worker can lose
    // its own lock in turn and the job run a third time: each run but the last must end as a
    // failure with the lock lost, and only one may complete the job.
    assert.deepEqual(
      started.slice(0, 2).map((event) => event.detail?.worker),
      [pausedId, otherId],
    );
    const finished = await eventsOf(r, 'migration.finished');
    assert.equal(finished.length, 1, JSON.stringify(finished));
    if (started.length === 2) assert.equal(finished[0]!.detail?.outcome, 'migrated');
    const failed = await eventsOf(r, 'migration.failed');
    assert.equal(failed.length, started.length - 1, JSON.stringify(failed));
    assert.ok(
      failed.every((event) => event.detail?.lockLost === true && event.detail?.willRetry === true),
      `a lost lock is not a failure of the job: ${JSON.stringify(failed)}`,
    );
    assert.equal(await r.driver.locate('vm1'), 'h2');
    assert.deepEqual(
      await r.redis.hgetall(r.driver.cluster.keys.migrating),
      {},
      'no migration of vm1 is left half-done',
    );
    assert.match(paused.output(), /could not renew the job lock; cancelling its migration/);
    assert.match(paused.output(), /this worker lost the job; its result does not count/);
    // Its first run never reported success (a later run of the same job by the same process may).
    const pausedRuns = started.filter((event) => event.detail?.worker === pausedId).length;
    assert.ok(
      (paused.output().match(/"msg":"migration finished"/g) ?? []).length <= pausedRuns - 1,
      paused.output().slice(-3000),
    );
    assert.equal((await r.queue.job(queued.jobId))?.state, 'completed');
  });
});
