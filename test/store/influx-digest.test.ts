/**
 * The InfluxDB digest read (one field of the window plus each series' newest row) against a real
 * influxd: the monitor's snapshot built from it is the snapshot built from every sample whole, for a
 * window with a VM that moved mid-window, a VM that stopped, a host that went silent and bad rows.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sample, Snapshot } from '../../src/model/index.ts';
import { openStore, type SampleStore } from '../../src/store/index.ts';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { hostSample, snapshotOf, vmSample } from './builders.ts';

const STEP = 60_000;

describe('influx digest read', () => {
  let server: InfluxServer;
  let store: SampleStore;
  const nowMs = Math.floor(Date.now() / 1000) * 1000;
  const fromMs = nowMs - 30 * STEP;

  before(async () => {
    server = await startInflux();
    store = openStore(server.storeUrl('digest'));
    const samples: Sample[] = [];
    for (let step = 29; step >= 0; step--) {
      const t = nowMs - step * STEP - 500;
      for (const host of ['n1', 'n2']) samples.push(hostSample(host, t, { cpuUsedCores: 2 + (step % 3) }));
      // n3 went silent ten minutes ago: its VMs keep their last numbers, the host turns stale.
      if (step >= 10) samples.push(hostSample('n3', t), vmSample('quiet', 'n3', t, { cpuUsedCores: 0.5 }));
      samples.push(vmSample('steady', 'n1', t, { cpuUsedCores: 0.25 + step / 100, memDirtyBytesPerSec: step * 1000 }));
      // `mover` ran on n1 for the first half of the window, then on n2 with a new size.
      samples.push(
        step >= 15
          ? vmSample('mover', 'n1', t, { cpuUsedCores: 1 })
          : vmSample('mover', 'n2', t, { cpuUsedCores: 1.5, vcpus: 4, memBytes: 8 * 2 ** 30 }),
      );
      // `gone` stopped five minutes ago.
      if (step >= 5) samples.push(vmSample('gone', 'n2', t, { cpuUsedCores: 0.1 }));
    }
    await store.writeSamples(samples);
    // Rows no LBVM collector writes, from a broken writer; both readers must skip them the same way:
    // an absurd CPU in the middle of steady's window (InfluxDB merges it into that point), and a
    // series (steady on n2) whose only and newest row is absurd.
    const lines = [
      `vm_sample,host=n1,vm=steady cpuUsedCores=900 ${nowMs - 10 * STEP - 500}`,
      `vm_sample,host=n2,vm=steady cpuUsedCores=900,vcpus=2,memBytes=1073741824,memUsedBytes=1 ${nowMs - 90_500}`,
    ];
    const write = await fetch(`${server.httpUrl}/write?db=digest&precision=ms&rp=lbvm_raw`, {
      method: 'POST',
      body: lines.join('\n'),
    });
    assert.equal(write.status, 204, await write.text());
  });
  after(async () => {
    await server?.stop();
  });

  it('gives the snapshot that reading every sample gives', async () => {
    const stream = store.readSamples({ fromMs, toMs: nowMs, nowMs });
    const samples: Sample[] = [];
    for await (const batch of stream.batches()) samples.push(...batch);
    const whole = snapshotOf((builder) => samples.forEach((sample) => builder.addSample(sample)), nowMs);

    assert.ok(store.readDigest, 'the influx store reads digests');
    const digest = await store.readDigest({ fromMs, toMs: nowMs, nowMs });
    const digested = snapshotOf((builder) => {
      digest.latest.forEach((sample) => builder.addLatest(sample));
      digest.cpu.forEach((point) => builder.addCpuPoint(point.kind, point.name, point.timeMs, point.cores));
    }, nowMs);

    assert.deepEqual(digested, whole);
    // The window really holds what the test set up, so the equality above is not between two empties.
    assert.deepEqual(
      whole.vms.map((vm) => `${vm.name}@${vm.host}`),
      ['mover@n2', 'quiet@n3', 'steady@n1'],
    );
    assert.equal(whole.vms.find((vm) => vm.name === 'mover')!.vcpus, 4);
    assert.equal(whole.vms.find((vm) => vm.name === 'steady')!.cpuUsedWindowCores.length, 29);
    assert.equal(whole.hosts.find((host) => host.name === 'n3')!.status, 'stale');
    // The absurd rows are skipped by both, and counted once each.
    assert.equal(stream.skips.skipped, 2);
    assert.equal(digest.skips.skipped, 2);
    assert.ok(
      digest.skips.examples.every((example) => /vm=steady/.test(example)),
      digest.skips.examples.join('; '),
    );
  });

  it('reads fewer rows than every sample whole: one per series for the newest, one field for the window', async () => {
    const digest = await store.readDigest!({ fromMs, toMs: nowMs, nowMs });
    const vmLatest = digest.latest.filter((sample) => sample.kind === 'vm');
    // steady, quiet, gone, and mover on each of its two hosts: one newest row per series (the
    // series of steady on n2 has no good row).
    assert.equal(vmLatest.length, 5);
    assert.equal(digest.cpu.filter((point) => point.kind === 'vm' && point.name === 'mover').length, 30);
  });
});
