/**
 * Fault 14: `lbm migrate` to an unknown host, of an unknown VM, or breaking a hard anti-affinity
 * rule is refused with the reason and the closest names, and nothing is enqueued (the queue, the
 * VM claims and the event stream stay empty).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { GiB, simVmOf, startLbmCluster, type LbmCluster } from '../lbm/support.ts';

describe('fault 14: lbm migrate refused', () => {
  let cluster: LbmCluster;
  before(async () => {
    const vms = [
      simVmOf('web-1', 2 * GiB, 0.5),
      simVmOf('web-2', 2 * GiB, 0.5),
      simVmOf('dns-1', GiB, 0.1),
      simVmOf('dns-2', GiB, 0.1),
    ];
    cluster = await startLbmCluster(
      ['node-a1', 'node-a2', 'node-b1'],
      vms,
      { 'web-1': 'node-a1', 'web-2': 'node-a1', 'dns-1': 'node-a1', 'dns-2': 'node-a2' },
      {
        rules: { antiAffinity: [{ name: 'dns-pair', vms: ['dns-1', 'dns-2'], hard: true }] },
      },
    );
    await cluster.collect();
  });
  after(async () => {
    await cluster?.close();
  });

  it('refuses with the reason and the closest names; nothing enqueued', async () => {
    const [antiAffinity, forced, unknownVm, unknownHost] = await Promise.all([
      cluster.lbm('migrate', 'dns-1', 'node-a2'),
      cluster.lbm('migrate', 'dns-1', 'node-a2', '--force'),
      cluster.lbm('migrate', 'web-3', 'node-b1'),
      cluster.lbm('migrate', 'web-1', 'node-b2'),
    ]);
    assert.equal(antiAffinity.code, 4, antiAffinity.stderr);
    assert.match(
      antiAffinity.stderr,
      /refused: moving dns-1 to node-a2 breaks ANTI_AFFINITY \(.*dns-pair.*\)\. Hard rules cannot be overridden/,
    );
    assert.equal(forced.code, 4, '--force does not override a hard rule');
    assert.match(forced.stderr, /ANTI_AFFINITY/);
    assert.equal(unknownVm.code, 5);
    assert.match(unknownVm.stderr, /unknown VM "web-3"; did you mean "web-1", "web-2"/);
    assert.equal(unknownHost.code, 5);
    assert.match(unknownHost.stderr, /unknown host "node-b2"; did you mean "node-a2", "node-b1"/);
    for (const result of [antiAffinity, unknownVm, unknownHost])
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'a stack trace');

    // Nothing reached the queue: no job in any state, no VM claimed, no migration event.
    const counts = await cluster.queue.queue.getJobCounts(
      'waiting',
      'delayed',
      'active',
      'completed',
      'failed',
      'prioritized',
    );
    assert.deepEqual(
      Object.values(counts).reduce((sum, count) => sum + count, 0),
      0,
      JSON.stringify(counts),
    );
    assert.deepEqual(await cluster.redis.hgetall(`${cluster.config.redis.prefix}:migrations:vm-claims`), {});
    assert.deepEqual(
      (await cluster.queue.events.read()).filter((stored) => stored.event.type.startsWith('migration.')),
      [],
    );
    assert.equal(await cluster.driver.locate('dns-1'), 'node-a1');
  });
});
