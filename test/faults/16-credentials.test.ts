/**
 * Fault 16: Redis with a password and InfluxDB with authentication. What must hold: both work when
 * given credentials, fail with a clear message without (naming the URL, its password shown as ***),
 * and no secret reaches any log line or output. Real redis-server (requirepass) and influxd (auth on);
 * credentials come from the environment, as deployed.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/store/index.ts';
import { cleanEnv, ROOT, runCli } from '../helpers/cli.ts';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { spawnTracked, waitFor } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, readWindow } from '../store/builders.ts';

describe('fault 16: Redis with a password and InfluxDB with authentication', () => {
  const redisPassword = 'r3dis-Secret-pw';
  const admin = { username: 'collector', password: 'Sup3r-Secret-pw' };
  let redis: RedisServer;
  let influx: InfluxServer;
  before(async () => {
    [redis, influx] = await Promise.all([startRedis({ password: redisPassword }), startInflux({ admin })]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), influx?.stop()]);
  });

  it('lbvm worker connects to Redis with a password, never logs it, and exits cleanly on SIGTERM; without it, says so', async () => {
    const worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker'], {
      env: cleanEnv({ LBVM_REDIS_URL: redis.url, LBVM_COLLECT_DRIVER: 'sim', LBVM_LOG_FORMAT: 'json' }),
      cwd: tmpDir(),
    });
    await waitFor('the worker to be ready', () => worker.output().includes('worker ready'), {
      process: worker,
      timeoutMs: 30_000,
    });
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, worker.output());
    assert.ok(!worker.output().includes(redisPassword), 'the password reached a log line');
    assert.match(worker.output(), /redis:\/\/:\*\*\*@127\.0\.0\.1/);
    // Without the password it says so and exits with the queue's code.
    const refused = await runCli('lbvm', ['worker'], {
      env: cleanEnv({ LBVM_REDIS_URL: `redis://127.0.0.1:${redis.port}`, LBVM_COLLECT_DRIVER: 'sim' }),
      cwd: tmpDir(),
      timeoutMs: 30_000,
    });
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /NOAUTH|authentication/i);
    assert.ok(
      refused.stderr.includes(`redis://127.0.0.1:${redis.port}`),
      `the message names the URL: ${refused.stderr}`,
    );
    assert.doesNotMatch(refused.stderr, /\n\s+at /);
  });

  it('the InfluxDB store works with credentials', async () => {
    const store = openStore(influx.storeUrl('authdb', admin));
    const now = Date.now();
    assert.equal((await store.writeSamples([hostSample('n1', now - 1000)])).written, 1);
    assert.equal((await readWindow(store, { fromMs: now - 5000, toMs: now })).samples.length, 1);
  });

  it('lbvm collect writes with the credentials from LBVM_STORE_URL; without them exits 3 saying "authentication", no secret printed', async () => {
    const cwd = tmpDir();
    const good = await runCli('lbvm', ['collect', '--host-only', '--node', 'n1'], {
      cwd,
      env: cleanEnv({ LBVM_STORE_URL: influx.storeUrl('lbvm', admin) }),
    });
    assert.equal(good.code, 0, good.stderr);
    assert.ok(!`${good.stdout}${good.stderr}`.includes(admin.password));
    const bad = await runCli(
      'lbvm',
      [
        'collect',
        '--host-only',
        '--node',
        'n1',
        '--store',
        influx.storeUrl('lbvm', { username: admin.username, password: 'not-the-pw' }),
      ],
      { cwd, env: cleanEnv() },
    );
    assert.equal(bad.code, 3, bad.stderr);
    assert.match(bad.stderr, /refused authentication \(401\)/);
    assert.ok(bad.stderr.includes(`influx://collector:***@127.0.0.1:${influx.port}/lbvm`), bad.stderr);
    assert.ok(!`${bad.stdout}${bad.stderr}`.includes('not-the-pw'));
  });

  it(
    'lbm and lbvm monitor read both with the credentials from the environment; ' +
      'a wrong password on either says "authentication" and the URL, no secret',
    async () => {
      const cwd = tmpDir();
      const redisUrl = `redis://:${redisPassword}@127.0.0.1:${redis.port}`;
      const storeUrl = influx.storeUrl('stack', admin);
      const secrets = [redisPassword, admin.password, 'wr0ng-Redis-pw', 'wr0ng-Influx-pw'];
      const clean = (output: string) => {
        for (const secret of secrets) assert.ok(!output.includes(secret), `a secret reached the output:\n${output}`);
      };
      const good = cleanEnv({
        LBVM_REDIS_URL: redisUrl,
        LBVM_STORE_URL: storeUrl,
        LBVM_LOG_FORMAT: 'json',
        LBVM_MONITOR_LISTEN: '127.0.0.1:0',
      });
      assert.equal((await openStore(storeUrl).writeSamples([hostSample('n1', Date.now() - 1000)])).written, 1);
      const hosts = await runCli('lbm', ['hosts', '--json'], { cwd, env: good });
      assert.equal(hosts.code, 0, hosts.stderr);
      assert.deepEqual(
        (JSON.parse(hosts.stdout) as { hosts: { host: string }[] }).hosts.map((host) => host.host),
        ['n1'],
      );
      clean(hosts.stdout + hosts.stderr);
      const monitor = await runCli('lbvm', ['monitor', '--once', '--json'], {
        cwd,
        env: { ...good, LBVM_LOG_LEVEL: 'debug' },
      });
      assert.equal(monitor.code, 0, monitor.stderr);
      assert.equal(
        (JSON.parse(monitor.stdout.slice(monitor.stdout.indexOf('{'))) as { inputs: { hosts: number } }).inputs.hosts,
        1,
      );
      assert.match(monitor.stderr, /redis:\/\/:\*\*\*@127\.0\.0\.1/);
      assert.match(monitor.stderr, /influx:\/\/collector:\*\*\*@127\.0\.0\.1/);
      clean(monitor.stdout + monitor.stderr);

      const noRedisPassword = await runCli('lbm', ['hosts'], {
        cwd,
        env: { ...good, LBVM_REDIS_URL: `redis://127.0.0.1:${redis.port}` },
      });
      const wrongRedisPassword = await runCli('lbm', ['hosts'], {
        cwd,
        env: { ...good, LBVM_REDIS_URL: `redis://:wr0ng-Redis-pw@127.0.0.1:${redis.port}` },
      });
      for (const result of [noRedisPassword, wrongRedisPassword]) {
        assert.equal(result.code, 3, result.stderr);
        assert.match(
          result.stderr,
          new RegExp(
            `^lbm: Redis at redis://(:\\*\\*\\*@)?127\\.0\\.0\\.1:${redis.port} refused authentication \\(.*\\)\\. Check the password in`,
          ),
        );
        assert.doesNotMatch(result.stderr, /\n\s+at /);
        clean(result.stderr);
      }
      // The monitor above published its snapshot, which `lbm hosts` would read without the store: ask for the store.
      const wrongStore = await runCli('lbm', ['hosts', '--from-store'], {
        cwd,
        env: {
          ...good,
          LBVM_STORE_URL: influx.storeUrl('stack', { username: admin.username, password: 'wr0ng-Influx-pw' }),
        },
      });
      assert.equal(wrongStore.code, 3, wrongStore.stderr);
      assert.match(
        wrongStore.stderr,
        new RegExp(
          `InfluxDB at influx://collector:\\*\\*\\*@127\\.0\\.0\\.1:${influx.port}/stack refused authentication \\(401\\)`,
        ),
      );
      clean(wrongStore.stderr);
    },
  );
});
