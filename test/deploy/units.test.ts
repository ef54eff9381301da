import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { hasMonitorNodeFlags, MONITOR_NODE_FLAGS } from '../../src/monitor/node-flags.ts';
import { ROOT } from '../helpers/cli.ts';
import { freePort, spawnTracked, waitFor } from '../helpers/processes.ts';
import { startRedis } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

const run = promisify(execFile);
const units = ['lbvm-monitor.service', 'lbvm-worker.service', 'lbvm-agent.service'];

async function verify(file: string): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run('systemd-analyze', ['verify', file]);
    return { code: 0, stderr };
  } catch (error) {
    const failed = error as { code?: number; stderr?: string };
    return { code: failed.code ?? 1, stderr: failed.stderr ?? String(error) };
  }
}

describe('deploy/: systemd units, cron, Redis config', () => {
  for (const unit of units) {
    it(`systemd-analyze verify accepts ${unit} without a warning`, async () => {
      const result = await verify(path.join(ROOT, 'deploy/systemd', unit));
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr.trim(), '', result.stderr);
      const text = fs.readFileSync(path.join(ROOT, 'deploy/systemd', unit), 'utf8');
      assert.match(text, /^Restart=on-failure$/m);
      assert.match(text, /^NoNewPrivileges=yes$/m);
      assert.match(text, /^ProtectSystem=strict$/m);
      // With ProtectHome=yes the daemons' code cache (bin/code-cache.js) needs a folder of its own.
      assert.match(text, /^CacheDirectory=lbvm$/m);
      assert.match(text, /^CacheDirectoryMode=0700$/m);
    });
  }

  it('the monitor unit starts node with the node options of src/monitor/node-flags.ts', () => {
    const text = fs.readFileSync(path.join(ROOT, 'deploy/systemd/lbvm-monitor.service'), 'utf8');
    const start = /^ExecStart=(.*)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
    assert.deepEqual(start.slice(0, 2), ['/usr/bin/env', 'node']);
    assert.deepEqual(start.slice(2, 2 + MONITOR_NODE_FLAGS.length), [...MONITOR_NODE_FLAGS]);
    assert.deepEqual(start.slice(2 + MONITOR_NODE_FLAGS.length), ['/opt/lbvm/bin/lbvm', 'monitor']);
    // What the monitor checks at start to say when it runs without them.
    assert.equal(hasMonitorNodeFlags([], ''), false);
    assert.equal(hasMonitorNodeFlags([...MONITOR_NODE_FLAGS], ''), true);
    assert.equal(hasMonitorNodeFlags(['--inspect'], `--trace-warnings ${MONITOR_NODE_FLAGS.join(' ')}`), true);
  });

  it('the verification itself catches a broken unit (so the checks above can fail)', async () => {
    const dir = tmpDir();
    const broken = path.join(dir, 'broken.service');
    fs.writeFileSync(broken, '[Service]\nExecStart=/usr/bin/env true\nRestart=sometimes\n');
    const result = await verify(broken);
    assert.match(result.stderr, /restart specifier/);
  });

  it('the Redis config is fit for BullMQ: noeviction and AOF on', () => {
    const text = fs.readFileSync(path.join(ROOT, 'deploy/redis/lbvm-redis.conf'), 'utf8');
    assert.match(text, /^maxmemory-policy noeviction$/m);
    assert.match(text, /^appendonly yes$/m);
  });

  it('the Sentinel example is accepted by a real redis-sentinel, which then watches the master as "lbvm"', async () => {
    const master = await startRedis();
    const dir = tmpDir();
    const port = await freePort();
    const text = fs
      .readFileSync(path.join(ROOT, 'deploy/redis/sentinel.conf'), 'utf8')
      .replace(/^port 26379$/m, `port ${port}`)
      .replace(/^bind 0\.0\.0\.0$/m, 'bind 127.0.0.1')
      .replace(/^sentinel monitor lbvm 10\.0\.0\.11 6379 2$/m, `sentinel monitor lbvm 127.0.0.1 ${master.port} 2`);
    assert.match(text, new RegExp(`sentinel monitor lbvm 127.0.0.1 ${master.port} 2`));
    fs.writeFileSync(path.join(dir, 'sentinel.conf'), `${text}\ndir ${dir}\n`);
    const sentinel = spawnTracked('redis-sentinel', [path.join(dir, 'sentinel.conf')]);
    const client = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on('error', () => {});
    try {
      await waitFor(
        'redis-sentinel with the example config',
        async () => {
          if (client.status !== 'ready') await client.connect();
          const reply = (await client.call('SENTINEL', 'MASTER', 'lbvm')) as string[];
          return reply[reply.indexOf('port') + 1] === String(master.port);
        },
        { process: sentinel, timeoutMs: 15_000 },
      );
    } finally {
      client.disconnect();
      await sentinel.stop();
      await master.stop();
    }
  });

  it('the cron file runs one collect round a minute as the lbvm user', () => {
    const lines = fs
      .readFileSync(path.join(ROOT, 'deploy/cron/lbvm-collect'), 'utf8')
      .split('\n')
      .filter((line) => line && !line.startsWith('#') && !/^[A-Z_]+=/.test(line));
    assert.equal(lines.length, 1);
    const fields = lines[0]!.split(/\s+/);
    assert.deepEqual(fields.slice(0, 6), ['*', '*', '*', '*', '*', 'lbvm']);
    assert.match(lines[0]!, /node \/opt\/lbvm\/bin\/lbvm collect /);
  });
});
