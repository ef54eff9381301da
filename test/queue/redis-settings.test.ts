/**
 * `lbvm worker` and Redis: it works with a password without ever logging it, and stops on SIGTERM.
 * (Refusing a Redis that may evict or forget keys: test/faults/21-redis-unfit.test.ts.)
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { cleanEnv, ROOT, runCli } from '../helpers/cli.ts';
import { spawnTracked, waitFor } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

describe('lbvm worker and the Redis it runs on', () => {
  const servers: RedisServer[] = [];
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
  });

  it('connects with a password, never logs it, and exits cleanly on SIGTERM', async () => {
    const secured = await startRedis({ password: 's3cret-pw' });
    servers.push(secured);
    const worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker'], {
      env: cleanEnv({ LBVM_REDIS_URL: secured.url, LBVM_COLLECT_DRIVER: 'sim', LBVM_LOG_FORMAT: 'json' }),
      cwd: tmpDir(),
    });
    await waitFor('the worker to be ready', () => worker.output().includes('worker ready'), { process: worker, timeoutMs: 30_000 });
    worker.child.kill('SIGTERM');
    const exit = await worker.exited;
    assert.equal(exit.code, 0, worker.output());
    assert.ok(!worker.output().includes('s3cret-pw'), 'the password reached a log line');
    assert.match(worker.output(), /redis:\/\/:\*\*\*@127\.0\.0\.1/);
    // Without the password it says so and exits with the queue's code.
    const refused = await runCli('lbvm', ['worker'], { env: cleanEnv({ LBVM_REDIS_URL: `redis://127.0.0.1:${secured.port}`, LBVM_COLLECT_DRIVER: 'sim' }), cwd: tmpDir(), timeoutMs: 30_000 });
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /NOAUTH|authentication/i);
  });
});
