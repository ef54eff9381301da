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
  balanced: boolean;
  stopReason: string | null;
  hosts: { host: string; cpuShare: number; memUsedShare: number; memCommittedShare: number | null; vms: number }[];
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
      execFile(
        'npm',
        ['run', '-s', 'demo', '--', '--sim', '--json', '--duration', '120', '--report-dir', reportDir],
        { cwd: ROOT, env: cleanEnv(), timeout: 180_000, maxBuffer: 64 * 1024 * 1024 },
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
    assert.deepEqual(demoProcesses(), []);
    assert.ok(demo.reportHtml && fs.existsSync(demo.reportHtml), 'no HTML report');
    assert.match(result.stderr, /decision: /, 'the live view shows no decision');
  });

  it('with QEMU: 6 real guests on 3 agent hosts, balanced by live migration', async () => {
    const reportDir = tmpDir('lbvm-demo-report-');
    const result = await runCli('lbvm', ['demo', '--json', '--duration', '150', '--report-dir', reportDir], {
      env: cleanEnv(),
      timeoutMs: 300_000,
    });
    assert.equal(result.code, 0, result.stderr.slice(-3000));
    const demo = lastJson(result.stdout);
    assert.equal(demo.driver, 'qemu', result.stderr.slice(-2000));
    assert.ok(demo.migrations.length >= 1, `no live migration completed:\n${result.stderr.slice(-3000)}`);
    assert.ok(demo.migrations.every((m) => m.mode === 'live' && m.totalMs > 0));
    assert.ok(
      demo.imbalanceAfter < demo.imbalanceBefore,
      `imbalance did not fall: ${demo.imbalanceBefore} → ${demo.imbalanceAfter}\n${result.stderr.slice(-3000)}`,
    );
    assert.equal(demo.leftoverProcesses, 0);
    assert.deepEqual(demoProcesses(), []);
    assert.match(result.stderr, /migrated vm-\d h1 → h[23] in .*, downtime \d+ ms/);
  });
});
