/** Migration jobs (the data carried by a BullMQ job) and the events they emit. */

export type MigrationMode = 'live' | 'checkpoint';

export interface MigrationJobData {
  vm: string;
  from: string;
  to: string;
  reason: string;
  planId: string;
  /** `monitor`, or `operator:<name>` for a manual move. */
  requestedBy: string;
  /** The fencing token of the monitor (leader) that enqueued it; manual moves carry null. */
  fencingToken: number | null;
  mode: MigrationMode;
}

export interface MigrationProgress {
  bytesCopied: number;
  bytesRemaining: number;
  /** Expected downtime reported by the hypervisor, when known. */
  expectedDowntimeMs?: number;
  /** 0..1 */
  fraction: number;
}

export interface MigrationResult {
  outcome: 'migrated' | 'already-there';
  totalMs: number;
  downtimeMs: number | null;
  bytesCopied: number;
}

export type LbvmEventType =
  | 'migration.queued'
  | 'migration.started'
  | 'migration.finished'
  | 'migration.failed'
  | 'migration.dropped'
  | 'monitor.round'
  | 'monitor.paused'
  | 'monitor.resumed'
  | 'host.maintenance';

/** Events are stored next to samples, so reports and the next snapshot see them. */
export interface LbvmEvent {
  type: LbvmEventType;
  timeMs: number;
  vm?: string;
  from?: string;
  to?: string;
  host?: string;
  jobId?: string;
  planId?: string;
  mode?: MigrationMode;
  reason?: string;
  error?: string;
  totalMs?: number;
  downtimeMs?: number | null;
  bytesCopied?: number;
  requestedBy?: string;
  /** Anything else worth keeping, plain JSON. */
  detail?: Record<string, unknown>;
}

/**
 * Whether `event` ends a job whose run found its VM already on the destination (an earlier attempt
 * moved it and was reported failed): a confirmation, not a migration, and its time is the check's.
 */
export function foundAlreadyMoved(event: LbvmEvent): boolean {
  return event.type === 'migration.finished' && event.detail?.outcome === 'already-there';
}
