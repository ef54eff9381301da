/**
 * The README's first command: `npm run demo`, the simulated cluster through npm with a short duration:
 * the imbalance falls to the level's target, it says "balanced" only when the numbers do, at least one
 * migration completes, and no process it started is left behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { ROOT, cleanEnv } from '../helpers/cli.ts';
import { demoProcesses, demoTmp, lastJson, type DemoJson } from '../helpers/demo.ts';
import { tmpDir } from '../helpers/tmp.ts';

describe('npm run demo --sim', () => {
  it('--sim balances 20 simulated hosts and leaves nothing behind', async () => {
    const reportDir = tmpDir('lbvm-demo-report-');
    const tmp = demoTmp();
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        'npm',
        ['run', '-s', 'demo', '--', '--sim', '--json', '--duration', '120', '--report-dir', reportDir],
        { cwd: ROOT, env: cleanEnv({ TMPDIR: tmp }), timeout: 180_000, maxBuffer: 64 * 1024 * 1024 },
        (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(result.code, 0, result.stderr.slice(-3000));
    const demo = lastJson(result.stdout);
    assert.equal(demo.driver, 'sim');
    assert.ok(demo.migrations.length >= 1, 'no migration completed');
    assert.ok(
      demo.imbalanceAfter < demo.imbalanceBefore,
      `imbalance did not fall: ${demo.imbalanceBefore} → ${demo.imbalanceAfter}`,
    );
    // It says "balanced" only when the numbers say so: under threshold 3's target, and no host above the
    // high watermark while one under the low watermark has room.
    assert.equal(demo.balanced, true, `${demo.stopReason}\n${result.stderr.slice(-3000)}`);
    assert.ok(demo.imbalanceAfter <= 0.1, `imbalance ${demo.imbalanceAfter}`);
    assert.equal(demo.hosts.length, 20);
    const load = (h: DemoJson['hosts'][number]) => Math.max(h.cpuShare, h.memCommittedShare ?? 0);
    const hot = demo.hosts.filter((h) => load(h) > 0.8);
    assert.ok(hot.length === 0 || !demo.hosts.some((h) => load(h) < 0.6), JSON.stringify(demo.hosts));
    assert.match(demo.stopReason ?? '', /imbalance under threshold 3's target 0\.1/);
    assert.equal(demo.leftoverProcesses, 0);
    assert.deepEqual(demoProcesses(tmp), []);
    assert.ok(demo.reportHtml && fs.existsSync(demo.reportHtml), 'no HTML report');
    assert.match(result.stderr, /decision: /, 'the live view shows no decision');
    // The story is told in order: a move the monitor queued is shown as decided before it is shown moving.
    const story = result.stderr.split('\n');
    for (const [at, line] of story.entries()) {
      const vm = /migrating (\S+) /.exec(line)?.[1];
      if (!vm) continue;
      const decided = story.findIndex((other) => other.includes('decision: ') && other.includes(` ${vm} (`));
      assert.ok(decided >= 0 && decided < at, `"${line.trim()}" without a decision line for ${vm} before it`);
    }
  });
});
