/**
 * Fault 3: corrupt, truncated and future-dated lines in the files store. What must hold: readers skip
 * them with one warning naming file:line, and the monitor still plans. The reader on a real folder,
 * then the real monitor on a store that collectors (real collector core, sim driver) keep writing to.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FilesStore, openStore } from '../../src/store/index.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { simClusterFixture, simVm } from '../monitor/sim-cluster.ts';
import { hostSample, readWindow, vmSample } from '../store/builders.ts';
import { captureLog } from '../store/log-capture.ts';

const T0 = Date.UTC(2026, 0, 10, 23, 30);

describe('fault 3: corrupt, truncated and future-dated lines in the files store', () => {
  const fixture = simClusterFixture();

  it('skips corrupt, truncated, wrong-typed, absurd and future-dated lines with one warning naming file:line, and keeps reading', async () => {
    const dir = tmpDir();
    const captured = captureLog();
    const store = openStore(`files:${dir}`, { log: captured.log });
    const nowMs = T0 + 3_600_000;
    await store.writeSamples([hostSample('n1', T0), vmSample('vm-a', 'n1', T0)]);
    const file = path.join(dir, '2026-01-10', 'n1.jsonl');
    const bad = [
      '{"timeMs":' + (T0 + 1000) + ',"kind":"host","host":"n1","cpuCores":8,"cpuUs', // cut in the middle (then a newline)
      'this is not json',
      JSON.stringify({
        kind: 'host',
        host: 'n1',
        timeMs: T0 + 2000,
        cpuCores: '8',
        cpuUsedCores: 1,
        memBytes: 1,
        memUsedBytes: 1,
      }), // wrong type
      JSON.stringify(vmSample('vm-a', 'n1', T0 + 3000, { cpuUsedCores: 900 })), // a VM using 900 cores
      JSON.stringify(hostSample('n1', T0 + 4000, { cpuUsedCores: -1 })), // negative
      JSON.stringify({ ...hostSample('n1', T0 + 5000), memUsedBytes: null }), // NaN written by JSON.stringify is null
      JSON.stringify(hostSample('n1', nowMs + 86_400_000)), // a day in the future (and in today's file)
    ];
    fs.appendFileSync(file, `${bad.join('\n')}\n`);
    fs.appendFileSync(file, `${JSON.stringify(hostSample('n1', T0 + 6000))}\n`);
    fs.appendFileSync(file, '{"timeMs":' + (T0 + 7000) + ',"kind":"host"'); // truncated last line, no newline

    const result = await readWindow(store, { fromMs: T0 - 1000, toMs: nowMs + 2 * 86_400_000, nowMs });
    assert.deepEqual(
      result.samples.map((sample) => sample.timeMs),
      [T0, T0, T0 + 6000],
      'the good lines before and after the bad ones are read',
    );
    assert.equal(result.skips.skipped, 8);
    const warnings = captured.warnings();
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    const warning = warnings[0]!;
    assert.match(warning.msg, /skipped 8 bad samples/);
    const examples = (warning.examples as string[]).join('\n');
    for (const line of [3, 4, 5, 6, 7, 8, 9, 11])
      assert.ok(examples.includes(`${file}:${line}:`), `no warning names ${file}:${line} in\n${examples}`);
    assert.match(examples, /:6: .*cpuUsedCores 900 is absurd/);
    assert.match(examples, /:7: .*negative/);
    assert.match(examples, /:9: future-dated/);
    assert.match(examples, /:11: truncated line/);
    assert.match(examples, /:5: cpuCores is string/);
  });

  it(
    'the monitor still plans: bad lines skipped and counted in its round, a cut last ' +
      'line does not swallow the next round, a future-dated line makes no host alive',
    async () => {
      const captured = captureLog();
      const c = await fixture.cluster({
        hosts: 3,
        vms: Array.from({ length: 6 }, (_, i) => simVm(`vm-${i}`, 0.6)),
        worker: false,
        log: captured.log,
      });
      await c.collect();
      const store = c.store as FilesStore;
      const file = store.fileFor('h1', Date.now());
      const nowMs = Date.now();
      fs.appendFileSync(
        file,
        [
          'garbage \u0000\u00ff not json',
          JSON.stringify(hostSample('h1', nowMs + 86_400_000)).slice(0, 50), // torn in the middle
          JSON.stringify(hostSample('h1', nowMs + 3_600_000, { cpuUsedCores: 0 })), // an hour ahead: a broken clock
          '',
        ].join('\n') + '{"timeMs":', // and a last line cut short, as by a crash
      );
      // A host that only ever wrote from the future is not taken as alive.
      const ghost = store.fileFor('ghost', nowMs);
      fs.writeFileSync(ghost, `${JSON.stringify(hostSample('ghost', nowMs + 3_600_000))}\n`);
      await c.collect(); // appends after the cut line
      const record = await c.monitor().round();
      assert.equal(record.mode, 'enforce', record.notes.join('\n'));
      assert.deepEqual(record.inputs.unknownHosts, []);
      assert.equal(record.inputs.hosts, 3, 'ghost is not a host');
      assert.equal(record.inputs.vms, 6);
      assert.equal(record.inputs.samplesSkipped, 5, JSON.stringify(record.inputs));
      assert.ok(record.enqueued.length > 0, 'the monitor still plans and moves');
      assert.ok(record.enqueued.every((move) => move.from === 'h1'));
      const lines = fs.readFileSync(file, 'utf8').split('\n');
      const garbageLine = lines.findIndex((line) => line.startsWith('garbage')) + 1;
      const warning =
        captured.warnings().find((line) => /skipped 5 bad samples/.test(line.msg)) ??
        assert.fail(JSON.stringify(captured.warnings()));
      const examples = (warning.examples as string[]).join('\n');
      assert.ok(examples.includes(`${file}:${garbageLine}: not valid JSON`), examples);
      assert.ok(examples.includes(`${file}:${garbageLine + 1}: not valid JSON`), examples);
      assert.match(examples, new RegExp(`${file.replace(/[.]/g, '\\.')}:${garbageLine + 2}: future-dated`));
      assert.match(examples, /ghost\.jsonl:1: future-dated/);
      assert.ok(
        examples.includes(`${file}:${garbageLine + 3}: not valid JSON`),
        `the cut line, ended by the next round's write: ${examples}`,
      );
      const newest = await readWindow(c.store, {
        fromMs: nowMs - 60_000,
        toMs: Date.now(),
        hosts: ['h1'],
        kinds: ['host'],
      });
      assert.equal(newest.samples.length, 2, 'both rounds of h1 read, the one after the cut line included');
    },
  );
});
