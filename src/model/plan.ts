/** Plans: what a policy decided, each move with its reason, gain and cost. */

/** Named reasons a policy passes over a candidate or holds a move back. Printed by `lbm plan/explain`. */
export type SkipReason =
  | 'DEST_CPU_FULL'
  | 'DEST_MEM_FULL'
  | 'DEST_OVER_LOW_WATERMARK'
  | 'DEST_OVER_HIGH_WATERMARK'
  /** Consolidation: a receiver would keep less than `headroom` free. */
  | 'DEST_NO_HEADROOM'
  /** Consolidation: the host is being emptied, or already empty. */
  | 'DEST_BEING_EMPTIED'
  /** Consolidation: a receiver's next sample would be above its CPU capacity too often. */
  | 'DEST_OVERLOAD_RISK'
  | 'DEST_STALE'
  | 'DEST_DOWN'
  | 'DEST_MAINTENANCE'
  | 'SOURCE_STALE'
  | 'ANTI_AFFINITY'
  | 'AFFINITY'
  | 'PINNED'
  | 'IGNORED'
  | 'COOLDOWN'
  | 'PING_PONG'
  | 'QUARANTINED'
  | 'IN_FLIGHT'
  | 'VM_BUSY'
  | 'DRIVER_CANNOT_MOVE_DISKS'
  /** Live: the VM dirties memory as fast as a migration copies it, and nothing throttles it (policies/cost.ts). */
  | 'WOULD_NOT_CONVERGE'
  | 'SOURCE_HOST_LIMIT'
  | 'DESTINATION_HOST_LIMIT'
  | 'CLUSTER_LIMIT'
  | 'ROUND_MOVE_LIMIT'
  | 'HOUR_MOVE_LIMIT'
  | 'GAIN_BELOW_COST'
  | 'NO_DESTINATION'
  | 'TOO_MANY_UNKNOWN_HOSTS'
  | 'PAUSED'
  | 'REPORT_MODE'
  | 'NOT_LEADER'
  | 'DUPLICATE';

/** Expected cost of one live migration, from the VM's size and dirty rate. */
export interface MoveCost {
  /** Bytes the migration is expected to copy (memory plus re-sent dirty pages, plus local disks). */
  bytes: number;
  /** Of `bytes`, the VM's local disks (copied by the migration; 0 on shared storage). */
  diskBytes?: number;
  /** Expected duration in milliseconds at the configured bandwidth. */
  durationMs: number;
  /** The copy's share of it (durationMs less the fixed setup time) in the score's units, so it compares with `gain`. */
  score: number;
  /** False when a live migration cannot converge (the guest dirties memory as fast as the link copies it). */
  converges?: boolean;
}

export interface Move {
  vm: string;
  from: string;
  to: string;
  /** Which policy proposed it (`balance`, `overload`, `consolidate`, `evacuate`, `manual`). */
  policy: string;
  /** A sentence an operator understands: "n3 CPU 92% > high 80%: vm-17 (1.2 cores, 2 GiB) to n5, 41% → 53%". */
  reason: string;
  /**
   * What the move is worth in score units, higher is better: for balance and overload the objective's
   * value (spread and overload risk taken off, policies/objective.ts), for the others the drop of the
   * imbalance score.
   */
  gain: number;
  cost: MoveCost;
  mode?: 'live' | 'checkpoint';
}

/** A candidate or move a policy passed over, with the named reason. */
export interface Skip {
  reason: SkipReason;
  vm?: string;
  host?: string;
  detail: string;
}

export interface Plan {
  policy: string;
  moves: Move[];
  /** Cluster imbalance score before and after applying `moves` (lower is flatter). */
  scoreBefore: number;
  scoreAfter: number;
  skipped: Skip[];
  /** Free-text notes: why nothing happened, hosts that can be powered down, ... */
  notes: string[];
  /** Hosts a consolidation plan leaves empty, which an operator may power down. */
  powerDownHosts?: string[];
}
