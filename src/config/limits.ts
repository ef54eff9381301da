/** The config's `limits` section as one MigrationLimits (src/model/limits.ts). */
import { DEFAULT_SETTINGS } from '../../policies/settings.ts';
import type { MigrationLimits } from '../model/index.ts';
import type { LbvmConfig } from './schema.ts';

/** The limits as the policies, the monitor and the queue read them. */
export function limitsFromConfig(config: LbvmConfig): MigrationLimits {
  const limits = config.limits;
  return {
    movesPerRound: limits.movesPerRound,
    movesPerHour: limits.movesPerHour,
    migrationsPerSourceHost: limits.migrationsPerSourceHost,
    migrationsPerDestinationHost: limits.migrationsPerDestinationHost,
    migrationsInCluster: limits.migrationsInCluster,
    cooldownMs: limits.cooldown,
    // Moving straight back is refused for a while longer than the cooldown, unless the config says how long.
    pingPongWindowMs: limits.pingPongWindow ?? Math.max(DEFAULT_SETTINGS.limits.pingPongWindowMs, 4 * limits.cooldown),
    quarantineAfterFailures: limits.quarantineAfterFailures,
    quarantineMs: limits.quarantine,
  };
}
