/**
 * Fault 11: half the hosts unknown at once. What must hold: the monitor moves nothing and says why
 * (how many hosts, which, the setting), in its round record that `lbm status` shows; it moves again
 * without a restart once the hosts report. The real monitor on a real Redis, a files store fed by the
 * real collector core, the sim driver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { roundKeys } from '../../src/monitor/control.ts';
import type { RoundRecord } from '../../src/monitor/daemon.ts';
import { simClusterFixture, simVm } from '../monitor/sim-cluster.ts';

describe('fault 11: half the hosts unknown at once', () => {
  const fixture = simClusterFixture();

  it('moves nothing and says why; moves again once the hosts report', async () => {
    const c = await fixture.cluster({
      hosts: 4,
      vms: Array.from({ length: 8 }, (_, i) => simVm(`vm-${i}`, 0.45)),
      worker: false,
    });
    await c.collect();
    await new Promise((resolve) => setTimeout(resolve, 3300));
    await c.collect(['h1', 'h3']);
    const monitor = c.monitor();
    const record = await monitor.round();
    assert.equal(record.mode, 'halted');
    assert.deepEqual(record.inputs.unknownHosts, ['h2', 'h4']);
    assert.deepEqual(record.enqueued, []);
    assert.ok(record.moves.length > 0, 'the plan is still made (and shown)');
    assert.deepEqual([...new Set(record.heldBack.map((held) => held.reason))], ['TOO_MANY_UNKNOWN_HOSTS']);
    assert.equal(record.heldBack.length, record.moves.length, 'every planned move is held back, each with the reason');
    const why = record.notes.find((note) => /moving nothing/.test(note)) ?? assert.fail(record.notes.join('\n'));
    assert.match(
      why,
      /moving nothing: 2 of 4 hosts are unknown \(50% > 30% allowed by monitor\.maxUnknownHostShare\); no sample for over 3 intervals from: h2, h4/,
    );
    assert.deepEqual(await c.queue.jobs(), [], 'nothing enqueued');
    const shown = JSON.parse((await c.redis.get(roundKeys(c.config.redis.prefix).lastRound))!) as RoundRecord;
    assert.ok(shown.notes.includes(why), 'the reason is in the record lbm status shows');

    // The hosts report again: the next round moves, no restart needed.
    await c.collect();
    const back = await monitor.round();
    assert.equal(back.mode, 'enforce', back.notes.join('\n'));
    assert.ok(back.enqueued.length > 0);
  });
});
