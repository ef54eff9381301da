/**
 * The whole path with the libvirt driver, on two libvirtd daemons of the test's own: `lbvm collect
 * --driver libvirt` on both hosts, a real `lbvm worker` on a real Redis, and `lbm migrate --wait`
 * moving a real QEMU TCG guest named `$(touch pwned); x` live from h1 to h2: the name goes through
 * lbm's argv, the Redis job, the worker and virsh as data, and no injected command runs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { ROOT, cleanEnv, runCli } from '../helpers/cli.ts';
import { startLibvirtd, type LibvirtDaemon } from '../helpers/libvirt.ts';
import { spawnTracked, waitFor, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { libvirtDriver } from '../helpers/drivers.ts';

describe('lbm migrate --wait through a worker with the libvirt driver', () => {
  const NAME = '$(touch pwned); x';
  let h1: LibvirtDaemon;
  let h2: LibvirtDaemon;
  let redis: RedisServer;
  let worker: Tracked | null = null;
  let cwd: string;
  let configFile: string;
  before(async () => {
    cwd = tmpDir();
    [redis, h1, h2] = await Promise.all([startRedis(), startLibvirtd(), startLibvirtd()]);
    configFile = path.join(cwd, 'lbvm.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        redis: { url: redis.url },
        store: { url: 'files:./samples' },
        // Logical hosts (use = the sum of their guests): both daemons share this one busy machine.
        collect: { driver: 'libvirt', hostUse: 'guests' },
        hosts: { h1: { cpuCores: 4, memBytes: '8GiB' }, h2: { cpuCores: 4, memBytes: '8GiB' } },
        migration: { bandwidthBytesPerSec: '256MiB' },
        drivers: { libvirt: { hosts: { h1: h1.uri, h2: h2.uri }, pollInterval: '250ms' } },
      }),
    );
    await h1.startGuest(NAME, { cpuPercent: 20 });
  });
  after(async () => {
    await worker?.stop();
    await Promise.all([h1?.stop(), h2?.stop(), redis?.stop()]);
  });

  it('lbm migrate --wait moves it live h1 -> h2 through a worker; the job completes at 100%', async () => {
    const env = cleanEnv();
    for (const node of ['h1', 'h2']) {
      const collected = await runCli('lbvm', ['collect', '--node', node], { env, cwd });
      assert.equal(collected.code, 0, collected.stderr);
    }
    worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker', '--config', configFile], {
      env,
      cwd,
    });
    await waitFor('the worker', () => worker!.output().includes('worker ready'), {
      process: worker,
      timeoutMs: 30_000,
    });

    const moved = await runCli('lbm', ['migrate', NAME, 'h2', '--wait', '--config', configFile], {
      env,
      cwd,
      timeoutMs: 120_000,
    });
    assert.equal(moved.code, 0, `${moved.stdout}\n${moved.stderr}\n${worker.output().slice(-3000)}`);
    assert.match(
      moved.stdout,
      /done: \$\(touch pwned\); x h1 → h2 in [\d.]+m?s, downtime \d+ ms, [\d.]+ [KMG]i?B copied/,
    );
    const jobs = JSON.parse((await runCli('lbm', ['jobs', '--json', '--config', configFile], { env, cwd })).stdout) as {
      jobs: { state: string; progress: { fraction: number } | null }[];
    };
    assert.ok(JSON.stringify(jobs.jobs[0]).includes(JSON.stringify(NAME)), JSON.stringify(jobs.jobs[0]));
    assert.equal(jobs.jobs[0]!.state, 'completed');
    assert.equal(jobs.jobs[0]!.progress?.fraction, 1);

    assert.equal(await libvirtDriver({ h1: h1.uri, h2: h2.uri }).locate(NAME), 'h2');
    assert.equal((await h1.virsh(['list', '--all', '--name'])).trim(), '', '--undefinesource: nothing left on h1');
    assert.match(await h2.virsh(['domstate', '--domain', NAME]), /running/);
    assert.match(await h2.virsh(['dominfo', '--domain', NAME]), /Persistent:\s+yes/);
    await worker.stop();
    worker = null;
  });

  it('no injected command ran: no file named pwned anywhere it could have been made', () => {
    for (const dir of [cwd, h1.dir, h2.dir, process.cwd()]) assert.ok(!fs.existsSync(path.join(dir, 'pwned')), dir);
  });
});
