/**
 * The monitor's gate: of a round's planned moves, what may be enqueued, and what is held back and why.
 * Pure: the daemon runs it every round before it enqueues, and `lbm plan` runs it on the same inputs,
 * so the operator sees what the monitor would hold back (as Nomad's `job plan` runs the scheduler).
 *
 * In the order it is checked: no host reported → halted; more unknown hosts than
 * `monitor.maxUnknownHostShare` → halted, every move held; paused → every move held; report mode →
 * every move held; then, enforcing, reconciled with the migrations in flight (a VM already migrating,
 * a VM twice) and the per-round and per-hour budgets. Leadership is not the gate's: the daemon checks
 * its lease before every single enqueue.
 */
import { limitsFromConfig } from '../config/limits.ts';
import type { LbvmConfig } from '../config/schema.ts';
import type { HostState, InFlightMigration, MigrationLimits, Move, SkipReason } from '../model/index.ts';
import type { PauseState } from './control.ts';
import type { ClusterView } from './read.ts';

export interface HeldBack {
  move: Move;
  reason: SkipReason;
  detail: string;
}

export type GateMode = 'enforce' | 'report' | 'paused' | 'halted';

export interface GateInputs {
  moves: readonly Move[];
  hosts: readonly Pick<HostState, 'name' | 'status'>[];
  inFlight: readonly InFlightMigration[];
  pause: PauseState;
  /** `monitor.mode`. */
  mode: 'enforce' | 'report';
  limits: Pick<MigrationLimits, 'movesPerRound' | 'movesPerHour'>;
  /** Moves the monitor enqueued in the hour before now. */
  movesInLastHour: number;
  monitor: { maxUnknownHostShare: number; staleAfterIntervals: number; windowMs: number };
  /** Where samples are read from, for the note when no host reported (`store.displayUrl`). */
  storeUrl: string;
}

export interface GateResult {
  mode: GateMode;
  enqueue: Move[];
  heldBack: HeldBack[];
  notes: string[];
}

/** The gate's inputs from the config and what readCluster() saw: the daemon and `lbm plan` build them alike. */
export function gateInputs(
  config: LbvmConfig,
  view: Pick<ClusterView, 'snapshot' | 'inFlight' | 'pause'>,
  moves: readonly Move[],
  movesInLastHour: number,
  storeUrl: string,
): GateInputs {
  return {
    moves,
    hosts: view.snapshot.hosts,
    inFlight: view.inFlight,
    pause: view.pause,
    mode: config.monitor.mode,
    limits: limitsFromConfig(config),
    movesInLastHour,
    monitor: {
      maxUnknownHostShare: config.monitor.maxUnknownHostShare,
      staleAfterIntervals: config.monitor.staleAfterIntervals,
      windowMs: config.monitor.window,
    },
    storeUrl,
  };
}

export function gate(inputs: GateInputs): GateResult {
  const { moves, hosts, pause, monitor } = inputs;
  const unknown = hosts.filter((host) => host.status !== 'up').map((host) => host.name);
  const holdAll = (mode: GateMode, reason: SkipReason, detail: string, note: string): GateResult => ({
    mode,
    enqueue: [],
    heldBack: moves.map((move) => ({ move, reason, detail })),
    notes: [note],
  });
  if (hosts.length === 0) {
    return holdAll(
      'halted',
      'TOO_MANY_UNKNOWN_HOSTS',
      'no host reported',
      `no host has sent a sample in the last ${Math.round(monitor.windowMs / 60000)} ` +
        `min: check that \`lbvm collect\` runs on the hosts and writes to ${inputs.storeUrl}`,
    );
  }
  const unknownShare = unknown.length / hosts.length;
  if (unknownShare > monitor.maxUnknownHostShare) {
    return holdAll(
      'halted',
      'TOO_MANY_UNKNOWN_HOSTS',
      `${unknown.length} of ${hosts.length} hosts unknown`,
      `moving nothing: ${unknown.length} of ${hosts.length} hosts are unknown (${Math.round(unknownShare * 100)}% > ` +
        `${Math.round(monitor.maxUnknownHostShare * 100)}% allowed by monitor.maxUnknownHostShare); no sample for over ` +
        `${monitor.staleAfterIntervals} intervals from: ${unknown.slice(0, 10).join(', ')}${unknown.length > 10 ? ', ...' : ''}`,
    );
  }
  if (pause.paused) {
    const by = pause.by ?? 'an operator';
    return holdAll(
      'paused',
      'PAUSED',
      `paused by ${by}${pause.reason ? `: ${pause.reason}` : ''}`,
      `paused by ${by} (lbm resume to continue): planned ${moves.length} moves, moved nothing`,
    );
  }
  if (inputs.mode === 'report') {
    return holdAll(
      'report',
      'REPORT_MODE',
      'monitor.mode is report',
      `report mode: planned ${moves.length} moves, moved nothing`,
    );
  }
  return { mode: 'enforce', ...reconcile(moves, inputs.inFlight, inputs.limits, inputs.movesInLastHour), notes: [] };
}

/**
 * Reconciles a plan with the migrations already queued or running: a VM in flight is not moved
 * again, a VM appears at most once, and the per-round and per-hour budgets hold.
 */
export function reconcile(
  moves: readonly Move[],
  inFlight: readonly InFlightMigration[],
  limits: Pick<MigrationLimits, 'movesPerRound' | 'movesPerHour'>,
  movesInLastHour: number,
): { enqueue: Move[]; heldBack: HeldBack[] } {
  const flying = new Map(inFlight.map((job) => [job.vm, job]));
  const seen = new Set<string>();
  const enqueue: Move[] = [];
  const heldBack: HeldBack[] = [];
  const hourLeft = Math.max(0, limits.movesPerHour - movesInLastHour);
  for (const move of moves) {
    const job = flying.get(move.vm);
    if (job) {
      heldBack.push({
        move,
        reason: 'IN_FLIGHT',
        detail: `${move.vm} is already migrating ${job.from} → ${job.to} (job ${job.jobId}, ${job.state})`,
      });
    } else if (seen.has(move.vm)) {
      heldBack.push({ move, reason: 'DUPLICATE', detail: `${move.vm} already has a move in this round` });
    } else if (enqueue.length >= limits.movesPerRound) {
      heldBack.push({
        move,
        reason: 'ROUND_MOVE_LIMIT',
        detail: `${limits.movesPerRound} moves this round (limits.movesPerRound)`,
      });
    } else if (enqueue.length >= hourLeft) {
      heldBack.push({
        move,
        reason: 'HOUR_MOVE_LIMIT',
        detail: `${movesInLastHour + enqueue.length} moves in the last hour (limits.movesPerHour ${limits.movesPerHour})`,
      });
    } else {
      seen.add(move.vm);
      enqueue.push(move);
    }
  }
  return { enqueue, heldBack };
}
