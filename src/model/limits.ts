/**
 * The limits on migrations: one vocabulary for the policies (what a plan may hold), the monitor (what
 * a round may enqueue) and the queue (what may run at once). Built from the config's `limits` section
 * by `limitsFromConfig` (src/config/limits.ts); the defaults are the policies'
 * (`DEFAULT_SETTINGS.limits`), which the config schema takes as its own.
 */
export interface MigrationLimits {
  /** Moves one monitor round may plan and enqueue (`limits.movesPerRound`). */
  movesPerRound: number;
  /** Moves the monitor may enqueue in any hour (`limits.movesPerHour`). */
  movesPerHour: number;
  /** Migrations queued or running at once that leave one host. */
  migrationsPerSourceHost: number;
  /** Migrations queued or running at once that arrive on one host. */
  migrationsPerDestinationHost: number;
  /** Migrations queued or running at once in the whole cluster. */
  migrationsInCluster: number;
  /** A VM that moved is not moved again for this long (`limits.cooldown`). */
  cooldownMs: number;
  /** A VM is not moved back to the host it came from while its last move is younger than this (max(2 h, 4 × cooldown)). */
  pingPongWindowMs: number;
  /** Failed migrations in a row after which a VM is quarantined, and for how long (`limits.quarantine`). */
  quarantineAfterFailures: number;
  quarantineMs: number;
}

/**
 * Which of the three concurrency limits stops a migration: a policy passes a candidate over with it
 * (migrations in flight and planned count), a worker's job waits for a slot with it.
 */
export type LimitReason = 'SOURCE_HOST_LIMIT' | 'DESTINATION_HOST_LIMIT' | 'CLUSTER_LIMIT';
