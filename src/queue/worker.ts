/**
 * The migration worker: takes jobs from the "migrations" queue and carries them out through a
 * Driver, one attempt at a time:
 *
 *   1. fencing: a job whose token is older than the leader's is dropped (moves nothing);
 *   2. slots: the VM's lock plus a source, destination and cluster slot, all or nothing; with no
 *      free slot the job is delayed (`moveToDelayed` + DelayedError: no attempt used);
 *   3. `migration.started`; ask the driver where the VM is: already at the destination -> done
 *      without moving; neither at source nor destination -> fails for good with that reason;
 *   4. driver.migrate with an AbortSignal that fires when BullMQ cannot renew the job's lock
 *      (`lockRenewalFailed`: another worker may run the job now), when the slots' lease is lost,
 *      on the migration timeout, or when the worker is told to stop;
 *   5. `migration.finished` or `migration.failed` is written *before* the slots are released, so
 *      events show at most `limit` migrations between a start and a finish on any host.
 *
 * A run whose lock was lost never reports success: its result is thrown away (BullMQ also refuses
 * its moveToCompleted), and the run that took over finds the VM where it really is.
 */
import os from 'node:os';
import { DelayedError, UnrecoverableError, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { LbvmConfig } from '../config/schema.ts';
import type { Driver } from '../drivers/driver.ts';
import { AttemptSuperseded } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { LbvmEvent, MigrationJobData, MigrationProgress, MigrationResult } from '../model/index.ts';
import { RedisEventLog, type EventSink } from './events.ts';
import { QUEUE_NAME, queueKeys } from './keys.ts';
import { limitsFromConfig } from '../config/limits.ts';
import { MigrationSlots, type SlotRequest } from './limits.ts';
import { MigrationQueue } from './queue.ts';
import { isConnectionError } from '../util/redis.ts';

export interface WorkerOptions {
  config: LbvmConfig;
  driver: Driver;
  log: Logger;
  /** A connection with `maxRetriesPerRequest: null` (see connectRedis({ blocking: true })). */
  connection: Redis;
  /** Where events go; the Redis stream by default. */
  events?: EventSink;
  /** Overrides migration.workerConcurrency. */
  concurrency?: number;
}

export interface MigrationWorker {
  worker: Worker<MigrationJobData, MigrationResult>;
  /** Stops taking jobs, waits for running ones (or aborts them when `force`), and closes. */
  close(force?: boolean): Promise<void>;
  /** Cancels `jobId` if this process runs it (the guest stays on its source; no retry). True when it did. */
  cancel(jobId: string, reason: string): boolean;
}

/** An operator asked for the migration to stop (`lbm migrate --wait`, Ctrl-C): no retry. */
class CancelledByOperator extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CancelledByOperator';
  }
}

class LockLost extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockLost';
  }
}

export function startMigrationWorker(options: WorkerOptions): MigrationWorker {
  const { config, driver, log, connection } = options;
  const prefix = config.redis.prefix;
  const keys = queueKeys(prefix);
  const events = options.events ?? new RedisEventLog(connection, prefix);
  const slots = new MigrationSlots(connection, prefix, limitsFromConfig(config), config.migration.lockDuration);
  const claims = new MigrationQueue(connection, config);
  const emit = async (event: LbvmEvent) => {
    try {
      await events.emit(event);
    } catch (error) {
      log.warn({ error: (error as Error).message, event: event.type }, 'could not record an event');
    }
  };

  /** Who ran an attempt, in its events: host name and process id. */
  const workerId = `${os.hostname()}:${process.pid}`;
  const processor = async (
    job: Job<MigrationJobData, MigrationResult>,
    token: string | undefined,
    bullSignal?: AbortSignal,
  ): Promise<MigrationResult> => {
    const data = job.data;
    const jobId = job.id!;
    const base = {
      vm: data.vm,
      from: data.from,
      to: data.to,
      jobId,
      planId: data.planId,
      mode: data.mode,
      requestedBy: data.requestedBy,
    };
    const attempt = job.attemptsMade + 1;
    const jobLog = log.child({ jobId, vm: data.vm, from: data.from, to: data.to, attempt });

    // 1. Fencing.
    if (data.fencingToken !== null) {
      const fence = Number((await connection.get(keys.fence)) ?? 0);
      if (data.fencingToken < fence) {
        const reason = `stale fencing token ${data.fencingToken} < leader's ${fence}: enqueued by a deposed monitor; nothing moved`;
        jobLog.warn({ fencingToken: data.fencingToken, currentFence: fence }, 'dropping a job from a deposed monitor');
        await emit({ ...base, type: 'migration.dropped', timeMs: Date.now(), reason: data.reason, error: reason });
        await claims.releaseClaim(data.vm, jobId);
        throw new UnrecoverableError(reason);
      }
    }

    // 2. Slots and the VM lock.
    const slotRequest: SlotRequest = {
      holder: `${jobId}#${token ?? 'none'}`,
      vm: data.vm,
      from: data.from,
      to: data.to,
    };
    const acquired = await slots.acquire(slotRequest);
    if (!acquired.ok) {
      const waitMs = config.migration.slotWait * (0.75 + Math.random() * 0.5);
      jobLog.debug({ reason: acquired.reason, waitMs: Math.round(waitMs) }, 'no free slot; delayed');
      await job.moveToDelayed(Date.now() + waitMs, token);
      throw new DelayedError(`waiting: ${acquired.reason}`);
    }

    const controller = new AbortController();
    byJob.set(jobId, controller);
    const abort = (reason: Error) => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    const onBullAbort = () =>
      abort(
        new LockLost(
          `job lock lost (${String(bullSignal?.reason ?? 'lock renewal failed')}): another worker may run this job now`,
        ),
      );
    bullSignal?.addEventListener('abort', onBullAbort);
    if (bullSignal?.aborted) onBullAbort();
    const renewal = setInterval(
      () => {
        slots.renew(slotRequest).then(
          (held) => {
            if (!held) abort(new LockLost('migration slots expired before they could be renewed'));
          },
          (error: Error) => jobLog.warn({ error: error.message }, 'slot renewal failed; retrying'),
        );
      },
      Math.max(200, config.migration.lockDuration / 3),
    );
    const timeout = setTimeout(
      () => abort(new Error(`migration timed out after ${config.migration.timeout} ms (migration.timeout); cancelled`)),
      config.migration.timeout,
    );
    running.add(controller);
    const startedMs = Date.now();
    let lastProgressMs = 0;
    try {
      await emit({
        ...base,
        type: 'migration.started',
        timeMs: startedMs,
        reason: data.reason,
        detail: { attempt, worker: workerId },
      });
      jobLog.info({ mode: data.mode }, 'migration started');

      // 3. Where is the VM now?
      const where = await driver.locate(data.vm);
      let result: MigrationResult;
      if (where === data.to) {
        result = { outcome: 'already-there', totalMs: Date.now() - startedMs, downtimeMs: null, bytesCopied: 0 };
      } else if (where !== data.from) {
        throw new UnrecoverableError(
          `VM ${JSON.stringify(data.vm)} is ${where === null ? 'on no host' : `on ${JSON.stringify(where)}`}, neither ` +
            `at the source ${JSON.stringify(data.from)} nor at the destination ${JSON.stringify(data.to)}; nothing moved`,
        );
      } else {
        // 4. Migrate.
        const outcome = await driver.migrate({
          vm: data.vm,
          from: data.from,
          to: data.to,
          mode: data.mode,
          downtimeLimitMs: config.migration.downtimeLimit,
          bandwidthBytesPerSec: config.migration.bandwidthBytesPerSec,
          signal: controller.signal,
          attemptId: slotRequest.holder,
          onProgress: (progress: MigrationProgress) => {
            const now = Date.now();
            if (now - lastProgressMs < 250 && progress.fraction < 1) return;
            lastProgressMs = now;
            job.updateProgress({ ...progress }).catch(() => {});
          },
        });
        result = { outcome: 'migrated', ...outcome };
      }
      // A run that lost its lock must not report success, even if the move happened. The abort
      // signal can lag (a paused process runs its timers late), so ask Redis too.
      if (!controller.signal.aborted && !(await slots.renew(slotRequest)))
        abort(new LockLost('migration slots expired while migrating: another worker may run this job now'));
      if (controller.signal.aborted) throw controller.signal.reason as Error;
      // 5. Record, then release.
      await emit({
        ...base,
        type: 'migration.finished',
        timeMs: Date.now(),
        totalMs: result.totalMs,
        downtimeMs: result.downtimeMs,
        bytesCopied: result.bytesCopied,
        detail: { attempt, outcome: result.outcome },
      });
      jobLog.info(
        { outcome: result.outcome, totalMs: result.totalMs, downtimeMs: result.downtimeMs },
        'migration finished',
      );
      await claims.releaseClaim(data.vm, jobId);
      return result;
    } catch (error) {
      let reason = controller.signal.aborted ? (controller.signal.reason as Error) : (error as Error);
      // A run whose slots expired lost the job, whatever the driver said about it (under load the
      // driver may see another attempt's move before this worker sees its lock renewal fail).
      // A driver that saw a later attempt take the migration over says so too (the slots may be held
      // by that attempt under the same job, so they still renew).
      if (
        !(reason instanceof LockLost) &&
        !(reason instanceof CancelledByOperator) &&
        (reason instanceof AttemptSuperseded || !(await slots.renew(slotRequest).catch(() => true)))
      ) {
        reason = new LockLost(
          `migration slots expired while migrating (${reason.message}): another worker may run this job now`,
        );
      }
      const lockLost = reason instanceof LockLost;
      const cancelled = reason instanceof CancelledByOperator;
      const final =
        !lockLost && (cancelled || error instanceof UnrecoverableError || attempt >= (job.opts.attempts ?? 1));
      await emit({
        ...base,
        type: 'migration.failed',
        timeMs: Date.now(),
        error: reason.message,
        totalMs: Date.now() - startedMs,
        detail: { attempt, willRetry: !final, lockLost },
      });
      if (lockLost)
        jobLog.warn(
          { error: reason.message },
          'migration abandoned: this worker lost the job; its result does not count',
        );
      else jobLog.warn({ error: reason.message, willRetry: !final }, 'migration failed');
      if (final) await claims.releaseClaim(data.vm, jobId);
      if (error instanceof UnrecoverableError) throw error;
      if (cancelled) throw new UnrecoverableError(reason.message);
      throw reason;
    } finally {
      running.delete(controller);
      byJob.delete(jobId);
      clearInterval(renewal);
      clearTimeout(timeout);
      bullSignal?.removeEventListener('abort', onBullAbort);
      await slots
        .release(slotRequest)
        .catch((error: Error) =>
          jobLog.warn({ error: error.message }, 'could not release slots; they expire by themselves'),
        );
    }
  };

  const running = new Set<AbortController>();
  const byJob = new Map<string, AbortController>();
  const worker = new Worker<MigrationJobData, MigrationResult>(QUEUE_NAME, processor, {
    connection: connection as unknown as ConnectionOptions,
    prefix,
    concurrency: options.concurrency ?? config.migration.workerConcurrency,
    lockDuration: config.migration.lockDuration,
    stalledInterval: config.migration.lockDuration,
    // A job whose worker died is re-run once more; a second stall fails it.
    maxStalledCount: 2,
  });
  worker.on('lockRenewalFailed', (jobIds: string[]) => {
    for (const jobId of jobIds) {
      log.warn({ jobId }, 'could not renew the job lock; cancelling its migration (another worker may run it)');
      worker.cancelJob(jobId, 'lock renewal failed');
    }
  });
  worker.on('error', (error) => {
    // Redis away: BullMQ reports every failed retry; the connection's watcher (logConnectionTrouble)
    // says it once per outage, so these go to debug rather than a warning per retry.
    if (isConnectionError(error)) log.debug({ error: error.message }, 'worker: Redis unreachable');
    else if (!/could not renew lock/.test(error.message)) log.warn({ error: error.message }, 'worker error');
  });
  worker.on('failed', (job, error) => {
    // Jobs failed by BullMQ itself (stalled too often) never reach the processor's catch.
    if (job && /stalled/.test(error.message)) {
      void emit({
        type: 'migration.failed',
        timeMs: Date.now(),
        vm: job.data.vm,
        from: job.data.from,
        to: job.data.to,
        jobId: job.id,
        planId: job.data.planId,
        mode: job.data.mode,
        error: error.message,
        detail: { willRetry: false },
      });
      void claims.releaseClaim(job.data.vm, job.id!);
    }
  });
  return {
    worker,
    cancel(jobId, reason) {
      const controller = byJob.get(jobId);
      if (!controller || controller.signal.aborted) return false;
      controller.abort(new CancelledByOperator(reason));
      return true;
    },
    async close(force = false) {
      if (force) for (const controller of running) controller.abort(new Error('worker stopping'));
      await worker.close(force);
      await claims.close().catch(() => {});
    },
  };
}
