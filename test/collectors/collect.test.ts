/**
 * `lbvm collect` as an operator runs it: into a real files store, and loudly refusing drivers that
 * are not built yet. Its faults (InfluxDB down, credentials) are in test/faults/.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { HostSample, Sample } from '../../src/model/index.ts';
import { collectRound } from '../../collectors/collect.ts';
import { logicalCapacity } from '../../src/cli/commands/collect.ts';
import { loadConfig } from '../../src/config/index.ts';
import { openStore, Spool } from '../../src/store/index.ts';
import { cleanEnv, ROOT, runCli } from '../helpers/cli.ts';
import { waitFor } from '../helpers/processes.ts';
import { tmpDir } from '../helpers/tmp.ts';

async function readAll(url: string): Promise<Sample[]> {
  const samples: Sample[] = [];
  for await (const sample of openStore(url).readSamples({ fromMs: Date.now() - 3_600_000, toMs: Date.now() }))
    samples.push(sample);
  return samples;
}

describe('lbvm collect', () => {
  it('fails loudly, naming what the driver lacks (token, agent addresses, Redis); nothing is written', async () => {
    const cwd = tmpDir();
    const qemu = await runCli('lbvm', ['collect', '--driver', 'qemu', '--store', 'files:./samples'], {
      cwd,
      env: cleanEnv(),
    });
    assert.equal(qemu.code, 2, qemu.stderr);
    assert.match(qemu.stderr, /LBVM_AGENT_TOKEN: not set/);
    assert.match(qemu.stderr, /hosts\.<name>\.agent/);
    const sim = await runCli('lbvm', ['collect', '--driver', 'sim', '--store', 'files:./samples'], {
      cwd,
      env: cleanEnv({ LBVM_REDIS_URL: 'redis://127.0.0.1:1' }),
    });
    assert.notEqual(sim.code, 0, sim.stderr);
    assert.match(sim.stderr, /redis:\/\/127\.0\.0\.1:1/);
    for (const result of [qemu, sim]) assert.doesNotMatch(result.stderr, /\bat .*\.(ts|js):\d+/);
    assert.ok(!fs.existsSync(path.join(cwd, 'samples')));
  });

  it('--host-only samples this host into a files store; --json prints the round; the state file keeps counters', async () => {
    const cwd = tmpDir();
    const result = await runCli(
      'lbvm',
      ['collect', '--host-only', '--node', 'n1', '--store', 'files:./samples', '--json'],
      { cwd, env: cleanEnv() },
    );
    assert.equal(result.code, 0, result.stderr);
    const round = JSON.parse(result.stdout) as { host: HostSample; delivery: { written: number } };
    assert.equal(round.host.host, 'n1');
    assert.equal(round.delivery.written, 1);
    const stored = await readAll(`files:${path.join(cwd, 'samples')}`);
    assert.deepEqual(stored, [round.host]);
    const state = JSON.parse(fs.readFileSync(path.join(cwd, '.lbvm/collect-state.json'), 'utf8')) as {
      nodes: Record<string, { proc: { stat: unknown } }>;
    };
    assert.ok(state.nodes.n1?.proc.stat, 'the /proc counters are kept for the next run');
    const again = await runCli('lbvm', ['collect', '--host-only', '--node', 'n1', '--store', 'files:./samples'], {
      cwd,
      env: cleanEnv(),
    });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^n1: CPU \d+\.\d\d\/\d+ cores, memory .*; wrote 1 samples\n$/);
    assert.equal((await readAll(`files:${path.join(cwd, 'samples')}`)).length, 2);
    // Day folders past store.retention are removed by the collectors themselves.
    fs.mkdirSync(path.join(cwd, 'samples', '2001-01-01'));
    fs.writeFileSync(path.join(cwd, 'samples', '2001-01-01', 'n1.jsonl'), '');
    const third = await runCli('lbvm', ['collect', '--host-only', '--node', 'n1', '--store', 'files:./samples'], {
      cwd,
      env: cleanEnv(),
    });
    assert.equal(third.code, 0, third.stderr);
    assert.ok(!fs.existsSync(path.join(cwd, 'samples', '2001-01-01')));
  });

  it('refuses --host-only for a logical host, whose use is the sum of its guests', async () => {
    const cwd = tmpDir();
    fs.writeFileSync(path.join(cwd, 'lbvm.yaml'), 'node: n7\nhosts:\n  n7: { cpuCores: 4, memBytes: 8GiB }\n');
    const result = await runCli('lbvm', ['collect', '--host-only'], { cwd, env: cleanEnv() });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /n7 is a logical host/);
  });

  it('--every loops, one line per round, until stopped', async () => {
    const cwd = tmpDir();
    const child = spawn(
      process.execPath,
      [
        path.join(ROOT, 'bin/lbvm.js'),
        'collect',
        '--host-only',
        '--node',
        'loop',
        '--every',
        '1s',
        '--store',
        'files:./samples',
      ],
      {
        cwd,
        env: cleanEnv({ LBVM_LOG_LEVEL: 'warn' }),
      },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await waitFor(
      'two rounds of the loop',
      () => stdout.split('\n').filter((line) => / loop: CPU /.test(line)).length >= 2,
      { timeoutMs: 30_000 },
    );
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok((await readAll(`files:${path.join(cwd, 'samples')}`)).length >= 2);
  });
});

describe('logical hosts (collect.hostUse)', () => {
  const configWith = (yaml: string) => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'lbvm.yaml'), yaml);
    return loadConfig({ cwd: dir, env: {} }).config;
  };
  it('auto: a configured node that is not this machine is logical (capacity from config); this machine reads /proc', () => {
    assert.deepEqual(logicalCapacity(configWith('node: n2\nhosts:\n  n2: { cpuCores: 4, memBytes: 8GiB }\n')), {
      cpuCores: 4,
      memBytes: 8 * 2 ** 30,
    });
    assert.equal(
      logicalCapacity(
        configWith(
          `node: ${JSON.stringify(os.hostname())}\nhosts:\n  ${JSON.stringify(os.hostname())}: { cpuCores: 4 }\n`,
        ),
      ),
      undefined,
    );
    assert.equal(logicalCapacity(configWith('node: n3\n')), undefined);
  });
  it('guests without a configured capacity is refused with the key to add; proc is never logical', () => {
    assert.throws(
      () => logicalCapacity(configWith('node: n4\ncollect:\n  hostUse: guests\n')),
      /hosts\.n4 gives no capacity/,
    );
    assert.equal(
      logicalCapacity(configWith('node: n2\ncollect:\n  hostUse: proc\nhosts:\n  n2: { cpuCores: 4 }\n')),
      undefined,
    );
  });
});

describe('collect round', () => {
  it('ignores a saved /proc reading whose counters are ahead of now (a reboot since) and measures afresh', async () => {
    const dir = tmpDir();
    const stateFile = path.join(dir, 'state.json');
    const store = openStore(`files:${path.join(dir, 'samples')}`);
    const spool = new Spool({ dir: path.join(dir, 'spool'), maxBytes: 1e6 });
    await collectRound({ node: 'r1', store, spool, driver: null, stateFile, baselineWaitMs: 50 });
    // Pretend the machine had run far longer before: every counter in the saved state is huge.
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as {
      nodes: { r1: { proc: { stat: { total: Record<string, number> } } } };
    };
    for (const key of Object.keys(state.nodes.r1.proc.stat.total)) state.nodes.r1.proc.stat.total[key]! += 1e12;
    fs.writeFileSync(stateFile, JSON.stringify(state));
    // A thread keeps one core busy during the baseline, so the true use is clearly above zero.
    const burner = new Worker('const end = Date.now() + 1500; while (Date.now() < end) Math.sqrt(Math.random());', {
      eval: true,
    });
    const result = await collectRound({ node: 'r1', store, spool, driver: null, stateFile, baselineWaitMs: 300 });
    await burner.terminate();
    assert.ok(
      result.host.cpuUsedCores > 0,
      `cpuUsedCores ${result.host.cpuUsedCores}: a fresh baseline, not a made-up 0`,
    );
  });
});
