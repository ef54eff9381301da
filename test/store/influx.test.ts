/**
 * The InfluxDB backend against a real influxd: schema, round trip, hostile names in tags, 400s set
 * aside, an outage in the middle of a run (every sample arrives once, in order), and authentication.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sample } from '../../src/model/index.ts';
import { deliver, openStore, Spool, StoreAuthFailed, StoreWriteFailed, type SampleStore } from '../../src/store/index.ts';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, vmSample } from './builders.ts';
import { captureLog } from './log-capture.ts';

async function query(server: InfluxServer, db: string, q: string, auth?: string) {
  const headers: Record<string, string> = auth ? { authorization: `Basic ${Buffer.from(auth).toString('base64')}` } : {};
  const response = await fetch(`${server.httpUrl}/query?db=${encodeURIComponent(db)}&epoch=ms&q=${encodeURIComponent(q)}`, { headers });
  return (await response.json()) as { results: { series?: { name: string; columns: string[]; values: unknown[][]; tags?: Record<string, string> }[]; error?: string }[] };
}

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
    const policies = await query(server, 'schema', 'SHOW RETENTION POLICIES ON "schema"');
    const rows = policies.results[0]!.series![0]!.values;
    assert.deepEqual(rows.find((row) => row[0] === 'lbvm_raw')?.slice(1, 2), ['168h0m0s']);
    assert.equal(rows.find((row) => row[0] === 'lbvm_raw')?.[4], true, 'lbvm_raw is the default policy');
    assert.ok(rows.some((row) => row[0] === 'lbvm_5m'));
    const cqs = await query(server, 'schema', 'SHOW CONTINUOUS QUERIES');
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
      return cq.replace(/^.* BEGIN /, '').replace(/ GROUP BY/, ` WHERE time >= ${start}ms AND time < ${start + 300_000}ms GROUP BY`).replace(/ END$/, '');
    };
    for (const name of ['lbvm_host_5m', 'lbvm_vm_5m']) {
      const ran = await query(server, 'schema', selectOf(name));
      assert.equal(ran.results[0]!.error, undefined, JSON.stringify(ran));
    }
    const hostMeans = await query(server, 'schema', `SELECT mean_cpuUsedCores FROM "lbvm_5m"."host_sample_5m" WHERE time = ${start}ms`);
    assert.deepEqual(hostMeans.results[0]!.series![0]!.values, [[start, 2]]);
    const vmMeans = await query(server, 'schema', `SELECT mean_cpuUsedCores FROM "lbvm_5m"."vm_sample_5m" WHERE time = ${start}ms GROUP BY "vm"`);
    assert.deepEqual(vmMeans.results[0]!.series![0]!.values, [[start, 0.5]]);
    assert.equal(vmMeans.results[0]!.series![0]!.tags?.vm, 'v1', 'tags are kept by GROUP BY *');
    // Opening again (another collector, a restart) changes nothing and fails nothing.
    await openStore(server.storeUrl('schema'), { retentionMs: 7 * 86_400_000 }).writeSamples([hostSample('n1', Date.now())]);
  });

  it('reads back a window as written, hostile names included, with last sample times and events', async () => {
    const store = openStore(server.storeUrl('roundtrip'));
    const t0 = Date.now() - 30 * 60_000;
    const names = ['n1', 'x; rm -rf /', '$(reboot)', '../../etc', 'back\\slash', 'a,b=c d', 'new\nline', 'caf\u00e9 \ud800', 'n'.repeat(10_240)];
    const written: Sample[] = [];
    for (let minute = 0; minute < 20; minute++) {
      for (const host of names) written.push(hostSample(host, t0 + minute * 60_000), vmSample(`${host}-vm`, host, t0 + minute * 60_000, { tags: ['lbvm.anti-affinity=web'] }));
    }
    const report = await store.writeSamples(written);
    assert.deepEqual([report.written, report.rejected], [written.length, 0]);
    const back = await readAll(store, t0, t0 + 19 * 60_000);
    const key = (sample: Sample) => JSON.stringify(sample, Object.keys(sample).sort());
    assert.deepEqual(back.map(key).sort(), written.map(key).sort());
    const onlyOne = await (async () => {
      const samples: Sample[] = [];
      for await (const sample of store.readSamples({ fromMs: t0, toMs: t0 + 19 * 60_000, hosts: ['../../etc'], kinds: ['vm'] })) samples.push(sample);
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
    assert.deepEqual(events.slice(0, 2).map((event) => event.vm).sort(), ['vm-1', 'vm-2']);
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
    const plan = await (store as unknown as { planReads: (kind: string, query: object) => Promise<string[]> }).planReads('vm', { fromMs: t0, toMs: t0 + 3 * 60_000 });
    assert.ok(plan.length >= 2, `a ${written.length}-sample window is read in ${plan.length} queries`);
    const back = await readAll(store, t0, t0 + 3 * 60_000);
    assert.equal(back.length, written.length);
    const keys = new Set(back.map((sample) => `${sample.kind}|${sample.host}|${sample.kind === 'vm' ? sample.vm : ''}|${sample.timeMs}`));
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

  it('sets aside points InfluxDB refuses (type conflict, beyond retention) with a count, and does not retry them', async () => {
    const captured = captureLog();
    const store = openStore(server.storeUrl('refused'), { retentionMs: 86_400_000, log: captured.log });
    const now = Date.now();
    await store.writeSamples([hostSample('n1', now - 2000)]);
    // Someone wrote cpuCores as a string into the same measurement: a type conflict for our next points.
    const write = await fetch(`${server.httpUrl}/write?db=refused&precision=ms`, { method: 'POST', body: `host_sample,host=other cpuCores="eight" ${now - 1000}` });
    assert.equal(write.status, 400, 'the server refuses the conflicting string itself');
    await fetch(`${server.httpUrl}/write?db=refused&precision=ms&rp=lbvm_raw`, { method: 'POST', body: `vm_sample,host=n1,vm=v vcpus="two" ${now - 1000}` });
    const spool = new Spool({ dir: tmpDir(), maxBytes: 1e6 });
    const report = await deliver(store, spool, {
      samples: [
        hostSample('n1', now - 1000),
        hostSample('n1', now - 10 * 86_400_000), // beyond the 1-day retention
        hostSample('n2', now - 1000),
        vmSample('v2', 'n1', now - 1000), // vcpus is a float here, a string in the database: type conflict
      ],
    });
    assert.equal(report.storeError, undefined);
    assert.equal(report.spooled, 0, 'refused points are not spooled for retry');
    assert.equal(report.rejected, 2, JSON.stringify(report));
    assert.match(report.rejectedReasons.join('\n'), /beyond retention/);
    assert.match(report.rejectedReasons.join('\n'), /type conflict/);
    const stream = store.readSamples({ fromMs: now - 11 * 86_400_000, toMs: now });
    const stored: Sample[] = [];
    for await (const sample of stream) stored.push(sample);
    assert.deepEqual(stored.map((sample) => sample.host).sort(), ['n1', 'n1', 'n2'], 'the good points of the batch are stored');
    // The wrong-typed point someone else wrote is skipped by the reader, counted, with one warning.
    assert.equal(stream.skips.skipped, 1);
    assert.match(stream.skips.examples[0]!, /vm_sample host=n1 vm=v .*vcpus is string/);
    const warning = captured.warnings().find((line) => /InfluxDB refused 1 points.*type conflict/.test(line.msg));
    assert.ok(captured.warnings().some((line) => /set aside 1 samples older than the retention/.test(line.msg)));
    assert.ok(warning, JSON.stringify(captured.lines()));
  });

  it('InfluxDB stopped mid-run for 3 rounds, then back: every sample of those rounds arrives once, in order', async () => {
    const captured = captureLog();
    const store = openStore(server.storeUrl('outage'), { log: captured.log, requestTimeoutMs: 3000 });
    const spool = new Spool({ dir: path.join(tmpDir(), 'spool'), maxBytes: 16 * 1024 * 1024, log: captured.log });
    const t0 = Date.now() - 10 * 60_000;
    const roundAt = (index: number): Sample[] => [
      hostSample('n1', t0 + index * 10_000, { cpuUsedCores: index }),
      ...Array.from({ length: 30 }, (_unused, vm) => vmSample(`vm-${vm}`, 'n1', t0 + index * 10_000, { cpuUsedCores: (vm % 2) / 2 })),
    ];
    const before = await deliver(store, spool, { samples: roundAt(0) });
    assert.equal(before.written, 31);
    await server.stop();
    try {
      for (const index of [1, 2, 3]) {
        const report = await deliver(store, spool, { samples: roundAt(index) });
        assert.equal(report.written, 0);
        assert.equal(report.spooled, 31);
        assert.match(report.storeError ?? '', /unavailable.*ECONNREFUSED/);
      }
      const spooled = await spool.pendingItems();
      assert.deepEqual(
        spooled.filter((item) => item.sample?.kind === 'host').map((item) => item.sample!.timeMs),
        [1, 2, 3].map((index) => t0 + index * 10_000),
        'spooled in the order taken',
      );
    } finally {
      await server.start();
    }
    const after = await deliver(store, spool, { samples: roundAt(4) });
    assert.equal(after.storeError, undefined);
    assert.equal(after.replayed, 93);
    assert.equal(after.written, 31);
    assert.equal(spool.pendingBytes(), 0);
    const series = await query(server, 'outage', 'SELECT count("cpuUsedCores") FROM "lbvm_raw"."vm_sample" GROUP BY "vm"');
    const counts = series.results[0]!.series!.map((entry) => entry.values[0]![1]);
    assert.equal(counts.length, 30);
    assert.ok(counts.every((count) => count === 5), `each VM has 5 samples, once each: ${counts.join(',')}`);
    const hosts = await query(server, 'outage', 'SELECT "cpuUsedCores" FROM "lbvm_raw"."host_sample"');
    assert.deepEqual(hosts.results[0]!.series![0]!.values, [0, 1, 2, 3, 4].map((index) => [t0 + index * 10_000, index]));
  });
});

describe('influx store with authentication', () => {
  const admin = { username: 'lbvm-admin', password: 'pw-Secr3t-x9' };
  let server: InfluxServer;
  before(async () => {
    server = await startInflux({ admin });
  });
  after(async () => {
    await server?.stop();
  });

  it('works with credentials', async () => {
    const store = openStore(server.storeUrl('authdb', admin));
    const now = Date.now();
    assert.equal((await store.writeSamples([hostSample('n1', now - 1000)])).written, 1);
    assert.equal((await readAll(store, now - 5000, now)).length, 1);
  });

  it('without or with wrong credentials: a clear "authentication" error naming the URL, the samples spooled, no secret in any log line', async () => {
    const captured = captureLog();
    for (const url of [server.storeUrl('authdb'), server.storeUrl('authdb', { username: admin.username, password: 'wrong-Pa55' })]) {
      const store = openStore(url, { log: captured.log });
      await assert.rejects(store.writeSamples([hostSample('n1', Date.now())]), (error: Error) => {
        assert.ok(error instanceof StoreAuthFailed, String(error));
        assert.match(error.message, /authentication/);
        assert.ok(error.message.includes(`127.0.0.1:${server.port}/authdb`), error.message);
        assert.ok(!error.message.includes('wrong-Pa55') && !error.message.includes(admin.password), error.message);
        // Nothing reachable from the error (as a logger serialising it with its cause would) holds a secret.
        const seen = new Set<unknown>();
        const deep = JSON.stringify(error, (_key, value: unknown) => {
          if (typeof value === 'object' && value !== null) {
            if (seen.has(value)) return undefined;
            seen.add(value);
            if (value instanceof Error) return { ...value, message: value.message, cause: (value as { cause?: unknown }).cause };
          }
          return value;
        });
        for (const secret of ['wrong-Pa55', admin.password, Buffer.from(`${admin.username}:wrong-Pa55`).toString('base64')]) {
          assert.ok(!deep.includes(secret), `the error carries a secret: ${deep.slice(0, 500)}`);
        }
        return true;
      });
      const spool = new Spool({ dir: tmpDir(), maxBytes: 1e6, log: captured.log });
      const report = await deliver(store, spool, { samples: [hostSample('n1', Date.now())] });
      assert.equal(report.authFailed, true);
      assert.equal(report.spooled, 1, 'kept for when the credentials are fixed');
      captured.log.warn({ store: store.displayUrl, error: report.storeError }, 'as the collector logs it');
    }
    const text = captured.text();
    assert.ok(text.length > 0);
    assert.ok(!text.includes('wrong-Pa55') && !text.includes(admin.password), text);
    assert.match(text, /influx:\/\/lbvm-admin:\*\*\*@127\.0\.0\.1/);
  });
});
