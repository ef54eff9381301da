/**
 * Ctrl-C while `lbm migrate --wait` waits, against a real Redis and a real `lbvm worker` (sim
 * driver, slowed so the migration is still running when the operator interrupts):
 * - on a terminal (a real pseudo-terminal through util-linux `script`), ^C asks whether to cancel;
 *   "y" cancels the migration, which fails as cancelled, and the VM stays on its source;
 * - without a terminal (a script), SIGINT stops the waiting only: the migration goes on.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { SimDriver } from '../../src/drivers/sim.ts';
import { createLogger } from '../../src/log.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { openStore } from '../../src/store/index.ts';
import { ROOT, cleanEnv, runCli } from '../helpers/cli.ts';
import { spawnTracked, waitFor, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { collectSim, simConfigBase } from '../helpers/sim.ts';
import { tmpDir } from '../helpers/tmp.ts';

const GiB = 1024 ** 3;
const log = createLogger({ level: 'error', format: 'json' });

describe('lbm migrate --wait, interrupted', () => {
  let server: RedisServer;
  let configFile: string;
  let driver: SimDriver;
  let worker: Tracked;
  let redis: ReturnType<typeof connectRedis>;
  const lbm = (...args: string[]) => runCli('lbm', [...args, '--config', configFile], { env: cleanEnv() });

  before(async () => {
    server = await startRedis();
    const dir = tmpDir('lbvm-lbm-interrupt-');
    configFile = path.join(dir, 'lbvm.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        ...simConfigBase(dir, server.url, 'int'),
        // 8 GiB at 128 MiB/s: a minute of copying, time enough to interrupt.
        migration: { bandwidthBytesPerSec: '128MiB' },
        limits: { migrationsPerSourceHost: 4, migrationsPerDestinationHost: 4, migrationsInCluster: 8 },
      }),
    );
    const { config } = loadConfig({ configPath: configFile, env: {} });
    redis = connectRedis(server.url);
    driver = new SimDriver({ config, redis });
    const vm = (name: string) => ({
      name,
      vcpus: 2,
      memBytes: 8 * GiB,
      cpuBase: 0.5,
      cpuSwing: 0,
      phase: 0,
      memUse: 0.5,
    });
    await driver.cluster.define(
      ['h1', 'h2'].map((name) => ({ name, cpuCores: 8, memBytes: 64 * GiB })),
      [vm('big-1'), vm('big-2')],
      { 'big-1': 'h1', 'big-2': 'h1' },
    );
    const store = openStore(config.store.url, { log });
    await collectSim({
      config,
      store,
      driver,
      nodes: ['h1', 'h2'],
      capacity: { cpuCores: 8, memBytes: 64 * GiB },
      log,
      rounds: 2,
    });
    await store.close();
    worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker', '--config', configFile], {
      env: cleanEnv(),
    });
    await waitFor('the worker', () => worker.output().includes('worker ready'), { process: worker, timeoutMs: 30_000 });
  });
  after(async () => {
    await worker?.stop();
    redis?.disconnect();
    await server?.stop();
  });

  it('on a terminal, Ctrl-C asks; "y" cancels the migration and the VM stays on its source', async () => {
    // A real pseudo-terminal: `script` runs the command on one and copies our pipe to it, so the
    // ^C byte below reaches lbm as SIGINT from the terminal, as an operator's keystroke would.
    const waiting = spawnTracked(
      'script',
      [
        '-qfec',
        'exec "$TEST_LBM_NODE" "$TEST_LBM_LBM" migrate big-1 h2 --wait --config "$TEST_LBM_CONFIG"',
        '/dev/null',
      ],
      {
        env: cleanEnv({
          TEST_LBM_NODE: process.execPath,
          TEST_LBM_LBM: path.join(ROOT, 'bin/lbm.js'),
          TEST_LBM_CONFIG: configFile,
        }),
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    try {
      await waitFor('the progress bar', () => /big-1 h1 → h2 .*\d+%/.test(waiting.output()), {
        process: waiting,
        timeoutMs: 30_000,
      });
      waiting.child.stdin!.write('\u0003');
      await waitFor(
        'the question',
        () => waiting.output().includes('cancel the migration of big-1? It stays on h1. [y/N]'),
        { process: waiting, timeoutMs: 10_000 },
      );
      waiting.child.stdin!.write('y\r');
      const { code } = await waiting.exited;
      const output = waiting.output();
      assert.match(output, /cancel requested/);
      assert.match(output, /failed: big-1 stays on h1: .*cancel/i);
      assert.equal(code, 6, output);
    } finally {
      await waiting.stop();
    }
    assert.equal(await driver.locate('big-1'), 'h1');
    const jobs = JSON.parse((await lbm('jobs', '--json')).stdout) as {
      jobs: { data: { vm: string }; state: string; failedReason: string | null }[];
    };
    assert.deepEqual(
      jobs.jobs.filter((job) => job.data.vm === 'big-1').map((job) => job.state),
      ['failed'],
    );
  });

  it('without a terminal, SIGINT stops the waiting and the migration goes on', async () => {
    const waiting = spawnTracked(
      process.execPath,
      [path.join(ROOT, 'bin/lbm.js'), 'migrate', 'big-2', 'h2', '--wait', '--config', configFile],
      { env: cleanEnv() },
    );
    try {
      await waitFor('the progress', () => /big-2 h1 → h2 .*\d+%/.test(waiting.output()), {
        process: waiting,
        timeoutMs: 30_000,
      });
      waiting.child.kill('SIGINT');
      const { code } = await waiting.exited;
      assert.equal(code, 0, waiting.output());
      assert.match(waiting.output(), /stopped waiting; the migration goes on \(job \S+, active\)/);
    } finally {
      await waiting.stop();
    }
    const jobs = JSON.parse((await lbm('jobs', '--json')).stdout) as {
      jobs: { data: { vm: string }; state: string; failedReason: string | null }[];
    };
    assert.deepEqual(
      jobs.jobs.filter((job) => job.data.vm === 'big-2').map((job) => job.state),
      ['active'],
    );
  });
});
