import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/cli.ts';
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
    });
  }

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

  it('the cron file runs one collect round a minute as the lbvm user', () => {
    const lines = fs
      .readFileSync(path.join(ROOT, 'deploy/cron/lbvm-collect'), 'utf8')
      .split('\n')
      .filter((line) => line && !line.startsWith('#') && !/^[A-Z_]+=/.test(line));
    assert.equal(lines.length, 1);
    const fields = lines[0]!.split(/\s+/);
    assert.deepEqual(fields.slice(0, 6), ['*', '*', '*', '*', '*', 'lbvm']);
    assert.match(lines[0]!, /lbvm\.js collect/);
  });
});
