/**
 * Fault 17: 100 manual moves of the same VM enqueued at once. One migration runs; every other one is
 * reported as a duplicate of it (the VM's claim in Redis, taken by one Lua script, lets one job in
 * while the VM has a migration queued or running; BullMQ's jobId deduplication alone would not,
 * since each manual move is its own decision and a removed job's id is free again). Through the
 * queue API (100 at once) and through real `lbm migrate` processes racing each other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startMigrationWorker, type MigrationWorker } from '../../src/queue/worker.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { GiB, log, simVmOf, startLbmCluster, type LbmCluster } from '../lbm/support.ts';
import { eventsOf, job, until } from '../queue/support.ts';

describe('fault 17: 100 manual moves of the same VM at once', () => {
  let cluster: LbmCluster;
  let worker: MigrationWorker | undefined;
  const connections: ReturnType<typeof connectRedis>[] = [];
  const startWorker = () => {
    const connection = connectRedis(cluster.server.url, { blocking: true });
    connections.push(connection);
    return startMigrationWorker({ config: cluster.config, driver: cluster.driver, log, connection });
  };
  before(async () => {
    cluster = await startLbmCluster(
      ['h1', 'h2', 'h3'],
      [simVmOf('vm1', 2 * GiB, 0.3), simVmOf('vm2', 2 * GiB, 0.3)],
      { vm1: 'h1', vm2: 'h1' },
      {
        migration: { slotWait: '100ms', bandwidthBytesPerSec: '4GiB' },
        sim: { speedup: 4 },
      },
    );
    await cluster.collect();
  });
  after(async () => {
    await worker?.close(true);
    for (const connection of connections) connection.disconnect();
    await cluster?.close();
  });

  it('queue API: one of 100 concurrent manual moves is queued, 99 are refused naming it; one migration runs', async () => {
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, index) =>
        cluster.queue.enqueue(
          job('vm1', 'h1', index % 2 ? 'h2' : 'h3', { planId: `manual-${index}`, requestedBy: 'operator:test' }),
        ),
      ),
    );
    const queued = results.filter((result) => result.status === 'queued');
    assert.equal(queued.length, 1, JSON.stringify(results.slice(0, 5)));
    assert.ok(
      results.every(
        (result) => result.status === 'queued' || (result.status === 'vm-busy' && result.busyWith === queued[0]!.jobId),
      ),
      JSON.stringify(results.filter((result) => result.status !== 'queued' && result.status !== 'vm-busy')),
    );
    assert.equal((await cluster.queue.inFlight()).length, 1);
    assert.equal((await eventsOf(cluster.queue, 'migration.queued')).length, 1);
    worker = startWorker();
    await until(
      'the one migration to finish',
      async () => (await eventsOf(cluster.queue, 'migration.finished')).length === 1,
    );
    assert.equal((await eventsOf(cluster.queue, 'migration.started')).length, 1);
    // The same decision enqueued again is a duplicate too, even after it finished.
    const winner = results.findIndex((result) => result.status === 'queued');
    assert.equal(
      (
        await cluster.queue.enqueue(
          job('vm1', 'h1', winner % 2 ? 'h2' : 'h3', { planId: `manual-${winner}`, requestedBy: 'operator:test' }),
        )
      ).status,
      'duplicate',
    );
    // Once it finished, the VM is free for the next decision.
    const next = await cluster.queue.enqueue(
      job('vm1', (await cluster.driver.locate('vm1'))!, 'h1', { planId: 'manual-after' }),
    );
    assert.equal(next.status, 'queued');
    await until(
      'the next migration to finish',
      async () => (await eventsOf(cluster.queue, 'migration.finished')).length === 2,
    );
    // No worker while the lbm processes race (below), so the first move stays queued throughout.
    await worker.close();
  });

  it('lbm migrate: of 6 racing processes one queues the move, the others say it is a duplicate; nothing else runs', async () => {
    const before = (await eventsOf(cluster.queue, 'migration.started')).length;
    const runs = await Promise.all(
      Array.from({ length: 6 }, (_, index) => cluster.lbm('migrate', 'vm2', index % 2 ? 'h2' : 'h3', '--json')),
    );
    const ok = runs.filter((run) => run.code === 0);
    assert.equal(ok.length, 1, runs.map((run) => `${run.code} ${run.stdout}${run.stderr}`).join('\n'));
    const jobId = (JSON.parse(ok[0]!.stdout) as { jobId: string; status: string }).jobId;
    for (const run of runs.filter((entry) => entry.code !== 0)) {
      assert.equal(run.code, 4, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(
          `refused: duplicate: vm2 already has a migration queued or running \\(job ${jobId}\\); nothing enqueued`,
        ),
      );
    }
    worker = startWorker();
    await until('the migration of vm2 to finish', async () =>
      (await eventsOf(cluster.queue, 'migration.finished')).some((event) => event.vm === 'vm2'),
    );
    assert.equal((await eventsOf(cluster.queue, 'migration.started')).length - before, 1);
    assert.notEqual(await cluster.driver.locate('vm2'), 'h1');
  });
});
