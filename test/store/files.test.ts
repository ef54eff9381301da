/**
 * The files store on a real folder: what a monitor reads back is what collectors wrote, streamed,
 * across days, from many writers at once. Its faults (bad lines, hostile names, absurd values) are in
 * test/faults/ (3, 15, 23).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Sample } from '../../src/model/index.ts';
import { openStore } from '../../src/store/index.ts';
import { ROOT } from '../helpers/cli.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, readWindow, vmSample } from './builders.ts';
import { captureLog } from './log-capture.ts';

const T0 = Date.UTC(2026, 0, 10, 23, 30); // 30 minutes before a UTC day boundary

describe('files store', () => {
  it('reads back a window across hosts and a day boundary exactly as written, with per-host last sample times', async () => {
    const dir = tmpDir();
    const store = openStore(`files:${dir}`);
    const written: Sample[] = [];
    for (let minute = 0; minute < 60; minute++) {
      for (const host of ['n1', 'n2', 'n3']) {
        const timeMs = T0 + minute * 60_000;
        written.push(hostSample(host, timeMs, { cpuUsedCores: minute / 10 }), vmSample(`vm-${host}`, host, timeMs));
      }
    }
    const report = await store.writeSamples(written);
    assert.equal(report.written, written.length);
    // One file per host per UTC day.
    assert.deepEqual(fs.readdirSync(dir).sort(), ['2026-01-10', '2026-01-11']);
    assert.deepEqual(fs.readdirSync(path.join(dir, '2026-01-10')).sort(), ['n1.jsonl', 'n2.jsonl', 'n3.jsonl']);

    const nowMs = T0 + 2 * 3_600_000;
    const all = await readWindow(store, { fromMs: T0, toMs: T0 + 59 * 60_000, nowMs });
    assert.equal(all.samples.length, written.length);
    assert.equal(all.skips.skipped, 0);
    const key = (sample: Sample) => JSON.stringify(sample, Object.keys(sample).sort());
    assert.deepEqual(all.samples.map(key).sort(), written.map(key).sort());

    const window = await readWindow(store, {
      fromMs: T0 + 20 * 60_000,
      toMs: T0 + 39 * 60_000,
      hosts: ['n2'],
      kinds: ['host'],
      nowMs,
    });
    assert.equal(window.samples.length, 20);
    assert.ok(window.samples.every((sample) => sample.host === 'n2' && sample.kind === 'host'));
    assert.deepEqual(
      window.samples.map((sample) => sample.timeMs),
      Array.from({ length: 20 }, (_unused, index) => T0 + (20 + index) * 60_000),
    );

    const last = await store.lastSampleTimes({ nowMs, sinceMs: T0 - 86_400_000 });
    assert.deepEqual(Object.fromEntries(last), { n1: T0 + 59 * 60_000, n2: T0 + 59 * 60_000, n3: T0 + 59 * 60_000 });
  });

  it('stores events next to samples and reads a window of them, oldest first', async () => {
    const dir = tmpDir();
    const store = openStore(`files:${dir}`);
    await store.writeEvents([
      { type: 'migration.finished', timeMs: T0 + 2000, vm: 'vm-1', from: 'n1', to: 'n2', totalMs: 900 },
      { type: 'migration.started', timeMs: T0 + 1000, vm: 'vm-1', from: 'n1', to: 'n2' },
      { type: 'monitor.paused', timeMs: T0 - 3_600_000 },
    ]);
    const events = await store.readEvents({ fromMs: T0, toMs: T0 + 10_000 });
    assert.deepEqual(
      events.map((event) => event.type),
      ['migration.started', 'migration.finished'],
    );
    assert.equal(events[1]!.totalMs, 900);
    assert.ok(fs.existsSync(path.join(dir, 'events', '2026-01-10')));
  });

  it('streams: reading a window of a large day holds memory to a fraction of the file size', async () => {
    const dir = tmpDir();
    const store = openStore(`files:${dir}`);
    // ~60 MB of one host's day.
    const batch: Sample[] = [];
    for (let index = 0; index < 100_000; index++)
      batch.push(vmSample(`vm-${index % 100}-${'x'.repeat(300)}`, 'big', T0 - 20 * 3_600_000 + index * 100));
    await store.writeSamples(batch);
    const size = fs.statSync(path.join(dir, '2026-01-10', 'big.jsonl')).size;
    assert.ok(size > 40e6, `file is ${size} bytes`);
    batch.length = 0;
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    gc();
    const before = process.memoryUsage().heapUsed;
    let count = 0;
    let peak = 0;
    for await (const _sample of store.readSamples({ fromMs: T0 - 20 * 3_600_000, toMs: T0, nowMs: T0 })) {
      if (++count % 20_000 === 0) {
        gc();
        peak = Math.max(peak, process.memoryUsage().heapUsed - before);
      }
    }
    assert.equal(count, 100_000);
    assert.ok(peak < size / 10, `heap grew by ${peak} bytes while reading a ${size}-byte file`);
  });

  it('many processes appending to the same files at once never interleave inside a line', async () => {
    const dir = tmpDir();
    const writers = 4;
    const rounds = 300;
    const script = (writer: number) =>
      `import { openStore } from ${JSON.stringify(path.join(ROOT, 'src/store/index.ts'))};
       const store = openStore(${JSON.stringify(`files:${dir}`)});
       for (let round = 0; round < ${rounds}; round++) {
         const timeMs = ${T0} + round;
         await store.writeSamples([
           { kind: 'host', host: 'shared', timeMs, cpuCores: 8, cpuUsedCores: ${writer}, memBytes: 1, memUsedBytes: 1 },
           { kind: 'vm', vm: 'w${writer}-' + round + '-' + 'x'.repeat(3000), host: 'shared', timeMs, vcpus: 1, cpuUsedCores: 0, memBytes: 1, memUsedBytes: 1 },
         ]);
       }`;
    const children = Array.from(
      { length: writers },
      (_unused, writer) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(writer)], {
            cwd: ROOT,
            stdio: 'inherit',
          });
          child.on('exit', resolve);
        }),
    );
    assert.deepEqual(await Promise.all(children), new Array(writers).fill(0));
    // An empty line may appear when a writer sees another's line half-written and ends it (see
    // endLineIfCut); readers skip empty lines. What must never happen is a torn or glued line.
    const lines = fs
      .readFileSync(path.join(dir, '2026-01-10', 'shared.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean);
    assert.equal(lines.length, writers * rounds * 2);
    for (const line of lines) JSON.parse(line); // throws on a torn or interleaved line
    const { samples, skips } = await readWindow(openStore(`files:${dir}`), {
      fromMs: T0,
      toMs: T0 + rounds,
      nowMs: T0 + 60_000,
    });
    assert.equal(skips.skipped, 0);
    assert.equal(samples.length, writers * rounds * 2);
  });

  it('enters a large time-ordered file at the window (bisection), naming bad lines by their true line number', async () => {
    const dir = tmpDir();
    const captured = captureLog();
    const store = openStore(`files:${dir}`, { log: captured.log });
    const dayStart = Date.UTC(2026, 0, 12);
    const file = path.join(dir, '2026-01-12', 'n1.jsonl');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'garbage before everything\n'); // a full scan would report this line
    const samples = Array.from({ length: 20_000 }, (_unused, index) =>
      vmSample(`vm-${index % 30}`, 'n1', dayStart + 1000 + index * 4000),
    );
    await store.writeSamples(samples);
    assert.ok(fs.statSync(file).size > 2 * 1024 * 1024, `${fs.statSync(file).size} bytes`);
    assert.ok(!fs.existsSync(`${file}.unsorted`), 'written in time order: no marker');
    // A corrupt line inside the last hour: its true line number is 1 (garbage) + 19_990 + 1.
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.splice(19_991, 0, `{"timeMs":${dayStart + 1000 + 19_990 * 4000},"kind":"vm", broken`);
    fs.writeFileSync(file, lines.join('\n'));
    const fromMs = dayStart + 1000 + 19_100 * 4000;
    const toMs = dayStart + 1000 + 19_999 * 4000;
    const result = await readWindow(store, { fromMs, toMs, nowMs: toMs });
    assert.equal(result.samples.length, 900);
    assert.deepEqual(
      result.samples.map((sample) => sample.timeMs),
      samples.slice(19_100).map((sample) => sample.timeMs),
    );
    assert.equal(result.skips.skipped, 1, JSON.stringify(result.skips));
    assert.match(result.skips.examples[0]!, new RegExp(`${file.replace(/[.]/g, '\\.')}:19992: not valid JSON`));
  });

  it('a sample appended out of time order marks its file, which readers then scan whole: nothing is missed', async () => {
    const dir = tmpDir();
    const store = openStore(`files:${dir}`);
    const dayStart = Date.UTC(2026, 0, 12);
    const samples = Array.from({ length: 20_000 }, (_unused, index) =>
      vmSample(`vm-${index % 30}`, 'n1', dayStart + 3_600_000 + index * 1000),
    );
    await store.writeSamples(samples);
    const file = path.join(dir, '2026-01-12', 'n1.jsonl');
    assert.ok(!fs.existsSync(`${file}.unsorted`));
    // A round written while another replayed its spool: an old sample after newer ones.
    const late = vmSample('late', 'n1', dayStart + 60_000);
    await store.writeSamples([late]);
    assert.ok(fs.existsSync(`${file}.unsorted`));
    const result = await readWindow(store, {
      fromMs: dayStart,
      toMs: dayStart + 120_000,
      nowMs: dayStart + 86_400_000,
    });
    assert.deepEqual(
      result.samples.map((sample) => (sample.kind === 'vm' ? sample.vm : '')),
      ['late'],
    );
  });

  it('prunes day folders older than the retention, samples and events', async () => {
    const dir = tmpDir();
    const store = openStore(`files:${dir}`, { retentionMs: 2 * 86_400_000 });
    const day = 86_400_000;
    await store.writeSamples([hostSample('n1', T0 - 5 * day), hostSample('n1', T0 - day), hostSample('n1', T0)]);
    await store.writeEvents([{ type: 'monitor.paused', timeMs: T0 - 5 * day }]);
    const { removed } = await store.prune(T0);
    assert.equal(removed, 2);
    assert.deepEqual(
      fs
        .readdirSync(dir)
        .filter((name) => name !== 'events')
        .sort(),
      ['2026-01-09', '2026-01-10'],
    );
    assert.deepEqual(fs.readdirSync(path.join(dir, 'events')), []);
  });
});
