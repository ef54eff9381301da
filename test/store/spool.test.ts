/**
 * The spool on its own: a busy lock, its bound, its file modes. A store folder that turns read-only
 * or full is fault 2 (test/faults/02-store-unwritable.test.ts).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { deliver, openStore, Spool } from '../../src/store/index.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, readWindow } from './builders.ts';
import { captureLog } from './log-capture.ts';

describe('spool', () => {
  it('while another live process holds the spool (a long replay), a round writes directly instead of waiting or failing', async () => {
    const dir = tmpDir();
    const store = openStore(`files:${path.join(dir, 'samples')}`);
    const spool = new Spool({ dir: path.join(dir, 'spool'), maxBytes: 1e6 });
    const t0 = Date.now() - 60_000;
    await spool.append([{ sample: hostSample('n1', t0) }]);
    // The lock of a process that still runs (this test's parent).
    fs.writeFileSync(path.join(dir, 'spool', 'spool.lock'), String(process.ppid));
    const busy = await deliver(store, spool, { samples: [hostSample('n1', t0 + 1000)] });
    assert.deepEqual([busy.written, busy.replayed, busy.spooled, busy.storeError], [1, 0, 0, undefined]);
    fs.rmSync(path.join(dir, 'spool', 'spool.lock'));
    const free = await deliver(store, spool, { samples: [hostSample('n1', t0 + 2000)] });
    assert.deepEqual([free.written, free.replayed], [1, 1]);
    const stored = (await readWindow(`files:${path.join(dir, 'samples')}`, { fromMs: t0, toMs: t0 + 2000 })).samples;
    assert.deepEqual(
      stored.map((sample) => sample.timeMs).sort((a, b) => a - b),
      [t0, t0 + 1000, t0 + 2000],
    );
  });

  it('is bounded: past spoolMaxBytes the oldest are dropped, with a warning saying how many', async () => {
    const captured = captureLog();
    const spool = new Spool({ dir: tmpDir(), maxBytes: 10_000, log: captured.log });
    const t0 = Date.now();
    const items = Array.from({ length: 100 }, (_unused, index) => ({ sample: hostSample('n1', t0 + index) }));
    for (let index = 0; index < 100; index += 10) await spool.append(items.slice(index, index + 10));
    const kept = await spool.pendingItems();
    assert.ok(spool.pendingBytes() <= 10_000);
    assert.ok(kept.length > 10 && kept.length < 100, `${kept.length} kept`);
    // The newest are kept, in order.
    assert.deepEqual(
      kept.map((item) => item.sample!.timeMs),
      items.slice(100 - kept.length).map((item) => item.sample.timeMs),
    );
    const dropped = captured.warnings().reduce((sum, line) => sum + Number(line.dropped), 0);
    assert.equal(dropped, 100 - kept.length);
    assert.match(captured.warnings()[0]!.msg, /spool full .* dropped the \d+ oldest spooled items/);
  });
});

// Spool files are readable only by their owner: they may hold a cluster's inventory.
describe('spool files', () => {
  it('are created with mode 0600', async () => {
    const spool = new Spool({ dir: tmpDir(), maxBytes: 1e6 });
    await spool.append([{ sample: hostSample('n1', Date.now()) }]);
    assert.equal(fs.statSync(spool.file).mode & 0o777, 0o600);
  });
});
