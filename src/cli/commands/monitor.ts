/** `lbvm monitor`: the long-running balancer (one leads through a lease; others stand by). */
import os from 'node:os';
import { Command } from 'commander';
import { hasMonitorNodeFlags, MONITOR_NODE_FLAGS } from '../../monitor/node-flags.ts';
import { Monitor } from '../../monitor/daemon.ts';
import { serveMetrics } from '../../monitor/metrics.ts';
import { assertRedisFitForQueue } from '../../queue/redis.ts';
import { logConnectionTrouble } from '../../util/redis.ts';
import { parseDurationMs } from '../../units.ts';
import { UsageError } from '../../errors.ts';
import { CliContext } from '../context.ts';
import { teach } from '../help.ts';
import { safeJson } from '../render.ts';
import { withCommon, type CommonOptions, logStartup } from '../run.ts';

interface MonitorOptions extends CommonOptions {
  interval?: string;
  mode?: string;
  listen?: string;
  once?: boolean;
}

export function monitorCommand(): Command {
  const command = withCommon(new Command('monitor'))
    .option('--interval <duration>', 'time between rounds (monitor.interval), e.g. 30s')
    .option('--mode <mode>', 'enforce (move VMs) or report (plan and record, move nothing)')
    .option('--listen <host:port>', 'address of /healthz and /metrics (monitor.listen)')
    .option('--once', 'run a single round (taking the lease if free), print its record, and exit');
  teach(command, {
    summary: 'the long-running balancer: read samples, plan, enqueue live migrations',
    details:
      'Every interval the active monitor reads the sample window from the store, builds the snapshot,\n' +
      'runs the policies (monitor.policies, in order), holds back moves of VMs already migrating and\n' +
      'moves over the per-round and per-hour limits, and enqueues the rest on Redis for `lbvm worker`.\n\n' +
      'Run two or three for availability: a lease in Redis lets exactly one act; a standby takes over\n' +
      'within two lease periods. SIGTERM finishes the round in progress and releases the lease.\n' +
      'Each round is logged as one JSON record; `lbm status` shows the last one.',
    examples: ['lbvm monitor', 'lbvm monitor --mode report --interval 30s', 'lbvm monitor --once --json'],
  });
  return command.action(async (options: MonitorOptions) => {
    const overrides: Record<string, unknown> = {};
    if (options.interval !== undefined) {
      if (parseDurationMs(options.interval) === null)
        throw new UsageError(`--interval ${JSON.stringify(options.interval)}: expected a duration like 30s or 5m`);
      overrides['monitor.interval'] = options.interval;
    }
    if (options.mode !== undefined) overrides['monitor.mode'] = options.mode;
    if (options.listen !== undefined) overrides['monitor.listen'] = options.listen;
    const context = CliContext.open(options, 'monitor', options.once ? 'command' : 'daemon', overrides);
    const { config, log } = context;
    logStartup(log, config, context.configFile);
    const redis = await context.redis();
    logConnectionTrouble(redis, log, config.redis);
    await assertRedisFitForQueue(redis, config.redis);
    const queue = await context.queue();
    const monitor = new Monitor({
      config,
      log,
      store: context.store(),
      redis,
      queue,
      id: `${os.hostname()}:${process.pid}`,
    });
    if (options.once) {
      try {
        const record = await monitor.round();
        process.stdout.write(`${safeJson(record, options.json ? 2 : 0)}\n`);
      } finally {
        await monitor.lease.release();
        await context.close();
      }
      return;
    }
    const server = await serveMetrics(monitor.metrics, config.monitor.listen, config.monitor.interval * 3);
    log.info({ listen: server.address }, 'serving /healthz and /metrics');
    if (!hasMonitorNodeFlags())
      log.info(
        { nodeFlags: MONITOR_NODE_FLAGS },
        `node was started without ${MONITOR_NODE_FLAGS.join(' ')}: rounds of a few hundred hosts and more ` +
          `take 5-25% more CPU. The systemd unit passes it; by hand: node ${MONITOR_NODE_FLAGS.join(' ')} ` +
          `$(command -v lbvm) monitor`,
      );
    monitor.start();
    await new Promise<void>((resolve) => {
      const shutdown = (signal: string) => {
        log.info({ signal }, 'stopping: finishing the round in progress, releasing the lease');
        resolve();
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
    await monitor.stop();
    await server.close();
    await context.close();
    log.info('stopped');
  });
}
