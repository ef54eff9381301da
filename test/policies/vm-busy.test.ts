/**
 * A VM its hypervisor is busy with (a Proxmox `lock: migrate` left by a cleanup, an OpenVZ container
 * `starting`) is not planned: the fact travels from the driver's inventory through a collector's
 * sample, a real files store and the monitor's snapshot to the policies, which pass the VM over
 * with VM_BUSY and move another; once a later sample no longer carries it, the VM is a candidate again.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_SETTINGS, planRound } from '../../policies/index.ts';
import { vmSamplesFromInventory } from '../../collectors/samples.ts';
import type { VmInventory } from '../../src/drivers/driver.ts';
import { NO_RULES, type Sample, type Snapshot } from '../../src/model/index.ts';
import { SnapshotBuilder } from '../../src/monitor/index.ts';
import { openStore } from '../../src/store/index.ts';
import { GiB, host, NOW, snapshot, vm } from '../helpers/snapshot.ts';
import { tmpDir } from '../helpers/tmp.ts';

const MIN = 60_000;

/** A VM as a driver lists it: `cores` busy, 4 GiB. */
function listed(name: string, cores: number, extra: Partial<VmInventory> = {}): VmInventory {
  return {
    name,
    host: 'h0',
    vcpus: 4,
    memBytes: 4 * GiB,
    memUsedBytes: 2 * GiB,
    state: 'running',
    cpuUsedCores: cores,
    ...extra,
  };
}

/** Rounds of samples of a hot h0 (big, busy; small) and an idle h1, written to and read back from a files store. */
async function snapshotFrom(rounds: VmInventory[][]): Promise<Snapshot> {
  const store = openStore(`files:${tmpDir()}`);
  const written: Sample[] = [];
  rounds.forEach((vms, index) => {
    const timeMs = NOW - (rounds.length - 1 - index) * MIN;
    const used = vms.reduce((sum, entry) => sum + (entry.cpuUsedCores ?? 0), 0);
    written.push({
      kind: 'host',
      host: 'h0',
      timeMs,
      cpuCores: 4,
      cpuUsedCores: used,
      memBytes: 64 * GiB,
      memUsedBytes: 8 * GiB,
    });
    written.push({
      kind: 'host',
      host: 'h1',
      timeMs,
      cpuCores: 4,
      cpuUsedCores: 0.2,
      memBytes: 64 * GiB,
      memUsedBytes: 2 * GiB,
    });
    written.push(...vmSamplesFromInventory('h0', vms, timeMs, {}).samples);
  });
  assert.equal((await store.writeSamples(written)).written, written.length);
  const builder = new SnapshotBuilder();
  for await (const sample of store.readSamples({ fromMs: NOW - 60 * MIN, toMs: NOW, nowMs: NOW }))
    builder.addSample(sample);
  return builder.build({
    nowMs: NOW,
    intervalMs: MIN,
    staleAfterIntervals: 3,
    configuredHosts: {},
    maintenance: new Set(),
    rules: NO_RULES,
    inFlight: [],
    quarantineAfterFailures: 3,
    quarantineMs: 60 * MIN,
  });
}

describe('a VM its hypervisor is busy with', () => {
  it('is carried from the inventory to the snapshot and passed over with VM_BUSY; the plan moves another', async () => {
    const round = [listed('big', 2.5, { busy: 'lock: migrate', haState: 'started' }), listed('small', 1)];
    const s = await snapshotFrom([round, round, round]);
    const big = s.vms.find((entry) => entry.name === 'big')!;
    assert.equal(big.busy, 'lock: migrate');
    assert.equal(big.haState, 'started');
    assert.equal(s.vms.find((entry) => entry.name === 'small')!.busy, undefined);

    const plan = planRound(s, DEFAULT_SETTINGS, ['overload', 'balance']);
    assert.ok(!plan.moves.some((move) => move.vm === 'big'), JSON.stringify(plan.moves));
    assert.ok(
      plan.moves.some((move) => move.vm === 'small' && move.to === 'h1'),
      JSON.stringify(plan.moves),
    );
    const skip = plan.skipped.find((entry) => entry.vm === 'big' && entry.reason === 'VM_BUSY');
    assert.ok(skip, JSON.stringify(plan.skipped));
    assert.match(skip.detail, /big is busy on h0 \(lock: migrate\)/);
  });

  it('is a candidate again once the newest sample no longer carries it', async () => {
    const busy = [listed('big', 2.5, { busy: 'lock: migrate' }), listed('small', 1)];
    const cleared = [listed('big', 2.5), listed('small', 1)];
    const s = await snapshotFrom([busy, busy, cleared]);
    assert.equal(s.vms.find((entry) => entry.name === 'big')!.busy, undefined);
    assert.ok(
      !planRound(s, DEFAULT_SETTINGS, ['overload', 'balance']).skipped.some((entry) => entry.reason === 'VM_BUSY'),
    );
  });

  it('stays where it is even when its host is evacuated', () => {
    const s = snapshot(
      [host('h0', { maintenance: true }), host('h1')],
      [vm('starting-ct', 'h0', 1, { busy: 'state: starting' }), vm('other', 'h0', 1)],
    );
    const plan = planRound(s, DEFAULT_SETTINGS, ['evacuate']);
    assert.deepEqual(
      plan.moves.map((move) => move.vm),
      ['other'],
    );
    assert.ok(
      plan.skipped.some(
        (entry) => entry.vm === 'starting-ct' && entry.reason === 'VM_BUSY' && entry.detail.includes('state: starting'),
      ),
      JSON.stringify(plan.skipped),
    );
  });
});
