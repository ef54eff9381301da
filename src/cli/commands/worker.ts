/** `lbvm worker`: carries out queued migrations through the configured driver, until SIGTERM. */
import { Command } from 'commander';
import { createDriver } from '../../drivers/index.ts';
import { loggerFor } from '../../log.ts';
import { assertRedisFitForQueue } from '../../queue/redis.ts';
import { connectRedis, logConnectionTrouble, redisTargetOf } from '../../util/redis.ts';
import { listenForCancels } from '../../queue/cancel.ts';
import { RedisEventLog, type EventSink } from '../../queue/events.ts';
import { startMigrationWorker } from '../../queue/worker.ts';
import { openStoreFor } from '../../store/index.ts';
import { DRIVER_NAMES } from '../../config/schema.ts';
import { teach } from '../help.ts';
import { numberOption } from '../options.ts';
import { loadFor, withCommon, type CommonOptions, logStartup } from '../run.ts';

interface WorkerOptions extends CommonOptions {
  driver?: string;
  concurrency?: string;
}

export function workerCommand(): Command {
  const command = withCommon(new Command('worker'))
    .option('--driver <name>', `hypervisor driver: ${DRIVER_NAMES.join(', ')} (default: collect.driver)`)
    .option('--concurrency <n>', 'migrations this process runs at once (default: migration.workerConcurrency)');
  teach(command, {
    summary: 'carry out queued migrations through the configured hypervisor driver',
    details:
      'Takes jobs from the "migrations" queue on Redis (redis.url) and runs them through the driver,\n' +
      'within the per-source-host, per-destination-host and cluster-wide limits (limits.*), which hold\n' +
      'across every worker process. Run as many workers as you like, on any host. Refuses to start when\n' +
      'Redis may evict keys (maxmemory-policy other than noeviction) or has persistence off.\n\n' +
      'SIGTERM: stops taking jobs and lets running migrations finish; a second SIGTERM cancels them.',
    examples: [
      'lbvm worker',
      'lbvm worker --driver sim --concurrency 8',
      'LBVM_REDIS_URL=rediss://:pw@redis:6380 lbvm worker',
    ],
  });
  return command.action(async (options: WorkerOptions) => {
    const overrides: Record<string, unknown> = {};
    if (options.driver) overrides['collect.driver'] = options.driver;
    const { config, file } = loadFor(options, overrides);
    const concurrency =
      options.concurrency === undefined
        ? undefined
        : numberOption(options.concurrency, '--concurrency', { integer: true, min: 1 });
    const log = loggerFor(config, 'worker');
    logStartup(log, config, file);
    const connection = connectRedis(redisTargetOf(config), { blocking: true });
    logConnectionTrouble(connection, log, config.redis);
    try {
      await assertRedisFitForQueue(connection, config.redis);
    } catch (error) {
      connection.disconnect();
      throw error;
    }
    const driver = await createDriver(config.collect.driver, { config, log });
    // Events go to the Redis stream (the monitor and lbm read it) and next to the samples in the
    // store (long-term reports); a store that is down costs a warning, not the migration.
    const redisEvents = new RedisEventLog(connection, config.redis.prefix);
    const store = openStoreFor(config, log);
    let storeWarned = false;
    const events: EventSink = {
      async emit(event) {
        await redisEvents.emit(event);
        try {
          await store.writeEvents([event]);
          storeWarned = false;
        } catch (error) {
          if (!storeWarned)
            log.warn(
              { error: (error as Error).message, store: store.displayUrl },
              'could not copy migration events to the store; they are in Redis',
            );
          storeWarned = true;
        }
      },
    };
    const worker = startMigrationWorker({ config, driver, log, connection, concurrency, events });
    // `lbm migrate --wait` asks for a cancel on a channel every worker listens to.
    const subscriber = connectRedis(redisTargetOf(config));
    await listenForCancels(subscriber, config.redis.prefix, (jobId) => {
      if (worker.cancel(jobId, 'cancelled by an operator'))
        log.warn({ jobId }, 'migration cancelled by an operator; the guest stays on its source');
    });
    log.info({ driver: driver.name, concurrency: concurrency ?? config.migration.workerConcurrency }, 'worker ready');
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) {
          log.warn({ signal }, 'second signal: cancelling running migrations (their guests stay on their sources)');
          void worker.close(true);
          return;
        }
        stopping = true;
        log.info({ signal }, 'stopping: no new jobs; waiting for running migrations');
        worker
          .close()
          .catch((error: Error) => log.warn({ error: error.message }, 'error while stopping'))
          .finally(async () => {
            await driver.close().catch(() => {});
            await store.close().catch(() => {});
            subscriber.disconnect();
            connection.disconnect();
            log.info('stopped');
            resolve();
          });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
  });
}
