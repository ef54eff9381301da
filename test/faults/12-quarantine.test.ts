/**
 * Fault 12: a migration that fails twice in a row. The VM is quarantined for `limits.quarantine`:
 * `lbm plan --json` and the monitor's round record name it and until when, the policies pass it
 * over (QUARANTINED), a manual move needs --force; after the quarantine it is a candidate again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { roundKeys } from '../../src/monitor/control.ts';
import { Monitor } from '../../src/monitor/daemon.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { startMigrationWorker, type MigrationWorker } from '../../src/queue/worker.ts';
import { GiB, log, simVmOf, startLbmCluster, type LbmCluster } from '../lbm/support.ts';
import { eventsOf } from '../queue/support.ts';

const QUARANTINE_MS = 12_000;

interface PlanJson {
  moves: { vm: string }[];
  skipped: { vm?: string; reason: string }[];
  quarantined: { vm: string; host: string; untilMs: number }[];
  notes: string[];
}

describe('fault 12: a migration that fails twice', () => {
  let cluster: LbmCluster;
  let worker: MigrationWorker | undefined;
  let connection: ReturnType<typeof connectRedis> | undefined;
  before(async () => {
    const vms = Array.from({ length: 4 }, (_, i) => simVmOf(`web-${i + 1}`, 2 * GiB, 0.9));
    cluster = await startLbmCluster(['h1', 'h2'], vms, Object.fromEntries(vms.map((vm) => [vm.name, 'h1'])), {
      monitor: { interval: '1m', window: '10m' },
      limits: { quarantineAfterFailures: 2, quarantine: `${QUARANTINE_MS}ms`, cooldown: '1s', movesPerRound: 1 },
      migration: { attempts: 1, slotWait: '100ms', bandwidthBytesPerSec: '8GiB' },
      // Every migration fails, as a hypervisor that refuses them would.
      sim: { failureRate: 1, speedup: 8 },
    });
    await cluster.collect();
    await cluster.collect();
    connection = connectRedis(cluster.server.url, { blocking: true });
    worker = startMigrationWorker({ config: cluster.config, driver: cluster.driver, log, connection });
  });
  after(async () => {
    await worker?.close(true);
    connection?.disconnect();
    await cluster?.close();
  });

  it('quarantines the VM for the configured time; the plan and the round record say so', async () => {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const failed = await cluster.lbm('migrate', 'web-1', 'h2', '--wait');
      assert.equal(failed.code, 6, failed.stderr);
      assert.match(failed.stdout, /failed: web-1 stays on h1: .*simulated migration failure/);
    }
    const failures = await eventsOf(cluster.queue, 'migration.failed');
    assert.equal(failures.length, 2);
    const expectedUntil = failures[1]!.timeMs + QUARANTINE_MS;

    const plan = await cluster.json<PlanJson>('plan');
    assert.deepEqual(plan.quarantined, [{ vm: 'web-1', host: 'h1', untilMs: expectedUntil }]);
    assert.ok(
      plan.notes.some((note) => /quarantined after 2 failed migrations in a row .*web-1 until/.test(note)),
      plan.notes.join('\n'),
    );
    assert.ok(
      plan.moves.every((move) => move.vm !== 'web-1'),
      'the plan moves a quarantined VM',
    );
    assert.ok(
      plan.skipped.some((skip) => skip.vm === 'web-1' && skip.reason === 'QUARANTINED'),
      JSON.stringify(plan.skipped),
    );

    const monitor = new Monitor({
      config: cluster.config,
      log,
      store: cluster.store,
      redis: cluster.redis,
      queue: cluster.queue,
      id: 'test-monitor',
    });
    const record = await monitor.round();
    await monitor.lease.release();
    assert.equal(record.mode, 'enforce');
    assert.deepEqual(record.quarantined, [{ vm: 'web-1', host: 'h1', untilMs: expectedUntil }]);
    assert.ok(
      record.notes.some((note) => /quarantined .*web-1/.test(note)),
      record.notes.join('\n'),
    );
    assert.ok(
      record.enqueued.every((entry) => entry.vm !== 'web-1'),
      JSON.stringify(record.enqueued),
    );
    const stored = JSON.parse((await cluster.redis.get(roundKeys(cluster.config.redis.prefix).lastRound)) ?? 'null');
    assert.deepEqual(stored.quarantined, record.quarantined, 'lbm status reads the same record');

    const manual = await cluster.lbm('migrate', 'web-1', 'h2');
    assert.equal(manual.code, 4, manual.stderr);
    assert.match(manual.stderr, /QUARANTINED \(web-1 is quarantined/);

    // After the quarantine the VM is a candidate again.
    await sleep(Math.max(0, expectedUntil - Date.now() + 500));
    const after = await cluster.json<PlanJson>('plan');
    assert.deepEqual(after.quarantined, []);
    assert.ok(!after.skipped.some((skip) => skip.vm === 'web-1' && skip.reason === 'QUARANTINED'));
  });
});
