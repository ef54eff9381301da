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

  it("a dirtying guest's own copy stretches with its dirty rate when that is counted", () => {
    const tracked = { ...base, autoConverge: false, dirtyTrackingBytesPerSec: 125e6 };
    const plain = migrationCost(100e6, 62.5e6, 0, 0, { ...tracked, dirtyTrackingBytesPerSec: 0 });
    const slowed = migrationCost(100e6, 62.5e6, 0, 0, tracked);
    assert.equal(slowed.bytes, plain.bytes);
    // × (1 + 62.5 / 125) on the copy, not on the setup time.
    assert.equal(slowed.durationMs - 200, Math.round((plain.durationMs - 200) * 1.5));
    assert.equal(migrationCost(100e6, 0, 0, 0, tracked).durationMs, 200 + 800);
  });

  it('a dirtying guest: the geometric series of the rounds, until what is left fits in the downtime limit', () => {
    const settings = { ...base, autoConverge: false, downtimeLimitMs: 50 };
    const memory = 100e6;
    // r = d / b = 0.5: rounds of 100, 50, 25, …, MB until one is at most 125e6 · 0.05 = 6.25 MB (6.25 after 4
    // halvings), which is sent with the guest paused: 100 + 50 + 25 + 12.5 + 6.25 MB.
    const cost = migrationCost(memory, 62.5e6, 0, 0, settings);
    assert.equal(cost.bytes, 193.75e6);
    assert.equal(cost.durationMs, 200 + 1550);
    assert.equal(cost.converges, undefined);
    // A longer downtime limit stops the rounds sooner: fewer bytes.
    assert.ok(migrationCost(memory, 62.5e6, 0, 0, { ...settings, downtimeLimitMs: 300 }).bytes < cost.bytes);
    // An idle guest is copied once, whatever the limit.
    assert.equal(migrationCost(memory, 0, 0, 0, settings).bytes, memory);
  });

  it('a guest dirtying faster than the link: never converges without auto-converge; with it, throttled to an end', () => {
    const runaway = migrationCost(100e6, 200e6, 0, 0, { ...base, autoConverge: false });
    assert.equal(runaway.converges, false);
    const throttled = migrationCost(100e6, 200e6, 0, 0, { ...base, autoConverge: true });
    assert.equal(throttled.converges, undefined);
    // Throttled from 20% up by 10 points a second until the guest dirties less than the link copies
    // (200 MB/s · (1 − p) < 125 MB/s from p = 40%): several times its memory, not for ever.
    assert.ok(throttled.bytes > 3 * 100e6 && throttled.bytes < 20 * 100e6, `${throttled.bytes}`);
    // Just under the link's pace, it converges unthrottled, slowly: more bytes than at half the pace.
    const slow = migrationCost(100e6, 110e6, 0, 0, { ...base, autoConverge: false });
    assert.ok(slow.converges === undefined && slow.bytes > 2 * migrationCost(100e6, 62.5e6, 0, 0, base).bytes);
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
    // Over TLS the worker decrypts and encrypts the relay again: 2 × 250 MB at a 250 MB/s TLS stream, 2 s
    // more; without a measured stream rate there is nothing to count it by.
    const tls = { ...settings, tls: true, streamBytesPerSec: 250e6 };
    assert.equal(migrationCost(250e6, 0, 0, 0, tls).durationMs, 200 + 1000 + 1000 + 2500 + 2000);
    assert.equal(migrationCost(250e6, 0, 0, 0, { ...tls, streamBytesPerSec: 0 }).durationMs, cost.durationMs);
    assert.equal(migrationCost(250e6, 0, 0, 0, { ...tls, tls: false }).durationMs, cost.durationMs);
    // A live stream over TLS is not charged twice: its rate is already the TLS stream's.
    assert.equal(
      migrationCost(250e6, 0, 0, 0, { ...base, tls: true }).durationMs,
      migrationCost(250e6, 0, 0, 0, base).durationMs,
    );
  });

  it('busy hosts copy slower: the stream ceiling when one is set (not a copy the link limits), else all of it', () => {
    const idle = migrationCost(250e6, 0, 0, 0, base);
    const busy = migrationCost(250e6, 0, 1, 1, base);
    assert.equal(busy.durationMs, 200 + 2000 * 2);
    assert.ok(busy.score > idle.score, 'a slower copy is a dearer move');
    // A 500 MB/s ceiling halved by busy hosts is still above the 125 MB/s link: no slower.
    const ceiling = { ...base, streamBytesPerSec: 500e6 };
    assert.equal(migrationCost(250e6, 0, 1, 1, ceiling).durationMs, 200 + 2000);
    // On a 1.25 GB/s link the halved ceiling (250 MB/s) sets the pace.
    assert.equal(migrationCost(250e6, 0, 1, 1, { ...ceiling, bandwidthBytesPerSec: 1.25e9 }).durationMs, 200 + 1000);
  });

  it("prices a move by its copy: the setup time is in the move's duration, not in its price", () => {
    const cost = migrationCost(250e6, 0, 1, 1, base);
    // 2 s at 125 MB/s, doubled by busy hosts: 4 s of copy at scorePerSecond.
    assert.equal(cost.score, (base.scorePerSecond * 4000) / 1000);
    const slowSetup = migrationCost(250e6, 0, 1, 1, { ...base, setupMs: 60_000 });
    assert.equal(slowSetup.durationMs, cost.durationMs - 200 + 60_000);
    assert.equal(slowSetup.score, cost.score);
  });

  it('copies the memory the guest used (untouched pages are zero, sent as a flag), at most its size', () => {
    assert.equal(migrationCost(250e6, 0, 0, 0, base, 0, 125e6).bytes, 125e6);
    assert.equal(migrationCost(250e6, 0, 0, 0, base, 0, 400e6).bytes, 250e6);
    assert.equal(migrationCost(250e6, 0, 0, 0, base, 0, 0).bytes, 250e6);
  });
});
