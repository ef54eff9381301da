/**
 * The monitor end to end, against a real Redis, a real files store, the real collector core and
 * migration worker, and the `sim` driver: an imbalanced cluster becomes balanced; report mode and
 * pause move nothing. Silent hosts are faults 10 and 11 (test/faults/).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setPaused } from '../../src/monitor/control.ts';
import type { RoundRecord } from '../../src/monitor/daemon.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { settle, simCluster, simVm as vm, type SimCluster } from './sim-cluster.ts';

let server: RedisServer;
const cluster = (options: Parameters<typeof simCluster>[1]) => simCluster(server.url, options);

describe('lbvm monitor end to end (real Redis, files store, worker; sim driver)', () => {
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    await server.stop();
  });

  let c: SimCluster | null = null;
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
    assert.ok(
      records[0]!.enqueued.length > 0,
      `the first round enqueued nothing: ${JSON.stringify(records[0]!.notes)}`,
    );
    assert.ok(Math.max(...perHost.values()) <= 3, `still imbalanced: ${JSON.stringify(Object.fromEntries(perHost))}`);
    assert.ok(perHost.size >= 3, `only ${perHost.size} hosts used: ${JSON.stringify(Object.fromEntries(perHost))}`);
    const last = records[records.length - 1]!;
    assert.ok(
      last.imbalanceBefore! < records[0]!.imbalanceBefore!,
      `imbalance did not fall: ${records[0]!.imbalanceBefore} → ${last.imbalanceBefore}`,
    );
    for (const record of records)
      assert.equal(
        new Set(record.enqueued.map((e) => e.vm)).size,
        record.enqueued.length,
        'a VM enqueued twice in one round',
      );
  });

  it('in report mode plans and records, moves nothing', async () => {
    c = await cluster({
      hosts: 3,
      vms: Array.from({ length: 6 }, (_, i) => vm(`vm-${i}`, 0.6)),
      config: { 'monitor.mode': 'report' },
    });
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
    assert.ok(
      paused.notes.some((note) => /paused by test/.test(note)),
      paused.notes.join('\n'),
    );
    await setPaused(c.redis, c.config.redis.prefix, false, { by: 'test', nowMs: Date.now() });
    const resumed = await monitor.round();
    assert.equal(resumed.mode, 'enforce');
    assert.ok(resumed.enqueued.length > 0);
  });
});
