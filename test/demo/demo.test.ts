/**
 * The README's first command: `npm run demo`. The sim demo through npm, and the QEMU demo with real
 * guests and live migrations, each with a short duration: the cluster's imbalance falls, at least
 * one live migration completes, and no process it started is left behind.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { ROOT, cleanEnv, runCli } from '../helpers/cli.ts';
import { tmpDir } from '../helpers/tmp.ts';

interface DemoJson {
  driver: string;
  imbalanceBefore: number;
  imbalanceAfter: number;
  migrations: { vm: string; from: string; to: string; mode: string; totalMs: number; downtimeMs: number | null }[];
  leftoverProcesses: number;
  reportHtml: string | null;
}

function lastJson(stdout: string): DemoJson {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as DemoJson;
}

function demoProcesses(): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes('lbvm-demo-')) found.push(cmdline.replace(/\0/g, ' '));
    } catch {
      /* gone */
    }
  }
  return found;
}

describe('npm run demo', () => {
  it('--sim balances 20 simulated hosts and leaves nothing behind', async () => {
    const reportDir = tmpDir('lbvm-demo-report-');
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile('npm', ['run', '-s', 'demo', '--', '--sim', '--json', '--duration', '60', '--report-dir', reportDir], { cwd: ROOT, env: cleanEnv(), timeout: 180_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
    });
    assert.equal(result.code, 0, result.stderr.slice(-3000));
    const demo = lastJson(result.stdout);
    assert.equal(demo.driver, 'sim');
    assert.ok(demo.migrations.length >= 1, 'no migration completed');
    assert.ok(demo.imbalanceAfter < demo.imbalanceBefore, `imbalance did not fall: ${demo.imbalanceBefore} → ${demo.imbalanceAfter}`);
    assert.equal(demo.leftoverProcesses, 0);
    assert.deepEqual(demoProcesses(), []);
    assert.ok(demo.reportHtml && fs.existsSync(demo.reportHtml), 'no HTML report');
    assert.match(result.stderr, /decision: /, 'the live view shows no decision');
  });

  it('with QEMU: 6 real guests on 3 agent hosts, balanced by live migration', async () => {
    const reportDir = tmpDir('lbvm-demo-report-');
    const result = await runCli('lbvm', ['demo', '--json', '--duration', '150', '--report-dir', reportDir], { env: cleanEnv(), timeoutMs: 300_000 });
    assert.equal(result.code, 0, result.stderr.slice(-3000));
    const demo = lastJson(result.stdout);
    assert.equal(demo.driver, 'qemu', result.stderr.slice(-2000));
    assert.ok(demo.migrations.length >= 1, `no live migration completed:\n${result.stderr.slice(-3000)}`);
    assert.ok(demo.migrations.every((m) => m.mode === 'live' && m.totalMs > 0));
    assert.ok(demo.imbalanceAfter < demo.imbalanceBefore, `imbalance did not fall: ${demo.imbalanceBefore} → ${demo.imbalanceAfter}\n${result.stderr.slice(-3000)}`);
    assert.equal(demo.leftoverProcesses, 0);
    assert.deepEqual(demoProcesses(), []);
    assert.match(result.stderr, /migrated vm-\d h1 → h[23] in .*, downtime \d+ ms/);
  });
});
