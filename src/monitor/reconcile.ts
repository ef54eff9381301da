/**
 * Reconciles a plan with the migrations already queued or running: a VM in flight is not moved
 * again, a VM appears at most once, and the round's remaining move budget (moves per round and per
 * hour, computed by the limits) is respected. Pure: returns what to enqueue and what was held back, why.
 */
import type { InFlightMigration, Move, SkipReason } from '../model/index.ts';

export interface HeldBack {
  move: Move;
  reason: SkipReason;
  detail: string;
}

export interface Reconciled {
  enqueue: Move[];
  heldBack: HeldBack[];
}

export interface MoveBudget {
  /** Moves still allowed this round (per-round limit minus nothing yet). */
  round: number;
  /** Moves still allowed in the current hour. */
  hour: number;
}

export function reconcile(moves: Move[], inFlight: InFlightMigration[], budget: MoveBudget): Reconciled {
  const flying = new Map(inFlight.map((job) => [job.vm, job]));
  const seen = new Set<string>();
  const enqueue: Move[] = [];
  const heldBack: HeldBack[] = [];
  for (const move of moves) {
    const job = flying.get(move.vm);
    if (job) {
      heldBack.push({
        move,
        reason: 'IN_FLIGHT',
        detail: `${move.vm} is already migrating ${job.from} → ${job.to} (job ${job.jobId}, ${job.state})`,
      });
      continue;
    }
    if (seen.has(move.vm)) {
      heldBack.push({ move, reason: 'DUPLICATE', detail: `${move.vm} already has a move in this round` });
      continue;
    }
    if (enqueue.length >= budget.round) {
      heldBack.push({ move, reason: 'ROUND_MOVE_LIMIT', detail: `the limit of moves per round is reached` });
      continue;
    }
    if (enqueue.length >= budget.hour) {
      heldBack.push({ move, reason: 'HOUR_MOVE_LIMIT', detail: `the limit of moves per hour is reached` });
      continue;
    }
    seen.add(move.vm);
    enqueue.push(move);
  }
  return { enqueue, heldBack };
}
