/** `lbvm collect`: sample this host and its VMs into the store, once (cron) or every --every. */
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { collectLoop, collectRound, type CollectOptions, type RoundResult } from '../../../collectors/collect.ts';
import type { LbvmConfig } from '../../config/schema.ts';
import { createDriver } from '../../drivers/index.ts';
import type { Driver } from '../../drivers/driver.ts';
import { ExitError, UsageError } from '../../errors.ts';
import { loggerFor } from '../../log.ts';
import { openStoreFor, spoolFor } from '../../store/index.ts';
import { StoreAuthFailed } from '../../store/errors.ts';
import { formatBytes, parseDurationMs } from '../../units.ts';
import { teach } from '../help.ts';
import { safeJson, safeOutput } from '../render.ts';
import { loadFor, output, withCommon, type CommonOptions, logStartup } from '../run.ts';

interface CollectFlags extends CommonOptions {
  node?: string;
  store?: string;
  driver?: string;
  every?: string;
  hostOnly?: boolean;
}

/** Is `node` a logical host (use = sum of its guests, capacity from config)? See `collect.hostUse`. */
export function logicalCapacity(config: LbvmConfig): { cpuCores: number; memBytes: number } | undefined {
  const configured = config.hosts[config.node];
  const mode = config.collect.hostUse;
  if (mode === 'proc') return undefined;
  if (mode === 'guests') {
    if (!configured)
      throw new UsageError(
        `collect.hostUse is "guests" but hosts.${config.node} gives no capacity; add hosts.${config.node}: { cpuCores: N, memBytes: SIZE }`,
      );
    return { cpuCores: configured.cpuCores, memBytes: configured.memBytes };
  }
  return configured && config.node !== os.hostname()
    ? { cpuCores: configured.cpuCores, memBytes: configured.memBytes }
    : undefined;
}

function summary(result: RoundResult): string {
  const { host, delivery } = result;
  const parts = [
    `${result.node}: CPU ${host.cpuUsedCores.toFixed(2)}/${host.cpuCores} cores, memory ` +
      `${formatBytes(host.memUsedBytes)}/${formatBytes(host.memBytes)}, ${result.vmSamples} VMs`,
  ];
  if (delivery.storeError)
    parts.push(
      `store did not take it (${delivery.storeError}): spooled ${delivery.spooled}, ${formatBytes(delivery.spoolBytes)} waiting`,
    );
  else
    parts.push(
      `wrote ${delivery.written} samples${delivery.replayed ? `, replayed ${delivery.replayed} spooled` : ''}`,
    );
  if (delivery.rejected) parts.push(`set aside ${delivery.rejected} invalid`);
  if (delivery.dropped) parts.push(`spool full: dropped ${delivery.dropped} oldest`);
  if (result.driverError) parts.push(`VMs not listed: ${result.driverError}`);
  return parts.join('; ');
}

export function collectCommand(): Command {
  const command = withCommon(new Command('collect'))
    .option('--node <name>', 'host name to tag samples with (default: config node, else the hostname)')
    .option('--store <url>', 'files:DIR or influx://[user:pass@]host:port/db (overrides store.url)')
    .option(
      '--driver <name>',
      'hypervisor driver listing the VMs: qemu, sim, libvirt, proxmox, openvz (overrides collect.driver)',
    )
    .option(
      '--every <duration>',
      'loop: one round every DURATION (10s, 1m) until stopped; without it, one round for cron',
    )
    .option('--host-only', 'sample the host only, without asking a driver for its VMs');
  teach(command, {
    summary: 'sample this host and its VMs once (for cron) or every --every, into the sample store',
    details:
      'Measures the host from /proc (CPU from /proc/stat deltas kept in\n' +
      'collect.stateFile, memory, load, disk and network rates, steal) and each VM\n' +
      "through the driver's inventory, and writes them to the store with their\n" +
      'measurement time. When the store cannot take them they go to a local spool\n' +
      '(store.spoolDir, at most store.spoolMaxBytes), replayed in order next round.\n' +
      'A logical host (collect.hostUse) reports the sum of its guests and its\n' +
      'configured capacity. For cron (stderr, i.e. warnings, gets mailed):\n' +
      '  * * * * * cd /var/lib/lbvm && lbvm collect -c /etc/lbvm/lbvm.yaml >/dev/null',
    examples: [
      'lbvm collect',
      'lbvm collect --every 10s --store files:/shared/lbvm/samples',
      'LBVM_STORE_URL=influx://lbvm:secret@influx:8086/lbvm lbvm collect --json',
      'lbvm collect --host-only --store files:/tmp/samples',
    ],
  });
  return command.action(async (flags: CollectFlags) => {
    let intervalMs: number | undefined;
    if (flags.every !== undefined) {
      const parsed = parseDurationMs(flags.every);
      if (parsed === null || parsed < 1000)
        throw new UsageError(
          `--every ${JSON.stringify(flags.every)}: expected a duration of at least 1s, like 10s or 1m`,
        );
      intervalMs = parsed;
    }
    const { config, file } = loadFor(flags, {
      node: flags.node,
      'store.url': flags.store,
      'collect.driver': flags.driver,
      'collect.interval': flags.every,
    });
    const log = loggerFor(config, 'collect');
    if (intervalMs !== undefined) logStartup(log, config, file);
    const capacity = logicalCapacity(config);
    if (capacity && flags.hostOnly)
      throw new UsageError(
        `--host-only: ${config.node} is a logical host whose use is the sum of its guests; it needs a driver`,
      );
    // Without a driver there are no VMs; a driver missing its settings says so here, naming them.
    const driver: Driver | null = flags.hostOnly ? null : await createDriver(config.collect.driver, { config, log });
    const store = openStoreFor(config, log);
    const spool = spoolFor(config, log);
    const options: CollectOptions = {
      node: config.node,
      store,
      spool,
      driver,
      stateFile: path.resolve(config.collect.stateFile),
      logicalCapacity: capacity,
      batchSize: config.store.batchSize,
      log,
    };
    // Retention of the files store: every collector removes day folders past store.retention
    // (idempotent, so many collectors sharing a folder do no harm). InfluxDB expires data itself.
    const prune = async () => {
      try {
        await store.prune();
      } catch (error) {
        log.warn(
          { store: store.displayUrl, error: (error as Error).message },
          `could not remove old samples from ${store.displayUrl}: ${(error as Error).message}`,
        );
      }
    };
    try {
      if (intervalMs === undefined) {
        const result = await collectRound(options);
        await prune();
        output(flags, result, summary);
        if (result.delivery.authFailed) throw new StoreAuthFailed(result.delivery.storeError!, []);
        if (result.driverError) throw new ExitError(`the round was written without VMs: ${result.driverError}`, 1);
        return;
      }
      const controller = new AbortController();
      const stop = () => controller.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await collectLoop({
        ...options,
        intervalMs,
        signal: controller.signal,
        onRound: (result) => {
          if (result instanceof Error) return;
          void prune();
          if (flags.json) process.stdout.write(`${safeJson(result)}\n`);
          else process.stdout.write(safeOutput(`${new Date(result.timeMs).toISOString()} ${summary(result)}\n`));
        },
      });
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    } finally {
      await Promise.allSettled([store.close(), driver?.close()]);
    }
  });
}
