/**
 * Cost of one live migration, from the VM's memory size and dirty rate, and its local disks.
 *
 * Pre-copy live migration (Clark et al., "Live Migration of Virtual Machines", NSDI 2005): round 0
 * copies all memory M; each later round copies what the guest dirtied meanwhile, so with
 * r = dirtyRate / bandwidth the rounds copy M, M·r, M·r², …  Over n rounds:
 *   bytes = M · (1 − r^(n+1)) / (1 − r)      (r < 1)
 *   bytes = M · (n + 1)                        (r ≥ 1: never converges; stops after n rounds)
 * Local disks (not on shared storage) are copied once, in full, over the same link, before the
 * memory (block mirroring; writes during the copy are mirrored as they come and not counted here):
 *   bytes += localDiskBytes
 * where bandwidth is the least of the cap a migration is given and what one stream carries
 * (streamBytesPerSec: the migration thread and TLS are CPU-bound; 0 = no such limit):
 *   copyMs     = bytes / bandwidth · 1000
 * Checkpoint mode (the guest is stopped, so nothing is sent twice): bytes = M, saved to disk, relayed
 * by the worker between the agents (at most checkpointCopyBytesPerSec) and restored (the agent
 * refuses checkpoint mode for a guest with local disks):
 *   copyMs     = (2 · M / checkpointLocalBytesPerSec + M / min(bandwidth, checkpointCopyBytesPerSec)) · 1000
 * Then, with the fixed time every migration takes (starting the destination, switching over):
 *   durationMs = setupMs + copyMs · (1 + loadSlowdown · (cpuUse_source + cpuUse_dest) / 2)
 *   score = scorePerSecond · durationMs / 1000
 * Busy hosts copy slower and the migration's own CPU and network use hurts both hosts more, hence
 * the load term. Checked against real migrations on shaped links by `bench migrate --netns`.
 */
import type { MoveCost } from '../src/model/index.ts';
import type { CostSettings } from './settings.ts';

export function migrationCost(
  memBytes: number,
  dirtyBytesPerSec: number,
  sourceCpuUse: number,
  destCpuUse: number,
  settings: CostSettings,
  localDiskBytes = 0,
): MoveCost {
  const least = (a: number, b: number) => (b > 0 ? Math.min(a, b) : a);
  const bandwidth = least(settings.bandwidthBytesPerSec, settings.streamBytesPerSec);
  const load = Math.max(0, sourceCpuUse) + Math.max(0, destCpuUse);
  const slowdown = 1 + (settings.loadSlowdown * load) / 2;
  const diskBytes = Math.max(0, localDiskBytes);
  let bytes: number;
  let copyMs: number;
  if (settings.mode === 'checkpoint') {
    bytes = memBytes;
    const relay = least(bandwidth, settings.checkpointCopyBytesPerSec);
    copyMs = ((2 * bytes) / settings.checkpointLocalBytesPerSec + bytes / relay) * 1000;
  } else {
    const ratio = Math.max(0, dirtyBytesPerSec) / bandwidth;
    const rounds = settings.maxPrecopyRounds;
    const memoryBytes =
      ratio >= 1
        ? memBytes * (rounds + 1)
        : ratio === 0
          ? memBytes
          : (memBytes * (1 - ratio ** (rounds + 1))) / (1 - ratio);
    bytes = memoryBytes + diskBytes;
    copyMs = (bytes / bandwidth) * 1000;
  }
  const durationMs = settings.setupMs + copyMs * slowdown;
  return {
    bytes: Math.round(bytes),
    ...(diskBytes > 0 && settings.mode !== 'checkpoint' ? { diskBytes } : {}),
    durationMs: Math.round(durationMs),
    score: (settings.scorePerSecond * durationMs) / 1000,
  };
}
