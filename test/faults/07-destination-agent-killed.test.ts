/**
 * Fault 7: the destination agent killed during a live migration (real QEMU guests, `lbvm worker`
 * process): the guest keeps running on its source, the job fails with the reason, and the
 * destination's half-started guest is removed when its agent restarts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
import { eventsOf, job, MIB, until } from '../queue/support.ts';
import { Daemons, qemuQueueRig, stopAgents } from './support.ts';

const GUEST = 'db-1';

describe('fault 7: destination agent killed during a live migration', () => {
  let redis: RedisServer;
  let a: TestAgent;
  let b: TestAgent;
  const daemons = new Daemons();
  // Closed in after(), so a failed assertion does not leave the queue's connections holding the file open.
  const rigs: { close(): Promise<void> }[] = [];

  before(async () => {
    [redis, a, b] = await Promise.all([startRedis(), startAgent('host-a'), startAgent('host-b')]);
    await b.client.start(testGuestSpec(GUEST, { memPercent: 40, dirtyPercent: 2 }));
    await waitBooted(b, GUEST);
  });
  after(async () => {
    await daemons.stopAll();
    await Promise.all(rigs.map((rig) => rig.close()));
    await stopAgents(a, b);
    await redis?.stop();
  });

  it('the guest keeps running on its source, the job fails with the reason, leftovers go on restart', async () => {
    // Move the guest from B to A over a slow link, and kill A's agent (the destination).
    const rig = qemuQueueRig(redis.url, daemons, a, b, 2 * MIB, 1);
    rigs.push(rig);
    const driver = new QemuDriver(
      new Map([
        [a.host, a.client],
        [b.host, b.client],
      ]),
      createLogger({ level: 'warn', format: 'json' }),
    );
    const queued = await rig.queue.enqueue(job(GUEST, b.host, a.host, { planId: 'dest-dies' }));
    const worker = rig.spawnWorker();
    await until(
      'the migration to be under way',
      async () => ((await rig.queue.job(queued.jobId))?.progress?.bytesCopied ?? 0) > 0,
      60_000,
      async () => worker.output(),
    );
    assert.ok(qemuPids(a.stateDir).length > 0, 'the destination started its incoming QEMU');
    await a.kill();
    await until(
      'the job to fail',
      async () => (await rig.queue.job(queued.jobId))?.state === 'failed',
      60_000,
      async () => worker.output(),
    );
    assert.match((await rig.queue.job(queued.jobId))!.failedReason!, /destination agent \(host-a\) stopped answering/);
    const failed = await eventsOf(rig, 'migration.failed');
    assert.equal(failed.length, 1);
    assert.match(failed[0]!.error!, /destination agent \(host-a\) stopped answering/);
    assert.equal((await eventsOf(rig, 'migration.finished')).length, 0);
    const guest = (await b.client.list()).guests.find((entry) => entry.name === GUEST)!;
    assert.equal(guest.status, 'running');
    const tick = ticks(b.console(GUEST)).at(-1)!;
    await waitTicks(b, GUEST, (seen) => seen.at(-1)! > tick, 'the guest to keep counting on its source');
    await a.start();
    await until(
      'A to clean up the half-started guest',
      async () => qemuPids(a.stateDir).length === 0 && (await a.client.list()).guests.length === 0,
      20_000,
    );
    assert.equal(qemuProcessesOf(GUEST).length, 1);
    assert.equal(await driver.locate(GUEST), b.host);
    await worker.stop();
  });
});
