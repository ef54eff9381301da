/**
 * `lbm migrate --wait` moves a real QEMU guest between two real agents through a real worker, with
 * progress that reaches 100%; the guest then runs on the destination only.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { qemuProcessesOf, startAgent, testGuestSpec, ticks, waitBooted, type TestAgent } from '../helpers/agent.ts';
import { ROOT, cleanEnv, runCli } from '../helpers/cli.ts';
import { spawnTracked, waitFor, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

describe('lbm migrate --wait with real QEMU guests', () => {
  let redis: RedisServer;
  let a: TestAgent;
  let b: TestAgent;
  let worker: Tracked | null = null;
  before(async () => {
    [redis, a, b] = await Promise.all([startRedis(), startAgent('h1'), startAgent('h2')]);
    await a.client.start(testGuestSpec('web-1', { cpuPercent: 20 }, 128));
    await waitBooted(a, 'web-1');
  });
  after(async () => {
    await worker?.stop();
    for (const agent of [a, b]) await agent.client.stop('web-1').catch(() => {});
    await Promise.all([a.stop(), b.stop(), redis.stop()]);
  });

  it('moves the guest live from h1 to h2; progress reaches 100%', async () => {
    const dir = tmpDir('lbvm-lbm-qemu-');
    const configFile = path.join(dir, 'lbvm.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        redis: { url: redis.url },
        store: { url: `files:${path.join(dir, 'samples')}`, spoolDir: path.join(dir, 'spool') },
        collect: { driver: 'qemu', stateFile: path.join(dir, 'state.json') },
        hosts: {
          h1: { cpuCores: 2, memBytes: '4GiB', agent: a.address },
          h2: { cpuCores: 2, memBytes: '4GiB', agent: b.address },
        },
      }),
    );
    const env = cleanEnv({ LBVM_AGENT_TOKEN: a.token });
    for (let round = 0; round < 2; round++) {
      for (const node of ['h1', 'h2']) {
        const collected = await runCli('lbvm', ['collect', '--config', configFile, '--node', node], { env, cwd: dir });
        assert.equal(collected.code, 0, collected.stderr);
      }
    }
    worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker', '--config', configFile], {
      env,
      cwd: dir,
    });
    await waitFor('the worker', () => worker!.output().includes('worker ready'), {
      process: worker,
      timeoutMs: 30_000,
    });
    const ticksBefore = ticks(a.console('web-1'));

    const moved = await runCli('lbm', ['migrate', 'web-1', 'h2', '--wait', '--config', configFile], {
      env,
      cwd: dir,
      timeoutMs: 120_000,
    });
    assert.equal(moved.code, 0, `${moved.stdout}\n${moved.stderr}`);
    assert.match(moved.stdout, /^done: web-1 h1 → h2 in [\d.]+m?s, downtime \d+ ms, [\d.]+ [KMG]i?B copied/m);

    const jobs = JSON.parse(
      (await runCli('lbm', ['jobs', '--json', '--config', configFile], { env, cwd: dir })).stdout,
    ) as { jobs: { state: string; progress: { fraction: number } | null }[] };
    assert.equal(jobs.jobs[0]!.state, 'completed');
    assert.equal(jobs.jobs[0]!.progress?.fraction, 1, `progress ended at ${JSON.stringify(jobs.jobs[0]!.progress)}`);

    // The guest runs on h2 only, and its counter went on from where it was.
    assert.deepEqual(
      (await a.client.list()).guests.map((g) => g.name),
      [],
    );
    assert.deepEqual(
      (await b.client.list()).guests.map((g) => g.name),
      ['web-1'],
    );
    assert.equal(qemuProcessesOf('web-1').length, 1);
    await waitFor('the guest to tick on h2', () => ticks(b.console('web-1')).length > 0, { timeoutMs: 20_000 });
    assert.ok(ticks(b.console('web-1'))[0]! >= ticksBefore[ticksBefore.length - 1]!, 'the counter went backwards');
  });
});
