/**
 * The migration cost model (policies/cost.ts): what a plan says a move takes. Pure; milliseconds.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { migrationCost } from '../../policies/cost.ts';
import { DEFAULT_SETTINGS } from '../../policies/settings.ts';

const MiB = 2 ** 20;
const base = { ...DEFAULT_SETTINGS.cost, bandwidthBytesPerSec: 125e6, setupMs: 200 };

describe('migrationCost', () => {
  it('an idle guest: its memory at the bandwidth, plus the setup time', () => {
    const cost = migrationCost(250e6, 0, 0, 0, base);
    assert.equal(cost.bytes, 250e6);
    assert.equal(cost.durationMs, 200 + 2000);
  });

  it('a stream slower than the link (CPU-bound, TLS) sets the pace; 0 means no such limit', () => {
    const fast = { ...base, bandwidthBytesPerSec: 1.25e9 };
    assert.equal(migrationCost(250e6, 0, 0, 0, { ...fast, streamBytesPerSec: 0 }).durationMs, 200 + 200);
    assert.equal(migrationCost(250e6, 0, 0, 0, { ...fast, streamBytesPerSec: 250e6 }).durationMs, 200 + 1000);
    // A stream faster than the link changes nothing.
    assert.equal(migrationCost(250e6, 0, 0, 0, { ...base, streamBytesPerSec: 1e9 }).durationMs, 2200);
  });

  it('a dirtying guest sends more than its memory; one dirtying faster than the link is capped at the rounds', () => {
    const dirty = migrationCost(256 * MiB, 60 * MiB, 0, 0, base);
    assert.ok(dirty.bytes > 256 * MiB && dirty.durationMs > migrationCost(256 * MiB, 0, 0, 0, base).durationMs);
    const runaway = migrationCost(100e6, 200e6, 0, 0, base);
    assert.equal(runaway.bytes, 100e6 * (base.maxPrecopyRounds + 1));
  });

  it('checkpoint: memory once (nothing resent however dirty), saved and restored locally, relayed by the worker', () => {
    const settings = {
      ...base,
      mode: 'checkpoint' as const,
      checkpointLocalBytesPerSec: 250e6,
      checkpointCopyBytesPerSec: 100e6,
    };
    const cost = migrationCost(250e6, 60 * MiB, 0, 0, settings);
    assert.equal(cost.bytes, 250e6);
    // 200 ms + save 1 s + restore 1 s + relay at min(125, 100) MB/s 2.5 s
    assert.equal(cost.durationMs, 200 + 1000 + 1000 + 2500);
  });

  it('busy hosts copy slower; the score is the duration priced per second', () => {
    const idle = migrationCost(250e6, 0, 0, 0, base);
    const busy = migrationCost(250e6, 0, 1, 1, base);
    assert.equal(busy.durationMs, 200 + 2000 * 2);
    assert.equal(idle.score, (base.scorePerSecond * idle.durationMs) / 1000);
  });
});
