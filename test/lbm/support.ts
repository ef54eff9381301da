/**
 * A small cluster for `lbm` tests: a real Redis, a files store with samples collected from the sim
 * driver (in this process, through the real collector), a config file, and `lbm` run as a user does.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import type { LbvmConfig } from '../../src/config/schema.ts';
import { SimDriver, type SimVm } from '../../src/drivers/sim.ts';
import { createLogger } from '../../src/log.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { openStore, type SampleStore } from '../../src/store/index.ts';
import { cleanEnv, runCli, type CliResult } from '../helpers/cli.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { collectSim, simConfigBase } from '../helpers/sim.ts';
import { tmpDir } from '../helpers/tmp.ts';

export const GiB = 1024 ** 3;
export const log = createLogger({ level: 'error', format: 'json' });

export function simVmOf(name: string, memBytes: number, cpuBase: number): SimVm {
  return { name, vcpus: 1, memBytes, cpuBase, cpuSwing: 0, phase: 0, memUse: 0.5 };
}

export interface LbmCluster {
  server: RedisServer;
  config: LbvmConfig;
  configFile: string;
  store: SampleStore;
  driver: SimDriver;
  /** A plain client on the test Redis (closed with the cluster). */
  redis: ReturnType<typeof connectRedis>;
  queue: MigrationQueue;
  hosts: string[];
  lbm(...args: string[]): Promise<CliResult>;
  json<T>(...args: string[]): Promise<T>;
  /** One collect round for every host. */
  collect(): Promise<void>;
  close(): Promise<void>;
}

/** `settings` are merged into the config file (redis and store are filled in). */
export async function startLbmCluster(
  hosts: string[],
  vms: SimVm[],
  placement: Record<string, string>,
  settings: Record<string, unknown> = {},
): Promise<LbmCluster> {
  const server = await startRedis();
  const dir = tmpDir('lbvm-lbm-');
  const configFile = path.join(dir, 'lbvm.yaml');
  fs.writeFileSync(
    configFile,
    YAML.stringify({
      ...simConfigBase(dir, server.url, 'lbm'),
      ...settings,
    }),
  );
  const config = loadConfig({ configPath: configFile, env: {} }).config;
  const redis = connectRedis(server.url);
  const driver = new SimDriver({ config, redis });
  await driver.cluster.define(
    hosts.map((name) => ({ name, cpuCores: 4, memBytes: 16 * GiB })),
    vms,
    placement,
  );
  const store = openStore(config.store.url, { log });
  const queue = new MigrationQueue(redis, config);
  const lbm = (...args: string[]) => runCli('lbm', [...args, '--config', configFile], { env: cleanEnv() });
  const cluster: LbmCluster = {
    server,
    config,
    configFile,
    store,
    driver,
    redis,
    queue,
    hosts,
    lbm,
    async json<T>(...args: string[]): Promise<T> {
      const result = await lbm(...args, '--json');
      assert.equal(result.code, 0, `lbm ${args.join(' ')}: ${result.stderr}`);
      return JSON.parse(result.stdout) as T;
    },
    collect: () =>
      collectSim({ config, store, driver, nodes: hosts, capacity: { cpuCores: 4, memBytes: 16 * GiB }, log }),
    async close() {
      await queue.close().catch(() => {});
      await store.close();
      redis.disconnect();
      await server.stop();
    },
  };
  return cluster;
}
