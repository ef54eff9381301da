/**
 * No sample lost: a shared folder that turns read-only (a real read-only tmpfs mount) or full makes
 * the collector spool, warn once per round, and replay everything later, in order, exactly once.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { collectRound } from '../../collectors/collect.ts';
import type { Sample } from '../../src/model/index.ts';
import { deliver, openStore, Spool, StoreWriteFailed } from '../../src/store/index.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, vmSample } from './builders.ts';
import { captureLog } from './log-capture.ts';

const mounted: string[] = [];
after(() => {
  for (const dir of mounted) {
    try {
      execFileSync('umount', [dir]);
    } catch {
      /* already gone */
    }
  }
});

/** A real tmpfs at a fresh folder, so it can be made read-only or full. Fails loudly when mounting is not possible. */
function tmpfs(sizeBytes = 8 * 1024 * 1024): string {
  const dir = tmpDir('lbvm-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0755`, 'tmpfs', dir]);
  mounted.push(dir);
  return dir;
}

const remount = (dir: string, mode: 'ro' | 'rw') => execFileSync('mount', ['-o', `remount,${mode}`, dir]);

async function readAll(url: string, fromMs: number, toMs: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const sample of openStore(url).readSamples({ fromMs, toMs, nowMs: toMs })) samples.push(sample);
  return samples;
}

describe('spool', () => {
  it('a store folder gone read-only: each round spools with one warning, and the next good round replays all, in order, once', async () => {
    const shared = tmpfs();
    const storeDir = path.join(shared, 'samples');
    const captured = captureLog();
    const store = openStore(`files:${storeDir}`, { log: captured.log });
    const spool = new Spool({ dir: path.join(tmpDir(), 'spool'), maxBytes: 1024 * 1024, log: captured.log });
    const stateFile = path.join(tmpDir(), 'state.json');
    const round = () => collectRound({ node: 'n1', store, spool, driver: null, stateFile, log: captured.log, baselineWaitMs: 20 });

    const first = await round();
    assert.equal(first.delivery.written, 1);
    remount(shared, 'ro');
    const during = [];
    for (let index = 0; index < 3; index++) during.push(await round());
    for (const result of during) {
      assert.equal(result.delivery.written, 0);
      assert.equal(result.delivery.spooled, 1);
      assert.match(result.delivery.storeError ?? '', /EROFS/);
    }
    const warnings = captured.warnings().filter((line) => /did not take this round/.test(line.msg));
    assert.equal(warnings.length, 3, 'one warning per round');
    assert.equal((await spool.pendingItems()).length, 3);

    remount(shared, 'rw');
    const back = await round();
    assert.equal(back.delivery.replayed, 3);
    assert.equal(back.delivery.written, 1);
    assert.equal(back.delivery.spoolBytes, 0);
    assert.equal((await spool.pendingItems()).length, 0);

    const stored = await readAll(`files:${storeDir}`, first.timeMs, back.timeMs);
    const times = [first, ...during, back].map((result) => result.timeMs);
    // Exactly once each, and in the file in the order they were taken.
    assert.deepEqual(stored.map((sample) => sample.timeMs), times);
    assert.deepEqual([...times].sort((a, b) => a - b), times);
  });

  it('a full disk in the middle of a round: what was written stays, the rest is spooled, nothing twice', async () => {
    const shared = tmpfs(256 * 1024);
    const storeDir = path.join(shared, 'samples');
    const store = openStore(`files:${storeDir}`);
    const spool = new Spool({ dir: path.join(tmpDir(), 'spool'), maxBytes: 64 * 1024 * 1024 });
    const t0 = Date.now() - 60_000;
    // Long names make each line ~2 KB, so the 256 KB tmpfs fills during this round.
    const round: Sample[] = Array.from({ length: 400 }, (_unused, index) => vmSample(`vm-${index}-${'x'.repeat(2000)}`, `n${index % 4}`, t0 + index));
    const first = await deliver(store, spool, { samples: round });
    assert.ok(first.written > 0 && first.spooled > 0, JSON.stringify(first));
    assert.equal(first.written + first.spooled, round.length);
    assert.match(first.storeError ?? '', /ENOSPC/);

    execFileSync('mount', ['-o', 'remount,size=64m', shared]);
    const second = await deliver(store, spool, { samples: [] });
    assert.equal(second.replayed, first.spooled);
    const stored = await readAll(`files:${storeDir}`, t0, t0 + 1000);
    assert.equal(stored.length, round.length, 'every sample stored once');
    assert.deepEqual(new Set(stored.map((sample) => sample.timeMs)).size, round.length);
  });

  it('keeps events too: samples and events taken during an outage all arrive after it, in order', async () => {
    const shared = tmpfs();
    const storeDir = path.join(shared, 'samples');
    const store = openStore(`files:${storeDir}`);
    const spool = new Spool({ dir: tmpDir(), maxBytes: 1e6 });
    const t0 = Date.now() - 60_000;
    remount(shared, 'ro');
    const first = await deliver(store, spool, { samples: [hostSample('n1', t0)], events: [{ type: 'migration.started', timeMs: t0, vm: 'a' }] });
    const second = await deliver(store, spool, { samples: [hostSample('n1', t0 + 1000)], events: [{ type: 'migration.finished', timeMs: t0 + 1000, vm: 'a' }] });
    assert.deepEqual([first.spooled, second.spooled], [2, 2]);
    remount(shared, 'rw');
    const back = await deliver(store, spool, {});
    assert.equal(back.replayed, 4);
    const events = await store.readEvents({ fromMs: t0, toMs: t0 + 1000 });
    assert.deepEqual(events.map((event) => event.type), ['migration.started', 'migration.finished']);
    assert.deepEqual((await readAll(`files:${storeDir}`, t0, t0 + 1000)).map((sample) => sample.timeMs), [t0, t0 + 1000]);
  });

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
    const stored = await readAll(`files:${path.join(dir, 'samples')}`, t0, t0 + 2000);
    assert.deepEqual(stored.map((sample) => sample.timeMs).sort((a, b) => a - b), [t0, t0 + 1000, t0 + 2000]);
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
    assert.deepEqual(kept.map((item) => item.sample!.timeMs), items.slice(100 - kept.length).map((item) => item.sample.timeMs));
    const dropped = captured.warnings().reduce((sum, line) => sum + Number(line.dropped), 0);
    assert.equal(dropped, 100 - kept.length);
    assert.match(captured.warnings()[0]!.msg, /spool full .* dropped the \d+ oldest spooled items/);
  });

  it('resumes a replay cut short by a new outage without writing a batch twice', async () => {
    const shared = tmpfs();
    const storeDir = path.join(shared, 'samples');
    const store = openStore(`files:${storeDir}`);
    const spool = new Spool({ dir: tmpDir(), maxBytes: 1e6 });
    const t0 = Date.now() - 3_600_000;
    const samples = Array.from({ length: 50 }, (_unused, index) => hostSample(`n${index % 5}`, t0 + index * 1000));
    await spool.append(samples.map((sample) => ({ sample })));
    // Replay in batches of 10; the folder goes read-only after the second batch.
    let batches = 0;
    const flaky = {
      ...store,
      kind: store.kind,
      displayUrl: store.displayUrl,
      writeSamples: async (batch: readonly Sample[]) => {
        if (++batches === 3) remount(shared, 'ro');
        return store.writeSamples(batch);
      },
    } as typeof store;
    const cut = await spool.replay(flaky, 10);
    assert.equal(cut.replayed, 20);
    assert.ok(cut.error instanceof StoreWriteFailed);
    assert.equal((await spool.pendingItems()).length, 30);
    remount(shared, 'rw');
    const rest = await spool.replay(store, 10);
    assert.deepEqual([rest.replayed, rest.error], [30, undefined]);
    const stored = await readAll(`files:${storeDir}`, t0, t0 + 60_000);
    assert.equal(stored.length, 50);
    assert.deepEqual(stored.map((sample) => sample.timeMs).sort((a, b) => a - b), samples.map((sample) => sample.timeMs));
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
