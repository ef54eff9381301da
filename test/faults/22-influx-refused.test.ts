/**
 * Fault 22: InfluxDB answers 400 (a field type conflict, a point beyond the retention policy, a time it
 * cannot parse) or 401. What must hold: bad points are set aside with a count, not retried forever
 * (nor do they block the spool behind them); a 401 says "authentication" and which URL, without the
 * password. Against a real influxd with authentication on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Sample } from '../../src/model/index.ts';
import { deliver, openStore, Spool, StoreAuthFailed } from '../../src/store/index.ts';
import { influxQuery, startInflux, type InfluxServer } from '../helpers/influx.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, vmSample } from '../store/builders.ts';
import { captureLog } from '../store/log-capture.ts';

describe('fault 22: InfluxDB refuses points (400) or credentials (401)', () => {
  const admin = { username: 'lbvm-admin', password: 'pw-Secr3t-x9' };
  const basicAuth = { authorization: `Basic ${Buffer.from(`${admin.username}:${admin.password}`).toString('base64')}` };
  let server: InfluxServer;
  before(async () => {
    server = await startInflux({ admin });
  });
  after(async () => {
    await server?.stop();
  });

  it('sets aside points InfluxDB refuses (type conflict, beyond retention) with a count, and does not retry them', async () => {
    const captured = captureLog();
    const store = openStore(server.storeUrl('refused', admin), { retentionMs: 86_400_000, log: captured.log });
    const now = Date.now();
    await store.writeSamples([hostSample('n1', now - 2000)]);
    // Someone wrote cpuCores as a string into the same measurement: a type conflict for our next points.
    const write = await fetch(`${server.httpUrl}/write?db=refused&precision=ms`, {
      method: 'POST',
      headers: basicAuth,
      body: `host_sample,host=other cpuCores="eight" ${now - 1000}`,
    });
    assert.equal(write.status, 400, 'the server refuses the conflicting string itself');
    await fetch(`${server.httpUrl}/write?db=refused&precision=ms&rp=lbvm_raw`, {
      method: 'POST',
      headers: basicAuth,
      body: `vm_sample,host=n1,vm=v vcpus="two" ${now - 1000}`,
    });
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
    assert.deepEqual(
      stored.map((sample) => sample.host).sort(),
      ['n1', 'n1', 'n2'],
      'the good points of the batch are stored',
    );
    // The wrong-typed point someone else wrote is skipped by the reader, counted, with one warning.
    assert.equal(stream.skips.skipped, 1);
    assert.match(stream.skips.examples[0]!, /vm_sample host=n1 vm=v .*vcpus is string/);
    const warning = captured.warnings().find((line) => /InfluxDB refused 1 points.*type conflict/.test(line.msg));
    assert.ok(captured.warnings().some((line) => /set aside 1 samples older than the retention/.test(line.msg)));
    assert.ok(warning, JSON.stringify(captured.lines()));
  });

  it('refused points waiting in the spool are replayed once: set aside with a count, the spool empties, the good ones behind them are stored', async () => {
    const captured = captureLog();
    const store = openStore(server.storeUrl('replay', admin), { retentionMs: 86_400_000, log: captured.log });
    const now = Date.now();
    await store.writeSamples([hostSample('n0', now - 5000)]); // creates the database and its policies
    // Someone else's client wrote memUsedBytes as a string first: our float memUsedBytes now conflicts.
    const foreign = await fetch(`${server.httpUrl}/write?db=replay&precision=ms&rp=lbvm_raw`, {
      method: 'POST',
      headers: basicAuth,
      body: `vm_sample,host=x,vm=z memUsedBytes="some" ${now - 4000}`,
    });
    assert.equal(foreign.status, 204);
    // What an outage left in the spool: good samples, a conflicting one, one beyond retention and a
    // time in microseconds (InfluxDB would drop it answering "dropped=0"), then more good ones.
    const spool = new Spool({ dir: tmpDir(), maxBytes: 1e6, log: captured.log });
    const good = (host: string, offset: number) => hostSample(host, now - 3000 + offset);
    await spool.append([
      { sample: good('n1', 0) },
      { sample: vmSample('v1', 'n1', now - 3000) }, // memUsedBytes is a string in the database: refused
      { sample: good('n1', -3 * 86_400_000) }, // beyond the 1-day retention
      { sample: good('n2', 0) },
      { sample: { ...good('n3', 0), timeMs: (now - 3000) * 1000 } }, // microseconds
      { sample: good('n4', 0) },
    ]);
    const first = await deliver(store, spool, { samples: [good('n5', 1000)] });
    assert.equal(first.storeError, undefined, first.storeError);
    assert.equal(first.replayed, 6);
    assert.equal(first.written, 1);
    assert.equal(first.rejected, 3, JSON.stringify(first));
    assert.match(first.rejectedReasons.join('\n'), /type conflict/);
    assert.match(first.rejectedReasons.join('\n'), /beyond retention/);
    assert.match(first.rejectedReasons.join('\n'), /is after .* \(microseconds instead of milliseconds/);
    assert.equal(spool.pendingBytes(), 0, 'nothing refused stays in the spool to be retried');
    const again = await deliver(store, spool, {});
    assert.deepEqual([again.replayed, again.written, again.rejected], [0, 0, 0], 'refused points are not tried again');
    const stored = await influxQuery(
      server,
      'replay',
      'SELECT "cpuUsedCores" FROM "lbvm_raw"."host_sample" GROUP BY "host"',
      admin,
    );
    assert.deepEqual(
      stored.results[0]!.series!.map((series) => series.tags!.host).sort(),
      ['n0', 'n1', 'n2', 'n4', 'n5'],
      'the good points around the bad ones are stored',
    );
    const warnings = captured
      .warnings()
      .map((line) => line.msg)
      .join('\n');
    assert.match(warnings, /InfluxDB refused 1 points/);
    assert.match(warnings, /set aside 1 invalid samples/);
    assert.match(warnings, /set aside 1 samples older than the retention/);
  });

  it('without or with wrong credentials: a clear "authentication" error naming the URL, the samples spooled, no secret in any log line', async () => {
    const captured = captureLog();
    for (const url of [
      server.storeUrl('authdb'),
      server.storeUrl('authdb', { username: admin.username, password: 'wrong-Pa55' }),
    ]) {
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
            if (value instanceof Error)
              return { ...value, message: value.message, cause: (value as { cause?: unknown }).cause };
          }
          return value;
        });
        for (const secret of [
          'wrong-Pa55',
          admin.password,
          Buffer.from(`${admin.username}:wrong-Pa55`).toString('base64'),
        ]) {
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

  it('reading with wrong credentials: the same "authentication" error naming the URL, no secret', async () => {
    const store = openStore(server.storeUrl('authdb', { username: admin.username, password: 'wrong-Pa55' }));
    const stream = store.readSamples({ fromMs: Date.now() - 60_000, toMs: Date.now() });
    await assert.rejects(
      (async () => {
        for await (const _sample of stream) break;
      })(),
      (error: Error) => {
        assert.ok(error instanceof StoreAuthFailed, String(error));
        assert.match(
          error.message,
          /InfluxDB at influx:\/\/lbvm-admin:\*\*\*@127\.0\.0\.1:\d+\/authdb refused authentication \(401\)/,
        );
        assert.ok(!error.message.includes('wrong-Pa55'));
        return true;
      },
    );
  });
});
