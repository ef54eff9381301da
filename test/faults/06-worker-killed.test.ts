/**
 * Fault 6: a worker SIGKILLed in the middle of a live migration. After a restart (BullMQ's
 * stalled-job recovery re-runs the job once the dead worker's lock and slots expire) the guest runs
 * in exactly one place and is not migrated a second time: on real QEMU guests between two agents,
 * and on the sim driver (where the re-run is a real second attempt).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import { createLogger } from '../../src/log.ts';
import {
  qemuPids,
  qemuProcessesOf,
  startAgent,
  testGuestSpec,
  ticks,
  waitTicks,
  waitBooted,
  type TestAgent,
} from '../helpers/agent.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { eventsOf, job, MIB, queueRig, until } from '../queue/support.ts';
import { Daemons, qemuQueueRig, stopAgents } from './support.ts';

const GUEST = 'db-1';

describe('fault 6: worker SIGKILLed mid-migration', () => {
  let redis: RedisServer;
  let a: TestAgent;
  let b: TestAgent;
  let driver: QemuDriver;
  const daemons = new Daemons();
  const rigs: { close(): Promise<void> }[] = [];

  before(async () => {
    [redis, a, b] = await Promise.all([startRedis(), startAgent('host-a'), startAgent('host-b')]);
    driver = new QemuDriver(
      new Map([
        [a.host, a.client],
        [b.host, b.client],
      ]),
      createLogger({ level: 'warn', format: 'json' }),
    );
    await a.client.start(testGuestSpec(GUEST, { memPercent: 40, dirtyPercent: 2 }));
    await waitBooted(a, GUEST);
  });
  after(async () => {
    await daemons.stopAll();
    await Promise.all(rigs.map((rig) => rig.close()));
    await stopAgents(a, b);
    await redis?.stop();
  });

  it('real QEMU guest: after restart the job completes cleanly, the guest runs in exactly one place, moved once', async () => {
    const rig = qemuQueueRig(redis.url, daemons, a, b, 12 * MIB);
    rigs.push(rig);
    const before = ticks(a.console(GUEST)).at(-1)!;
    const queued = await rig.queue.enqueue(job(GUEST, a.host, b.host, { planId: 'crash-1' }));
    const first = rig.spawnWorker();
    await until(
      'the migration to be under way',
      async () => ((await rig.queue.job(queued.jobId))?.progress?.bytesCopied ?? 0) > 0,
      60_000,
      async () => first.output(),
    );
    first.child.kill('SIGKILL');
    await first.exited;
    const second = rig.spawnWorker();
    await until(
      'the job to complete after the restart',
      async () => (await rig.queue.job(queued.jobId))?.state === 'completed',
      120_000,
      async () => second.output(),
    );
    // The agents carry on the move the dead worker started: the re-run either found the VM at its
    // destination, or re-attached to that same migration (never a second one).
    const outcome = (await rig.queue.job(queued.jobId))?.result?.outcome ?? '';
    assert.ok(['already-there', 'migrated'].includes(outcome), `outcome ${JSON.stringify(outcome)}`);
    assert.equal(await driver.locate(GUEST), b.host);
    assert.deepEqual(qemuPids(a.stateDir), []);
    assert.equal(qemuProcessesOf(GUEST).length, 1);
    const after = await waitTicks(b, GUEST, (seen) => seen.length >= 2, 'the guest to keep counting on B');
    assert.ok(after[0]! >= before, `the counter continued on B (${before} then ${after[0]})`);
    const finished = await eventsOf(rig, 'migration.finished');
    assert.equal(finished.length, 1);
    await second.stop();
  });

  it('sim driver: the re-run moves the VM once; the dead attempt never commits', async () => {
    // 128 MiB at 32 MiB/s: a 4 s migration; a worker that stops renewing loses the job after 2 s.
    const r = await queueRig(
      redis.url,
      ['h1', 'h2'],
      { vm1: 'h1' },
      { 'migration.bandwidthBytesPerSec': 32 * MIB, 'migration.lockDuration': '2s', 'migration.slotWait': '200ms' },
      128 * MIB,
    );
    rigs.push(r);
    const queued = await r.queue.enqueue(job('vm1', 'h1', 'h2'));
    const first = daemons.simWorker(r.config);
    await until(
      'the first worker to start the migration',
      async () => (await eventsOf(r, 'migration.started')).length === 1,
      30_000,
      async () => first.output(),
    );
    await sleep(1000);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(await r.driver.locate('vm1'), 'h1', 'a killed migration has not moved the VM');
    const second = daemons.simWorker(r.config);
    await until(
      'the job to complete after the restart',
      async () => (await r.queue.job(queued.jobId))?.state === 'completed',
      60_000,
      async () => second.output(),
    );
    assert.equal(await r.driver.locate('vm1'), 'h2');
    const finished = await eventsOf(r, 'migration.finished');
    assert.equal(finished.length, 1);
    assert.equal(finished[0]!.detail?.outcome, 'migrated');
    assert.equal(
      (await eventsOf(r, 'migration.started')).length,
      2,
      'started by the dead worker, then once more after its lock expired',
    );
    await second.stop();
  });
});
