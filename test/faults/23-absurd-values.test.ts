/**
 * Fault 23: NaN, negative or absurd values in samples (a VM using 900 cores, a VM using more cores
 * than its host has, memory in use far beyond the memory there is, negative rates). What must hold:
 * rejected at the reader, never reaching a policy, counted in a warning. Bad samples are put straight
 * into a files store and into InfluxDB (as a broken or foreign collector would, past our own write
 * checks), then the real monitor reads the window: the snapshot its policies get holds none of them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readCluster } from '../../src/monitor/read.ts';
import { FilesStore, openStore } from '../../src/store/index.ts';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { GiB, simClusterFixture, simVm } from '../monitor/sim-cluster.ts';
import { hostSample, vmSample } from '../store/builders.ts';
import { captureLog } from '../store/log-capture.ts';

const T0 = Date.UTC(2026, 0, 10, 23, 30);

/** The bad samples, each with the reason a reader must give; `hog` passes every check of its own. */
function badSamples(timeMs: number) {
  return [
    { sample: vmSample('vm-0', 'h1', timeMs, { cpuUsedCores: 900 }), reason: /cpuUsedCores 900 is absurd for 2 vCPUs/ },
    {
      sample: vmSample('hog', 'h1', timeMs, { vcpus: 1000, cpuUsedCores: 900 }),
      reason: /cpuUsedCores 900 is absurd for a VM on a host of 4 cores/,
    },
    {
      sample: vmSample('vm-1', 'h1', timeMs, { memBytes: 2 * GiB, diskReadBytesPerSec: -5e6 }),
      reason: /diskReadBytesPerSec is negative/,
    },
    {
      sample: vmSample('vm-2', 'h1', timeMs, { memBytes: 2 * GiB, memUsedBytes: 100 * GiB }),
      reason: /memUsedBytes \d+ is absurd for memBytes/,
    },
    {
      sample: hostSample('h2', timeMs, { cpuCores: 4, cpuUsedCores: -3, memBytes: 16 * GiB }),
      reason: /cpuUsedCores is negative/,
    },
    {
      sample: hostSample('h3', timeMs, { cpuCores: 4, memBytes: 16 * GiB, memUsedBytes: 100 * GiB }),
      reason: /memUsedBytes \d+ is absurd for memBytes/,
    },
  ];
}

/** InfluxDB line protocol for a sample, written as our writer would but without its checks. */
function lineOf(sample: ReturnType<typeof badSamples>[number]['sample']): string {
  const { kind, host, timeMs, ...rest } = sample as unknown as Record<string, unknown> & {
    kind: string;
    host: string;
    timeMs: number;
  };
  const tags = kind === 'vm' ? `host=${host},vm=${String(rest.vm)}` : `host=${host}`;
  delete rest.vm;
  const fields = Object.entries(rest)
    .filter(([, value]) => value !== undefined && typeof value !== 'object')
    .map(([key, value]) => `${key}=${typeof value === 'string' ? JSON.stringify(value) : value}`)
    .join(',');
  return `${kind === 'vm' ? 'vm_sample' : 'host_sample'},${tags} ${fields} ${timeMs}`;
}

describe('fault 23: NaN, negative and absurd values in samples', () => {
  const fixture = simClusterFixture();
  let influx: InfluxServer;
  before(async () => {
    influx = await startInflux();
  });
  after(async () => {
    await influx?.stop();
  });

  it('on write: the files store sets NaN and absurd samples aside, counted in one warning, instead of storing them', async () => {
    const dir = tmpDir();
    const captured = captureLog();
    const store = openStore(`files:${dir}`, { log: captured.log });
    const report = await store.writeSamples([
      hostSample('n1', T0),
      hostSample('n1', T0 + 1, { cpuUsedCores: Number.NaN }),
      vmSample('v', 'n1', T0, { cpuUsedCores: 900 }),
    ]);
    assert.deepEqual([report.written, report.rejected], [1, 2]);
    assert.equal(captured.warnings().length, 1);
    assert.match(captured.warnings()[0]!.msg, /set aside 2 invalid samples/);
    assert.equal(
      fs
        .readFileSync(path.join(dir, '2026-01-10', 'n1.jsonl'), 'utf8')
        .trim()
        .split('\n').length,
      1,
    );
  });

  for (const kind of ['files', 'influx'] as const) {
    it(`on read (${kind} store): rejected at the reader, counted in one warning and in the round, never in the snapshot the policies get`, async () => {
      const captured = captureLog();
      const c = await fixture.cluster({
        hosts: 3,
        vms: Array.from({ length: 6 }, (_, i) => simVm(`vm-${i}`, 0.3)),
        worker: false,
        log: captured.log,
        ...(kind === 'influx' ? { storeUrl: influx.storeUrl(`absurd${Date.now()}`) } : {}),
      });
      await c.collect();
      const nowMs = Date.now();
      const bad = badSamples(nowMs);
      if (c.store instanceof FilesStore) {
        for (const { sample } of bad) {
          const record = sample as unknown as Record<string, unknown>;
          // JSON has no NaN: a NaN written by JSON.stringify is null; write h2's as a foreign writer would.
          fs.appendFileSync(
            c.store.fileFor(sample.host, sample.timeMs),
            `${JSON.stringify({ timeMs: record.timeMs, ...record })}\n`,
          );
        }
        fs.appendFileSync(
          c.store.fileFor('h2', nowMs),
          `${JSON.stringify({ ...hostSample('h2', nowMs + 1), cpuUsedCores: null })}\n`,
        );
      } else {
        const database = c.config.store.url.slice(c.config.store.url.lastIndexOf('/') + 1);
        const response = await fetch(`${influx.httpUrl}/write?db=${database}&precision=ms&rp=lbvm_raw`, {
          method: 'POST',
          body: bad.map(({ sample }) => lineOf(sample)).join('\n'),
        });
        assert.equal(response.status, 204, await response.text());
      }
      const expectedSkips = bad.length + (kind === 'files' ? 1 : 0);
      const view = await readCluster({ config: c.config, store: c.store, redis: c.redis, queue: c.queue }, Date.now());
      assert.equal(view.samplesSkipped, expectedSkips);
      const { snapshot } = view;
      assert.deepEqual(
        snapshot.vms.map((vm) => vm.name),
        ['vm-0', 'vm-1', 'vm-2', 'vm-3', 'vm-4', 'vm-5'],
        'the absurd VM "hog" never reaches a policy',
      );
      for (const vm of snapshot.vms) {
        assert.ok(
          vm.cpuUsedWindowCores.every((cores) => cores >= 0 && cores <= 1.5),
          `${vm.name}: ${vm.cpuUsedWindowCores}`,
        );
        assert.ok(vm.memUsedBytes <= vm.memBytes && (vm.diskBytesPerSec ?? 0) >= 0, vm.name);
      }
      for (const host of snapshot.hosts) {
        assert.ok(
          host.cpuUsedWindowCores.every((cores) => cores >= 0 && cores <= host.cpuCores),
          `${host.name}: ${host.cpuUsedWindowCores}`,
        );
        assert.ok(host.memUsedBytes <= host.memBytes, host.name);
        assert.equal(host.status, 'up');
      }
      const record = await c.monitor().round();
      assert.equal(record.inputs.samplesSkipped, expectedSkips);
      assert.equal(record.inputs.vms, 6);
      const warnings = captured
        .warnings()
        .filter((line) => new RegExp(`skipped ${expectedSkips} bad samples while reading`).test(line.msg));
      assert.equal(
        warnings.length,
        2,
        `one warning per read (readCluster, then the round): ${JSON.stringify(captured.warnings())}`,
      );
      const examples = (warnings[0]!.examples as string[]).join('\n');
      for (const { reason } of bad) assert.match(examples, reason);
      if (kind === 'files') assert.match(examples, /h2\.jsonl:\d+: cpuUsedCores is null, expected a number/);
    });
  }
});
