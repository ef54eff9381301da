/**
 * Fault 2: the shared files store unwritable: read-only (a real tmpfs remounted ro: EROFS, which
 * chmod cannot give root) or full (a small real tmpfs: ENOSPC). What must hold: the collector spools,
 * warns once per round, and replays later: every sample once, in the order taken.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { collectRound } from '../../collectors/collect.ts';
import type { Sample } from '../../src/model/index.ts';
import { deliver, FilesStore, openStore, Spool, StoreWriteFailed } from '../../src/store/index.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, readWindow, vmSample } from '../store/builders.ts';
import { captureLog } from '../store/log-capture.ts';

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

describe('fault 2: the shared files store unwritable (read-only or full)', () => {
  /** How the shared folder becomes unwritable, and how it is mended. */
  const faults = [
    {
      name: 'gone read-only',
      code: /EROFS/,
      make: (shared: string) => remount(shared, 'ro'),
      mend: (shared: string) => remount(shared, 'rw'),
    },
    {
      name: 'full',
      code: /ENOSPC/,
      make: (shared: string, dayFile: string) => {
        // Something else fills the folder to the last byte. tmpfs counts whole pages: the day file's
        // last page is topped up with empty lines (readers skip them), so the next line needs a new page.
        fs.appendFileSync(dayFile, '\n'.repeat(4096 - (fs.statSync(dayFile).size % 4096)));
        try {
          execFileSync('dd', ['if=/dev/zero', `of=${path.join(shared, 'filler')}`, 'bs=64k'], { stdio: 'ignore' });
        } catch {
          /* dd stops with ENOSPC: the folder is full */
        }
      },
      mend: (shared: string) => fs.rmSync(path.join(shared, 'filler')),
    },
  ];
  for (const fault of faults) {
    it(
      `a store folder ${fault.name}: each collect round spools with one warning ` +
        `naming the error, and the next good round replays all, in order, once`,
      async () => {
        const shared = tmpfs(1024 * 1024);
        const storeDir = path.join(shared, 'samples');
        const captured = captureLog();
        const store = new FilesStore({ dir: storeDir, retentionMs: 86_400_000, log: captured.log });
        const spool = new Spool({ dir: path.join(tmpDir(), 'spool'), maxBytes: 1024 * 1024, log: captured.log });
        const stateFile = path.join(tmpDir(), 'state.json');
        const round = () =>
          collectRound({ node: 'n1', store, spool, driver: null, stateFile, log: captured.log, baselineWaitMs: 20 });

        const first = await round();
        assert.equal(first.delivery.written, 1);
        fault.make(shared, store.fileFor('n1', first.timeMs));
        const during = [];
        for (let index = 0; index < 3; index++) during.push(await round());
        for (const result of during) {
          assert.deepEqual([result.delivery.written, result.delivery.spooled], [0, 1], JSON.stringify(result.delivery));
          assert.match(result.delivery.storeError ?? '', fault.code);
        }
        const warnings = captured.warnings().filter((line) => /did not take this round/.test(line.msg));
        assert.equal(warnings.length, 3, 'one warning per round');
        for (const warning of warnings) {
          assert.ok(warning.msg.startsWith(`store files:${storeDir} did not take this round: `), warning.msg);
          assert.match(warning.msg, fault.code);
        }
        assert.equal((await spool.pendingItems()).length, 3);

        fault.mend(shared);
        const back = await round();
        assert.deepEqual([back.delivery.replayed, back.delivery.written, back.delivery.spoolBytes], [3, 1, 0]);
        assert.equal((await spool.pendingItems()).length, 0);
        const stored = (await readWindow(`files:${storeDir}`, { fromMs: first.timeMs, toMs: back.timeMs })).samples;
        const times = [first, ...during, back].map((result) => result.timeMs);
        // Exactly once each, and in the file in the order they were taken.
        assert.deepEqual(
          stored.map((sample) => sample.timeMs),
          times,
        );
        assert.deepEqual(
          [...times].sort((a, b) => a - b),
          times,
        );
      },
    );
  }

  it('a store folder on a filesystem that refuses new folders with ENOENT (procfs): the round ends, spooled, naming the error', async () => {
    // Node's own recursive mkdir spins forever there; a cron collector must not.
    const storeDir = path.join('/proc', `lbvm-${process.pid}`, 'samples');
    const spool = new Spool({ dir: path.join(tmpDir(), 'spool'), maxBytes: 1024 * 1024 });
    const started = Date.now();
    const result = await collectRound({
      node: 'n1',
      store: openStore(`files:${storeDir}`),
      spool,
      driver: null,
      stateFile: path.join(tmpDir(), 'state.json'),
      baselineWaitMs: 20,
    });
    assert.ok(Date.now() - started < 10_000, `the round took ${Date.now() - started} ms`);
    assert.deepEqual([result.delivery.written, result.delivery.spooled], [0, 1]);
    assert.match(result.delivery.storeError ?? '', /ENOENT.*mkdir/);
  });

  it('a full disk in the middle of a round: what was written stays, the rest is spooled, nothing twice', async () => {
    const shared = tmpfs(256 * 1024);
    const storeDir = path.join(shared, 'samples');
    const store = openStore(`files:${storeDir}`);
    const spool = new Spool({ dir: path.join(tmpDir(), 'spool'), maxBytes: 64 * 1024 * 1024 });
    const t0 = Date.now() - 60_000;
    // Long names make each line ~2 KB, so the 256 KB tmpfs fills during this round.
    const round: Sample[] = Array.from({ length: 400 }, (_unused, index) =>
      vmSample(`vm-${index}-${'x'.repeat(2000)}`, `n${index % 4}`, t0 + index),
    );
    const first = await deliver(store, spool, { samples: round });
    assert.ok(first.written > 0 && first.spooled > 0, JSON.stringify(first));
    assert.equal(first.written + first.spooled, round.length);
    assert.match(first.storeError ?? '', /ENOSPC/);

    execFileSync('mount', ['-o', 'remount,size=64m', shared]);
    const second = await deliver(store, spool, { samples: [] });
    assert.equal(second.replayed, first.spooled);
    const stored = (await readWindow(`files:${storeDir}`, { fromMs: t0, toMs: t0 + 1000 })).samples;
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
    const first = await deliver(store, spool, {
      samples: [hostSample('n1', t0)],
      events: [{ type: 'migration.started', timeMs: t0, vm: 'a' }],
    });
    const second = await deliver(store, spool, {
      samples: [hostSample('n1', t0 + 1000)],
      events: [{ type: 'migration.finished', timeMs: t0 + 1000, vm: 'a' }],
    });
    assert.deepEqual([first.spooled, second.spooled], [2, 2]);
    remount(shared, 'rw');
    const back = await deliver(store, spool, {});
    assert.equal(back.replayed, 4);
    const events = await store.readEvents({ fromMs: t0, toMs: t0 + 1000 });
    assert.deepEqual(
      events.map((event) => event.type),
      ['migration.started', 'migration.finished'],
    );
    assert.deepEqual(
      (await readWindow(`files:${storeDir}`, { fromMs: t0, toMs: t0 + 1000 })).samples.map((sample) => sample.timeMs),
      [t0, t0 + 1000],
    );
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
    const stored = (await readWindow(`files:${storeDir}`, { fromMs: t0, toMs: t0 + 60_000 })).samples;
    assert.equal(stored.length, 50);
    assert.deepEqual(
      stored.map((sample) => sample.timeMs).sort((a, b) => a - b),
      samples.map((sample) => sample.timeMs),
    );
  });
});
