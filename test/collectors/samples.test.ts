/** Driver inventories to VM samples: counters become rates, per instance; logical hosts sum their guests. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logicalHostSample, vmSamplesFromInventory, type VmCounters } from '../../collectors/samples.ts';
import type { VmInventory } from '../../src/drivers/driver.ts';

const GiB = 2 ** 30;
const T = Date.UTC(2026, 0, 10, 12);

function vm(name: string, overrides: Partial<VmInventory> = {}): VmInventory {
  return { name, host: 'n1', vcpus: 2, memBytes: 2 * GiB, memUsedBytes: GiB, state: 'running', ...overrides };
}

describe('VM samples from an inventory', () => {
  it('turns cumulative counters into rates from the previous round of the same instance', () => {
    const first = vmSamplesFromInventory(
      'n1',
      [vm('a', { instanceId: '100:5', cpuTimeMs: 10_000, diskReadBytes: 0, netTxBytes: 1000 })],
      T,
      {},
    );
    assert.equal(first.samples.length, 0, 'no rate yet: no sample rather than a made-up 0');
    assert.deepEqual(first.withoutBaseline, ['a']);
    const second = vmSamplesFromInventory(
      'n1',
      [
        vm('a', {
          instanceId: '100:5',
          cpuTimeMs: 10_000 + 30_000,
          diskReadBytes: 60 * 1e6,
          netTxBytes: 1000 + 60 * 5000,
        }),
      ],
      T + 60_000,
      first.counters,
    );
    assert.equal(second.samples.length, 1);
    const sample = second.samples[0]!;
    assert.equal(sample.cpuUsedCores, 0.5, '30 s of CPU in 60 s is half a core');
    assert.equal(sample.diskReadBytesPerSec, 1e6);
    assert.equal(sample.netTxBytesPerSec, 5000);
    assert.equal(sample.diskWriteBytesPerSec, undefined, 'not invented when the driver cannot tell');
    assert.deepEqual(
      [sample.kind, sample.vm, sample.host, sample.timeMs, sample.vcpus, sample.memBytes, sample.memUsedBytes],
      ['vm', 'a', 'n1', T + 60_000, 2, 2 * GiB, GiB],
    );
  });

  it('does not mix counters of a VM whose process was replaced (new instanceId) or whose counter went back', () => {
    const previous: Record<string, VmCounters> = {
      'id:100:5': { name: 'a', instanceId: '100:5', timeMs: T, cpuTimeMs: 500_000 },
    };
    const restarted = vmSamplesFromInventory(
      'n1',
      [vm('a', { instanceId: '200:9', cpuTimeMs: 1000 })],
      T + 60_000,
      previous,
    );
    assert.deepEqual([restarted.samples.length, restarted.withoutBaseline], [0, ['a']]);
    const reset = vmSamplesFromInventory(
      'n1',
      [vm('a', { instanceId: '100:5', cpuTimeMs: 1000 })],
      T + 60_000,
      previous,
    );
    assert.equal(reset.samples.length, 0);
    assert.ok(reset.counters['id:200:9'] === undefined && reset.counters['id:100:5']!.cpuTimeMs === 1000);
  });

  it("takes the driver's own rates when it gives them, and keeps state and tags", () => {
    const result = vmSamplesFromInventory(
      'n1',
      [
        vm('b', {
          cpuUsedCores: 1.25,
          memDirtyBytesPerSec: 5e6,
          netRxBytesPerSec: 10,
          state: 'paused',
          tags: ['lbvm.pin=n1'],
        }),
      ],
      T,
      {},
    );
    assert.equal(result.samples[0]!.cpuUsedCores, 1.25);
    assert.equal(result.samples[0]!.memDirtyBytesPerSec, 5e6);
    assert.equal(result.samples[0]!.state, 'paused');
    assert.deepEqual(result.samples[0]!.tags, ['lbvm.pin=n1']);
  });

  it('converts 20 inventories in one round', () => {
    const vms = Array.from({ length: 20 }, (_unused, index) =>
      vm(`g${index}`, { instanceId: `${index}`, cpuTimeMs: index * 1000 }),
    );
    const first = vmSamplesFromInventory('n1', vms, T, {});
    const second = vmSamplesFromInventory(
      'n1',
      vms.map((entry) => ({ ...entry, cpuTimeMs: entry.cpuTimeMs! + 5000 })),
      T + 10_000,
      first.counters,
    );
    assert.equal(second.samples.length, 20);
    assert.ok(second.samples.every((sample) => sample.cpuUsedCores === 0.5));
  });
});

describe('logical host', () => {
  it("reports the sum of its guests' use and its configured capacity", () => {
    const guests = vmSamplesFromInventory(
      'n2',
      [
        vm('a', { cpuUsedCores: 0.5, memUsedBytes: GiB }),
        vm('b', { cpuUsedCores: 1.5, memUsedBytes: 2 * GiB, netRxBytesPerSec: 100 }),
      ],
      T,
      {},
    ).samples;
    const host = logicalHostSample('n2', T, { cpuCores: 4, memBytes: 8 * GiB }, guests, 2);
    assert.deepEqual(
      [
        host.cpuCores,
        host.cpuUsedCores,
        host.memBytes,
        host.memUsedBytes,
        host.memAvailableBytes,
        host.vmCount,
        host.netRxBytesPerSec,
        host.diskReadBytesPerSec,
      ],
      [4, 2, 8 * GiB, 3 * GiB, 5 * GiB, 2, 100, undefined],
    );
  });
});
