/**
 * Cost of one migration, from the VM's memory size and dirty rate, and its local disks. Pure.
 *
 * M is the memory the guest has used (memUsedBytes, at most its size; its size when unknown): pages it
 * never touched are zero, which QEMU sends as a flag, not a page. The bench predicts with it; the
 * planner passes none, and prices a move at the whole memory (plan-builder.ts says why).
 *
 * Live (pre-copy, as QEMU 7.2 runs it: migration/ram.c): round 0 copies all memory M; each later round
 * copies what the guest dirtied during the previous one, at most all of M:
 *   sent₀ = M,   sentᵢ₊₁ = min(M, d · (1 − throttleᵢ) · sentᵢ / b)
 * which without throttling is the geometric series of Clark et al. ("Live Migration of Virtual
 * Machines", NSDI 2005), r = d / b: M, M·r, M·r², …  The rounds stop once what is left fits in the
 * downtime limit at the bandwidth (sentᵢ ≤ b · downtimeLimit): the guest is paused and that last part
 * sent. A guest dirtying as fast as the link copies (r ≥ 1) never gets there, unless auto-converge
 * throttles its vCPUs: QEMU checks once a second-long period of rounds has passed whether the guest
 * dirtied more than half of what was sent (throttle-trigger-threshold 50%); on the second such period
 * it throttles the vCPUs by 20% (cpu-throttle-initial), then 10 points more each time
 * (cpu-throttle-increment), up to 99%. Without auto-converge such a migration does not converge
 * (`converges: false`, and the policies do not pick it: constraints.ts WOULD_NOT_CONVERGE).
 * Local disks (not on shared storage) are copied once, in full, over the same link, before the
 * memory (block mirroring; writes during the copy are mirrored as they come and not counted here):
 *   bytes += localDiskBytes
 * at the bandwidth b, the least of the cap the migration is given and what one stream carries when the
 * link is not the limit (streamBytesPerSec, measured on idle hosts: QEMU's migration thread and TLS
 * are CPU-bound; 0 = no such limit; the two overlap, a socket's buffers keep the link busy while the
 * thread works). Busy hosts lower that ceiling, not a copy the link limits:
 *   slowdown = 1 + loadSlowdown · (cpuUse_source + cpuUse_dest) / 2
 *   b = min(cap, streamBytesPerSec / slowdown),   copyMs = bytes / b · 1000
 *   (streamBytesPerSec 0: b = cap,                copyMs = bytes / b · 1000 · slowdown)
 * A guest that dirties its memory slows its own migration as well: the source tracks, finds and
 * re-reads each dirtied page (under TCG every store after a bitmap sync takes QEMU's slow path; under
 * KVM the first write to a page faults), CPU work in the process that sends the stream, so the whole
 * copy stretches with the dirty rate (dirtyTrackingBytesPerSec, measured by the bench; 0 = not counted):
 *   copyMs · (1 + d / dirtyTrackingBytesPerSec)
 * Checkpoint mode (the guest is stopped, so nothing is sent twice): bytes = M, saved to disk, relayed
 * by the worker between the agents (at most checkpointCopyBytesPerSec, over the link) and restored (the
 * agent refuses checkpoint mode for a guest with local disks):
 *   copyMs = (2 · M / checkpointLocalBytesPerSec + M / min(cap, checkpointCopyBytesPerSec)) · 1000
 * Over TLS (tls.migration) the relay is decrypted and encrypted again in the worker: two TLS hops where
 * a live stream has one, CPU work that does not overlap the relay's own (that is CPU-bound too), at the
 * rate one TLS stream carries:
 *   copyMs += 2 · M / streamBytesPerSec · 1000     (streamBytesPerSec > 0)
 * Then, with the fixed time every migration takes (starting the destination, switching over):
 *   durationMs = setupMs + copyMs
 * The price a plan weighs a move by is its copy alone, the time it loads the link and both hosts:
 *   score = scorePerSecond · copyMs / 1000
 * A time every move takes alike would only raise every threshold level's minimum gain (balance.ts) by
 * the same amount (the best move, the most value less price, is the same either way), and that bar is
 * the level's to set, not a test machine's setup time's (priced, its 200 ms moved every level's bar by
 * 0.0002 and changed the default round's moves on the shared traces: bench/README.md "## quality").
 * Checked against real migrations on shaped links by `bench migrate --netns`.
 */
import type { MoveCost } from '../src/model/index.ts';
import type { CostSettings } from './settings.ts';

/** QEMU's auto-converge (qapi/migration.json defaults): when it throttles, and by how much. */
const THROTTLE_TRIGGER = 0.5;
const THROTTLE_INITIAL = 0.2;
const THROTTLE_INCREMENT = 0.1;
const THROTTLE_MAX = 0.99;
/** Rounds after which a migration that has not converged is called non-converging. */
const MAX_ROUNDS = 1000;

/** The smaller of a and a ceiling b, where a ceiling of 0 means none. */
function least(a: number, b: number): number {
  return b > 0 ? Math.min(a, b) : a;
}

export function migrationCost(
  memBytes: number,
  dirtyBytesPerSec: number,
  sourceCpuUse: number,
  destCpuUse: number,
  settings: CostSettings,
  localDiskBytes = 0,
  memUsedBytes = 0,
): MoveCost {
  const load = Math.max(0, sourceCpuUse) + Math.max(0, destCpuUse);
  const slowdown = 1 + (settings.loadSlowdown * load) / 2;
  const ceiling = settings.streamBytesPerSec > 0 ? settings.streamBytesPerSec / slowdown : 0;
  const bandwidth = least(settings.bandwidthBytesPerSec, ceiling);
  const diskBytes = Math.max(0, localDiskBytes);
  const memory = memUsedBytes > 0 ? Math.min(memBytes, memUsedBytes) : memBytes;
  let bytes: number;
  let copyMs: number;
  let converges = true;
  if (settings.mode === 'checkpoint') {
    bytes = memory;
    const relay = least(settings.bandwidthBytesPerSec, settings.checkpointCopyBytesPerSec);
    copyMs = ((2 * bytes) / settings.checkpointLocalBytesPerSec + bytes / relay) * 1000;
    if (settings.tls && settings.streamBytesPerSec > 0) copyMs += ((2 * bytes) / settings.streamBytesPerSec) * 1000;
  } else {
    const precopy = precopyBytes(memory, Math.max(0, dirtyBytesPerSec), bandwidth, settings);
    converges = precopy.converges;
    bytes = precopy.bytes + diskBytes;
    const tracking =
      settings.dirtyTrackingBytesPerSec > 0 ? 1 + Math.max(0, dirtyBytesPerSec) / settings.dirtyTrackingBytesPerSec : 1;
    copyMs = (bytes / bandwidth) * 1000 * (ceiling > 0 ? 1 : slowdown) * tracking;
  }
  // Built field by field in this order (no spread of temporary objects): planners price tens of
  // thousands of candidate moves a round.
  const cost: MoveCost = { bytes: Math.round(bytes) } as MoveCost;
  if (diskBytes > 0 && settings.mode !== 'checkpoint') cost.diskBytes = diskBytes;
  cost.durationMs = Math.round(settings.setupMs + copyMs);
  cost.score = (settings.scorePerSecond * copyMs) / 1000;
  if (!converges) cost.converges = false;
  return cost;
}

/**
 * The bytes pre-copy sends (the rounds, then the last part with the guest paused), round by round as
 * QEMU does (see the module comment); `converges: false` when it would go on for ever.
 */
function precopyBytes(
  memBytes: number,
  dirtyBytesPerSec: number,
  bandwidth: number,
  settings: Pick<CostSettings, 'downtimeLimitMs' | 'autoConverge'>,
): { bytes: number; converges: boolean } {
  const pausedBytes = (bandwidth * settings.downtimeLimitMs) / 1000;
  let pending = memBytes;
  let bytes = 0;
  let throttle = 0;
  let highPeriods = 0;
  const period = { seconds: 0, sent: 0, dirtied: 0 };
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (round > 0 && pending <= pausedBytes) return { bytes: bytes + pending, converges: true };
    const seconds = pending / bandwidth;
    const dirtied = Math.min(memBytes, dirtyBytesPerSec * (1 - throttle) * seconds);
    bytes += pending;
    period.seconds += seconds;
    period.sent += pending;
    period.dirtied += dirtied;
    if (period.seconds >= 1) {
      if (settings.autoConverge && period.dirtied > THROTTLE_TRIGGER * period.sent && ++highPeriods >= 2) {
        throttle = throttle > 0 ? Math.min(THROTTLE_MAX, throttle + THROTTLE_INCREMENT) : THROTTLE_INITIAL;
        highPeriods = 0;
      }
      Object.assign(period, { seconds: 0, sent: 0, dirtied: 0 });
    }
    // Nothing left to converge to: the guest is idle, or the rounds no longer shrink and cannot be throttled.
    if (dirtied === 0) return { bytes, converges: true };
    if (dirtied >= pending && !settings.autoConverge) return { bytes, converges: false };
    pending = dirtied;
  }
  return { bytes, converges: false };
}
