/**
 * The InfluxDB backend against a real influxd: schema, round trip, hostile names in tags, reads in
 * pieces, a failed write's exact remainder. Its faults (an outage, 400s, 401s) are in test/faults/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sample } from '../../src/model/index.ts';
import { openStore, StoreWriteFailed, type SampleStore } from '../../src/store/index.ts';
import { influxQuery, startInflux, type InfluxServer } from '../helpers/influx.ts';
import { hostSample, vmSample } from './builders.ts';

async function readAll(store: SampleStore, fromMs: number, toMs: number, nowMs = Date.now()): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const sample of store.readSamples({ fromMs, toMs, nowMs })) samples.push(sample);
  return samples;
}

describe('influx store', () => {
  let server: InfluxServer;
  before(async () => {
    server = await startInflux();
  });
  after(async () => {
    await server?.stop();
  });

  it('creates the database, the raw retention policy and the 5-minute continuous queries', async () => {
    const store = openStore(server.storeUrl('schema'), { retentionMs: 7 * 86_400_000 });
    await store.writeSamples([hostSample('n1', Date.now() - 1000)]);
    const policies = await influxQuery(server, 'schema', 'SHOW RETENTION POLICIES ON "schema"');
    const rows = policies.results[0]!.series![0]!.values;
    assert.deepEqual(rows.find((row) => row[0] === 'lbvm_raw')?.slice(1, 2), ['168h0m0s']);
    assert.equal(rows.find((row) => row[0] === 'lbvm_raw')?.[4], true, 'lbvm_raw is the default policy');
    assert.ok(rows.some((row) => row[0] === 'lbvm_5m'));
    const cqs = await influxQuery(server, 'schema', 'SHOW CONTINUOUS QUERIES');
    const text = JSON.stringify(cqs);
    assert.match(text, /lbvm_host_5m.*mean\(\*\).*GROUP BY time\(5m\)/);
    assert.match(text, /lbvm_vm_5m/);
    // The continuous queries' SELECT, run by hand over a closed 5-minute interval, writes the means
    // (InfluxDB would run it at the end of each interval; string fields such as state are left out).
    const store2 = openStore(server.storeUrl('schema'));
    const start = Math.floor((Date.now() - 3_600_000) / 300_000) * 300_000;
    await store2.writeSamples([
      hostSample('n1', start + 1000, { cpuUsedCores: 1 }),
      hostSample('n1', start + 61_000, { cpuUsedCores: 3 }),
      vmSample('v1', 'n1', start + 1000, { cpuUsedCores: 0.25 }),
      vmSample('v1', 'n1', start + 61_000, { cpuUsedCores: 0.75 }),
    ]);
    const selectOf = (name: string) => {
      const cq = cqs.results[0]!.series![0]!.values.find((row) => row[0] === name)![1] as string;
      return cq
        .replace(/^.* BEGIN /, '')
        .replace(/ GROUP BY/, ` WHERE time >= ${start}ms AND time < ${start + 300_000}ms GROUP BY`)
        .replace(/ END$/, '');
    };
    for (const name of ['lbvm_host_5m', 'lbvm_vm_5m']) {
      const ran = await influxQuery(server, 'schema', selectOf(name));
      assert.equal(ran.results[0]!.error, undefined, JSON.stringify(ran));
    }
    const hostMeans = await influxQuery(
      server,
      'schema',
      `SELECT mean_cpuUsedCores FROM "lbvm_5m"."host_sample_5m" WHERE time = ${start}ms`,
    );
    assert.deepEqual(hostMeans.results[0]!.series![0]!.values, [[start, 2]]);
    const vmMeans = await influxQuery(
      server,
      'schema',
      `SELECT mean_cpuUsedCores FROM "lbvm_5m"."vm_sample_5m" WHERE time = ${start}ms GROUP BY "vm"`,
    );
    assert.deepEqual(vmMeans.results[0]!.series![0]!.values, [[start, 0.5]]);
    assert.equal(vmMeans.results[0]!.series![0]!.tags?.vm, 'v1', 'tags are kept by GROUP BY *');
    // Opening again (another collector, a restart) changes nothing and fails nothing.
    await openStore(server.storeUrl('schema'), { retentionMs: 7 * 86_400_000 }).writeSamples([
      hostSample('n1', Date.now()),
    ]);
  });

  it('reads back a window as written, hostile names included, with last sample times and events', async () => {
    const store = openStore(server.storeUrl('roundtrip'));
    const t0 = Date.now() - 30 * 60_000;
    const names = [
      'n1',
      'x; rm -rf /',
      '$(reboot)',
      '../../etc',
      'back\\slash',
      'a,b=c d',
      'new\nline',
      'caf\u00e9 \ud800',
      'n'.repeat(10_240),
    ];
    const written: Sample[] = [];
    for (let minute = 0; minute < 20; minute++) {
      // Every other round the VM is busy (a Proxmox lock) under HA: string fields only while set.
      const busy = minute % 2 ? { busy: 'lock: "migrate"', haState: 'started' } : {};
      for (const host of names)
        written.push(
          hostSample(host, t0 + minute * 60_000),
          vmSample(`${host}-vm`, host, t0 + minute * 60_000, { tags: ['lbvm.anti-affinity=web'], ...busy }),
        );
    }
    const report = await store.writeSamples(written);
    assert.deepEqual([report.written, report.rejected], [written.length, 0]);
    const back = await readAll(store, t0, t0 + 19 * 60_000);
    const key = (sample: Sample) => JSON.stringify(sample, Object.keys(sample).sort());
    assert.deepEqual(back.map(key).sort(), written.map(key).sort());
    const onlyOne = await (async () => {
      const samples: Sample[] = [];
      for await (const sample of store.readSamples({
        fromMs: t0,
        toMs: t0 + 19 * 60_000,
        hosts: ['../../etc'],
        kinds: ['vm'],
      }))
        samples.push(sample);
      return samples;
    })();
    assert.equal(onlyOne.length, 20);
    assert.ok(onlyOne.every((sample) => sample.kind === 'vm' && sample.host === '../../etc'));
    const last = await store.lastSampleTimes();
    assert.deepEqual(new Set(last.keys()), new Set(names));
    assert.ok([...last.values()].every((time) => time === t0 + 19 * 60_000));

    await store.writeEvents([
      { type: 'migration.started', timeMs: t0, vm: 'vm-1', from: 'n1', to: 'n2' },
      { type: 'migration.started', timeMs: t0, vm: 'vm-2', from: 'n1', to: 'n3' },
      { type: 'migration.finished', timeMs: t0 + 5000, vm: 'vm-1', from: 'n1', to: 'n2', downtimeMs: 3 },
    ]);
    const events = await store.readEvents({ fromMs: t0, toMs: t0 + 10_000 });
    assert.equal(events.length, 3, 'two events in the same millisecond are both kept');
    assert.deepEqual(
      events
        .slice(0, 2)
        .map((event) => event.vm)
        .sort(),
      ['vm-1', 'vm-2'],
    );
    assert.equal(events[2]!.type, 'migration.finished');
    assert.equal(events[2]!.downtimeMs, 3);
  });

  it('reads a large window in pieces (groups of hosts, two queries at a time), every sample once', async () => {
    const store = openStore(server.storeUrl('large'));
    const t0 = Date.now() - 20 * 60_000;
    const written: Sample[] = [];
    for (let host = 0; host < 150; host++) {
      for (const minute of [0, 1, 2]) {
        const timeMs = t0 + minute * 60_000;
        written.push(hostSample(`h${host}`, timeMs, { vmCount: 30 }));
        for (let vm = 0; vm < 30; vm++) written.push(vmSample(`h${host}-v${vm}`, `h${host}`, timeMs));
      }
    }
    assert.equal((await store.writeSamples(written)).written, written.length);
    const plan = await (
      store as unknown as { planReads: (kind: string, query: object) => Promise<string[]> }
    ).planReads('vm', { fromMs: t0, toMs: t0 + 3 * 60_000 });
    assert.ok(plan.length >= 2, `a ${written.length}-sample window is read in ${plan.length} queries`);
    const back = await readAll(store, t0, t0 + 3 * 60_000);
    assert.equal(back.length, written.length);
    const keys = new Set(
      back.map((sample) => `${sample.kind}|${sample.host}|${sample.kind === 'vm' ? sample.vm : ''}|${sample.timeMs}`),
    );
    assert.equal(keys.size, written.length, 'no sample twice');
  });

  it('a write in many batches that fails returns exactly the unwritten samples, in their order', async () => {
    const store = openStore(server.storeUrl('batches'), { batchSize: 7 });
    const t0 = Date.now() - 60_000;
    await store.writeSamples([hostSample('n0', t0 - 1000)]);
    const samples = Array.from({ length: 50 }, (_unused, index) => hostSample(`n${index}`, t0 + index));
    await server.stop();
    try {
      await assert.rejects(store.writeSamples(samples), (error: Error) => {
        assert.ok(error instanceof StoreWriteFailed);
        assert.deepEqual(error.unwritten, samples);
        return true;
      });
    } finally {
      await server.start();
    }
    assert.equal((await store.writeSamples(samples)).written, 50);
  });
});
