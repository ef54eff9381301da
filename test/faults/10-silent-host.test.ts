/**
 * Fault 10: a host stops sending samples. What must hold: it becomes unknown, receives no VM, and its
 * VMs are not judged by its stale numbers (a host silent while overloaded is not "relieved" by moves
 * planned from old samples); when it reports again it is used again. The real monitor on a real Redis,
 * a files store fed by the real collector core, the sim driver.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { settle, simClusterFixture, simVm } from '../monitor/sim-cluster.ts';

describe('fault 10: a host stops sending samples', () => {
  const fixture = simClusterFixture();

  it('becomes unknown: receives no VM, its VMs are not judged by old numbers; used again once it reports', async () => {
    // h1 carries 8 VMs (3.6 of 4 cores); h2 carries 4 VMs at 0.9 (overloaded by its numbers); h3, h4 are empty.
    const vms = [
      ...Array.from({ length: 8 }, (_, i) => simVm(`vm-${i}`, 0.45)),
      ...Array.from({ length: 4 }, (_, i) => simVm(`hot-${i}`, 0.9)),
    ];
    const placement = Object.fromEntries(vms.map((vm) => [vm.name, vm.name.startsWith('hot') ? 'h2' : 'h1']));
    const c = await fixture.cluster({ hosts: 4, vms, placement, config: { 'monitor.maxUnknownHostShare': 0.5 } });
    await c.collect();
    // h2 falls silent: only h1, h3, h4 report for more than 3 intervals (monitor.staleAfterIntervals × 1 s).
    await new Promise((resolve) => setTimeout(resolve, 3300));
    await c.collect(['h1', 'h3', 'h4']);
    const monitor = c.monitor();
    const record = await monitor.round();
    assert.deepEqual(record.inputs.unknownHosts, ['h2']);
    assert.equal(record.mode, 'enforce', record.notes.join('\n'));
    assert.equal(record.inputs.vms, 12, "h2's VMs are still known (where they were last seen)");
    assert.ok(record.enqueued.length > 0, 'the other hosts still get VMs');
    assert.ok(
      record.moves.every((move) => move.to !== 'h2'),
      `a VM was planned onto the silent host: ${JSON.stringify(record.moves)}`,
    );
    assert.ok(
      record.moves.every((move) => move.from !== 'h2'),
      `a VM of the silent host was judged by its old numbers: ${JSON.stringify(record.moves)}`,
    );
    assert.equal(
      (await monitor.metrics.hostsUnknown.get()).values[0]?.value,
      1,
      'the lbvm_hosts_unknown metric says so',
    );

    // h2 reports again (the moves above done): it is up at once, and its overload is now acted on.
    await settle(c);
    await c.collect();
    const back = await monitor.round();
    assert.deepEqual(back.inputs.unknownHosts, []);
    assert.ok(
      back.moves.some((move) => move.from === 'h2'),
      `h2's load is judged again once it reports: ${JSON.stringify(back.moves)} ${back.notes.join('\n')}`,
    );
  });
});
