/**
 * Fault 21: Redis configured so that BullMQ can lose or repeat jobs — `maxmemory-policy allkeys-lru`
 * (evicts keys) or no persistence (a restart forgets them): `lbvm worker` and `lbvm monitor` refuse
 * to start, exit 3, naming the setting and how to fix it.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

describe('fault 21: Redis that may evict or forget keys', () => {
  const servers: RedisServer[] = [];
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  it('the worker and the monitor refuse maxmemory-policy allkeys-lru and a Redis without persistence, naming the setting', async () => {
    const [lru, volatile] = await Promise.all([
      startRedis({ extraConfig: ['maxmemory-policy allkeys-lru'] }),
      startRedis({ appendonly: false }),
    ]);
    servers.push(lru, volatile);
    const env = (url: string) =>
      cleanEnv({ LBVM_REDIS_URL: url, LBVM_COLLECT_DRIVER: 'sim', LBVM_MONITOR_LISTEN: '127.0.0.1:0' });
    const run = (command: string, url: string) => runCli('lbvm', [command], { env: env(url), cwd: tmpDir() });
    const [workerLru, workerVolatile, monitorLru, monitorVolatile] = await Promise.all([
      run('worker', lru.url),
      run('worker', volatile.url),
      run('monitor', lru.url),
      run('monitor', volatile.url),
    ]);
    for (const [name, result] of Object.entries({ workerLru, monitorLru })) {
      assert.equal(result.code, 3, `${name}: ${result.stderr}`);
      assert.match(result.stderr, /maxmemory-policy allkeys-lru; BullMQ needs maxmemory-policy noeviction/, name);
      assert.match(result.stderr, /CONFIG SET maxmemory-policy noeviction/, name);
      assert.doesNotMatch(result.stderr, /\n\s+at /, `${name}: a stack trace`);
    }
    for (const [name, result] of Object.entries({ workerVolatile, monitorVolatile })) {
      assert.equal(result.code, 3, `${name}: ${result.stderr}`);
      assert.match(result.stderr, /persistence off \(appendonly no, save ""\)/, name);
      assert.match(result.stderr, /appendonly yes/, name);
      assert.doesNotMatch(result.stderr, /\n\s+at /, `${name}: a stack trace`);
    }
    // No Redis at all: the monitor gives up after its tries (the worker waits for one), with the
    // connection's own error, not the client library's retry count.
    const away = await runCli('lbvm', ['monitor'], { env: env('redis://127.0.0.1:1'), cwd: tmpDir() });
    assert.equal(away.code, 3, away.stderr);
    assert.match(
      away.stderr,
      /^lbvm: Redis at redis:\/\/127\.0\.0\.1:1 cannot be reached: connect ECONNREFUSED 127\.0\.0\.1:1\. Start Redis or fix redis\.url \(LBVM_REDIS_URL\)\.$/m,
    );
    // Neither wrote anything to the misconfigured Redis: no lease, no fencing token, no queue.
    for (const server of [lru, volatile]) {
      const client = new Redis(server.url);
      assert.deepEqual(await client.keys('*'), [], server.url);
      client.disconnect();
    }
  });
});
