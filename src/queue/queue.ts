/**
 * The "migrations" queue: enqueueing decisions exactly once, and reading what is in flight.
 *
 * - The job id is a hash of (vm, planId): the same decision enqueued twice is one job (BullMQ
 *   ignores an add with an existing id), and finished jobs are kept for `KEEP_FINISHED_MS`
 *   so a late duplicate is still recognised (BullMQ's dedup ends when the job is removed).
 * - A VM never has two migrations in flight: a claim (hash vm -> job id) is taken atomically
 *   before the job is added; a second decision for a busy VM is refused as `vm-busy`.
 * - Fencing: a decision carrying a fencing token older than the leader's is refused here, and
 *   dropped again by the worker (the token may have moved on while the job waited).
 */
import { createHash } from 'node:crypto';
import { Queue, type ConnectionOptions, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { LbvmConfig } from '../config/schema.ts';
import { UsageError } from '../errors.ts';
import type { InFlightMigration, MigrationJobData, MigrationProgress, MigrationResult } from '../model/index.ts';
import { RedisEventLog } from './events.ts';
import { QUEUE_NAME, queueKeys } from './keys.ts';

/** Finished jobs are kept this long, so re-enqueueing a finished decision is still a no-op. */
export const KEEP_FINISHED_MS = 7 * 24 * 3600 * 1000;
/** A claim whose job does not exist yet is honoured this long (the enqueuer is between claim and add). */
const CLAIM_GRACE_MS = 10_000;

export const migrationJobSchema = z
  .object({
    vm: z.string().min(1),
    from: z.string().min(1),
    to: z.string().min(1),
    reason: z.string(),
    planId: z.string().min(1),
    requestedBy: z.string().min(1),
    fencingToken: z.number().int().nullable(),
    mode: z.enum(['live', 'checkpoint']),
  })
  .strict()
  .refine((job) => job.from !== job.to, { message: 'from and to must be different hosts' });

/** `m-` + 40 hex digits of sha256(vm NUL planId): any name is safe, and BullMQ forbids ':' in ids. */
export function migrationJobId(vm: string, planId: string): string {
  return `m-${createHash('sha256').update(vm).update('\0').update(planId).digest('hex').slice(0, 40)}`;
}

export type EnqueueResult =
  | { status: 'queued'; jobId: string }
  /** The same decision (vm, planId) was enqueued before; nothing new was added. */
  | { status: 'duplicate'; jobId: string }
  /** Another migration of this VM is queued or running (its job id). */
  | { status: 'vm-busy'; jobId: string; busyWith: string }
  /** The decision's fencing token is older than the current leader's: refused. */
  | { status: 'stale-fence'; jobId: string; fencingToken: number; currentFence: number };

// KEYS: claims hash. ARGV: vm, jobId, nowMs, bullJobKeyPrefix, graceMs.
const CLAIM = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local sep = string.find(current, '|', 1, true)
  local owner = string.sub(current, 1, sep - 1)
  local at = tonumber(string.sub(current, sep + 1))
  if owner == ARGV[2] then return {'same', owner} end
  local jobKey = ARGV[4] .. owner
  if redis.call('EXISTS', jobKey) == 1 then
    if redis.call('HEXISTS', jobKey, 'finishedOn') == 0 then return {'busy', owner} end
  elseif tonumber(ARGV[3]) - at < tonumber(ARGV[5]) then
    return {'busy', owner}
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. ARGV[3])
return {'claimed', ARGV[2]}
`;

const UNCLAIM = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current and string.sub(current, 1, string.len(ARGV[2]) + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`;

export interface JobView {
  jobId: string;
  data: MigrationJobData;
  state: string;
  attemptsMade: number;
  progress: MigrationProgress | null;
  result: MigrationResult | null;
  failedReason: string | null;
  enqueuedMs: number;
  startedMs: number | null;
  finishedMs: number | null;
}

export class MigrationQueue {
  readonly queue: Queue<MigrationJobData>;
  readonly events: RedisEventLog;
  private readonly keys: ReturnType<typeof queueKeys>;

  constructor(
    private readonly redis: Redis,
    private readonly config: LbvmConfig,
  ) {
    this.keys = queueKeys(config.redis.prefix);
    // bullmq bundles its own ioredis; the instance is the same at run time, only the types differ.
    this.queue = new Queue<MigrationJobData>(QUEUE_NAME, {
      connection: redis as unknown as ConnectionOptions,
      prefix: config.redis.prefix,
    });
    this.queue.on('error', () => {});
    this.events = new RedisEventLog(redis, config.redis.prefix);
  }

  /** The current leader's fencing token (0 when no leader ever took the lease). */
  async currentFence(): Promise<number> {
    return Number((await this.redis.get(this.keys.fence)) ?? 0);
  }

  jobOptions(): JobsOptions {
    return {
      attempts: this.config.migration.attempts,
      backoff: { type: 'exponential', delay: this.config.migration.backoff },
      removeOnComplete: { age: KEEP_FINISHED_MS / 1000 },
      removeOnFail: { age: KEEP_FINISHED_MS / 1000 },
    };
  }

  /** Enqueues one migration decision, at most once; tells what happened. */
  async enqueue(input: MigrationJobData): Promise<EnqueueResult> {
    const parsed = migrationJobSchema.safeParse(input);
    if (!parsed.success) {
      throw new UsageError(
        `invalid migration job: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || 'job'}: ${issue.message}`).join('; ')}`,
      );
    }
    const data = parsed.data as MigrationJobData;
    const jobId = migrationJobId(data.vm, data.planId);
    if (data.fencingToken !== null) {
      const currentFence = await this.currentFence();
      if (data.fencingToken < currentFence)
        return { status: 'stale-fence', jobId, fencingToken: data.fencingToken, currentFence };
    }
    if (await this.queue.getJob(jobId)) return { status: 'duplicate', jobId };
    const [verdict, owner] = (await this.redis.eval(
      CLAIM,
      1,
      this.keys.vmClaims,
      data.vm,
      jobId,
      String(Date.now()),
      this.keys.bullJob,
      String(CLAIM_GRACE_MS),
    )) as [string, string];
    if (verdict === 'busy') return { status: 'vm-busy', jobId, busyWith: owner };
    // Adding an existing id is a no-op in BullMQ. On 'same' (a concurrent enqueue of this very
    // decision claimed first) we add too, in case that enqueuer died between its claim and its add.
    await this.queue.add('migrate', data, { ...this.jobOptions(), jobId });
    if (verdict === 'same') return { status: 'duplicate', jobId };
    await this.events.emit({
      type: 'migration.queued',
      timeMs: Date.now(),
      vm: data.vm,
      from: data.from,
      to: data.to,
      jobId,
      planId: data.planId,
      mode: data.mode,
      reason: data.reason,
      requestedBy: data.requestedBy,
    });
    return { status: 'queued', jobId };
  }

  /** Frees the VM's claim once its job has finished for good (done by the worker). */
  async releaseClaim(vm: string, jobId: string): Promise<void> {
    await this.redis.eval(UNCLAIM, 1, this.keys.vmClaims, vm, jobId);
  }

  /** Migrations queued (waiting, delayed for a slot or a retry) or running, for the monitor's snapshot. */
  async inFlight(): Promise<InFlightMigration[]> {
    const jobs = await this.queue.getJobs(['waiting', 'prioritized', 'delayed', 'active'], 0, -1);
    const result: InFlightMigration[] = [];
    for (const job of jobs) {
      if (!job?.id) continue;
      const state = await job.getState();
      const mapped =
        state === 'active'
          ? 'active'
          : state === 'delayed'
            ? 'delayed'
            : state === 'waiting' || state === 'prioritized'
              ? 'waiting'
              : null;
      if (mapped) result.push({ vm: job.data.vm, from: job.data.from, to: job.data.to, jobId: job.id, state: mapped });
    }
    return result;
  }

  /** One job as `lbm jobs` shows it, or null. */
  async job(jobId: string): Promise<JobView | null> {
    const job = await this.queue.getJob(jobId);
    if (!job?.id) return null;
    return {
      jobId: job.id,
      data: job.data,
      state: await job.getState(),
      attemptsMade: job.attemptsMade,
      progress: typeof job.progress === 'object' ? (job.progress as unknown as MigrationProgress) : null,
      result: (job.returnvalue as MigrationResult | undefined) ?? null,
      failedReason: job.failedReason ?? null,
      enqueuedMs: job.timestamp,
      startedMs: job.processedOn ?? null,
      finishedMs: job.finishedOn ?? null,
    };
  }

  /** Recent jobs of every state, newest first. */
  async jobs(limit = 100): Promise<JobView[]> {
    const jobs = await this.queue.getJobs(
      ['active', 'waiting', 'prioritized', 'delayed', 'completed', 'failed'],
      0,
      limit - 1,
    );
    const views = await Promise.all(jobs.filter((job) => job?.id).map((job) => this.job(job.id!)));
    return views
      .filter((view): view is JobView => view !== null)
      .sort((a, b) => b.enqueuedMs - a.enqueuedMs)
      .slice(0, limit);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
