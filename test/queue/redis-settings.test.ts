/**
 * `lbvm worker` and Redis: it refuses a Redis that may evict keys or forget them on restart
 * (naming the setting). Redis with a password is fault 16 (test/faults/16-credentials.test.ts).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

describe('lbvm worker and the Redis it runs on', () => {
  const servers: RedisServer[] = [];
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  it('refuses maxmemory-policy allkeys-lru and a Redis without persistence, naming the setting', async () => {
    const [lru, volatile] = await Promise.all([startRedis({ extraConfig: ['maxmemory-policy allkeys-lru'] }), startRedis({ appendonly: false })]);
    servers.push(lru, volatile);
    const env = (url: string) => cleanEnv({ LBVM_REDIS_URL: url, LBVM_COLLECT_DRIVER: 'sim' });
    const [onLru, onVolatile] = await Promise.all([
      runCli('lbvm', ['worker'], { env: env(lru.url), cwd: tmpDir() }),
      runCli('lbvm', ['worker'], { env: env(volatile.url), cwd: tmpDir() }),
    ]);
    assert.equal(onLru.code, 3, onLru.stderr);
    assert.match(onLru.stderr, /maxmemory-policy allkeys-lru; BullMQ needs maxmemory-policy noeviction/);
    assert.equal(onVolatile.code, 3, onVolatile.stderr);
    assert.match(onVolatile.stderr, /persistence off \(appendonly no, save ""\)/);
  });
});
