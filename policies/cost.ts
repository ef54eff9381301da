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
 *   durationMs = bytes / bandwidth · 1000 · (1 + loadSlowdown · (cpuUse_source + cpuUse_dest) / 2)
 *   score = scorePerSecond · durationMs / 1000
 * Busy hosts copy slower and the migration's own CPU and network use hurts both hosts more, hence
 * the load term.
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
  const bandwidth = settings.bandwidthBytesPerSec;
  const ratio = Math.max(0, dirtyBytesPerSec) / bandwidth;
  const rounds = settings.maxPrecopyRounds;
  const diskBytes = Math.max(0, localDiskBytes);
  const memoryBytes =
    ratio >= 1
      ? memBytes * (rounds + 1)
      : ratio === 0
        ? memBytes
        : (memBytes * (1 - ratio ** (rounds + 1))) / (1 - ratio);
  const bytes = memoryBytes + diskBytes;
  const load = Math.max(0, sourceCpuUse) + Math.max(0, destCpuUse);
  const durationMs = (bytes / bandwidth) * 1000 * (1 + (settings.loadSlowdown * load) / 2);
  return {
    bytes: Math.round(bytes),
    ...(diskBytes > 0 ? { diskBytes } : {}),
    durationMs: Math.round(durationMs),
    score: (settings.scorePerSecond * durationMs) / 1000,
  };
}
