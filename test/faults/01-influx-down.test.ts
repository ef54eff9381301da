/**
 * Fault 1: InfluxDB down for 3 collect rounds, then back. What must hold: every sample of those rounds
 * arrives once, in order. Against a real influxd (with authentication, as in production), stopped and
 * started under the collector: through `deliver()` (30 VMs a round), through `lbvm collect` run by
 * cron (a process a round), and through one long-running `lbvm collect --every` (the `influx` client
 * neither retries nor buffers with a single host, and would otherwise disable it for a while).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sample } from '../../src/model/index.ts';
import { deliver, openStore, Spool } from '../../src/store/index.ts';
import { cleanEnv, ROOT, runCli } from '../helpers/cli.ts';
import { influxQuery, startInflux, type InfluxServer } from '../helpers/influx.ts';
import { spawnTracked, waitFor } from '../helpers/processes.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, readWindow, vmSample } from '../store/builders.ts';
import { captureLog } from '../store/log-capture.ts';

describe('fault 1: InfluxDB down for 3 collect rounds, then back', () => {
  const admin = { username: 'collector', password: 'Sup3r-Secret-pw' };
  let server: InfluxServer;
  before(async () => {
    server = await startInflux({ admin });
  });
  after(async () => {
    await server?.stop();
  });

  it('deliver(): InfluxDB stopped for 3 rounds, then back: every sample of those rounds arrives once, in order', async () => {
    const captured = captureLog();
    const store = openStore(server.storeUrl('outage-store', admin), { log: captured.log, requestTimeoutMs: 3000 });
    const spool = new Spool({ dir: path.join(tmpDir(), 'spool'), maxBytes: 16 * 1024 * 1024, log: captured.log });
    const t0 = Date.now() - 10 * 60_000;
    const roundAt = (index: number): Sample[] => [
      hostSample('n1', t0 + index * 10_000, { cpuUsedCores: index }),
      ...Array.from({ length: 30 }, (_unused, vm) =>
        vmSample(`vm-${vm}`, 'n1', t0 + index * 10_000, { cpuUsedCores: (vm % 2) / 2 }),
      ),
    ];
    const before = await deliver(store, spool, { samples: roundAt(0) });
    assert.equal(before.written, 31);
    await server.stop();
    try {
      for (const index of [1, 2, 3]) {
        const report = await deliver(store, spool, { samples: roundAt(index) });
        assert.equal(report.written, 0);
        assert.equal(report.spooled, 31);
        // Refused, or reset: the first write after the stop may go down a kept-alive connection.
        assert.match(report.storeError ?? '', /is unavailable while writing samples \((ECONNREFUSED|ECONNRESET)\)$/);
      }
      const spooled = await spool.pendingItems();
      assert.deepEqual(
        spooled.filter((item) => item.sample?.kind === 'host').map((item) => item.sample!.timeMs),
        [1, 2, 3].map((index) => t0 + index * 10_000),
        'spooled in the order taken',
      );
    } finally {
      await server.start();
    }
    const after = await deliver(store, spool, { samples: roundAt(4) });
    assert.equal(after.storeError, undefined);
    assert.equal(after.replayed, 93);
    assert.equal(after.written, 31);
    assert.equal(spool.pendingBytes(), 0);
    const series = await influxQuery(
      server,
      'outage-store',
      'SELECT count("cpuUsedCores") FROM "lbvm_raw"."vm_sample" GROUP BY "vm"',
      admin,
    );
    const counts = series.results[0]!.series!.map((entry) => entry.values[0]![1]);
    assert.equal(counts.length, 30);
    assert.ok(
      counts.every((count) => count === 5),
      `each VM has 5 samples, once each: ${counts.join(',')}`,
    );
    const hosts = await influxQuery(
      server,
      'outage-store',
      'SELECT "cpuUsedCores" FROM "lbvm_raw"."host_sample"',
      admin,
    );
    assert.deepEqual(
      hosts.results[0]!.series![0]!.values,
      [0, 1, 2, 3, 4].map((index) => [t0 + index * 10_000, index]),
    );
  });
  it('lbvm collect from cron, InfluxDB down for 3 rounds: each round spools with one warning; the next round replays them, in order, once', async () => {
    const cwd = tmpDir();
    const env = cleanEnv({ LBVM_STORE_URL: server.storeUrl('outage', admin), LBVM_LOG_FORMAT: 'json' });
    const first = await runCli('lbvm', ['collect', '--host-only', '--node', 'n1', '--json'], { cwd, env });
    assert.equal(first.code, 0, first.stderr);
    await server.stop();
    const times: number[] = [(JSON.parse(first.stdout) as { timeMs: number }).timeMs];
    try {
      for (let round = 0; round < 3; round++) {
        const result = await runCli('lbvm', ['collect', '--host-only', '--node', 'n1', '--json'], { cwd, env });
        assert.equal(result.code, 0, `nothing is lost, so the round succeeds: ${result.stderr}`);
        const parsed = JSON.parse(result.stdout) as { timeMs: number; delivery: { spooled: number } };
        assert.equal(parsed.delivery.spooled, 1);
        times.push(parsed.timeMs);
        const warnings = result.stderr.split('\n').filter((line) => line.includes('"level":40'));
        assert.equal(warnings.length, 1, result.stderr);
        assert.match(warnings[0]!, /did not take this round/);
        assert.ok(!result.stderr.includes(admin.password));
      }
    } finally {
      await server.start();
    }
    const last = await runCli('lbvm', ['collect', '--host-only', '--node', 'n1', '--json'], { cwd, env });
    assert.equal(last.code, 0, last.stderr);
    const parsed = JSON.parse(last.stdout) as { timeMs: number; delivery: { replayed: number; written: number } };
    assert.deepEqual([parsed.delivery.replayed, parsed.delivery.written], [3, 1]);
    times.push(parsed.timeMs);
    const stored = (await readWindow(server.storeUrl('outage', admin))).samples
      .map((sample) => sample.timeMs)
      .sort((a, b) => a - b);
    assert.deepEqual(stored, times, 'every round once');
  });

  it('one long-running lbvm collect --every 1s: the rounds taken while InfluxDB is down arrive once, in order, without a restart', async () => {
    const cwd = tmpDir();
    const collector = spawnTracked(
      process.execPath,
      [path.join(ROOT, 'bin/lbvm.js'), 'collect', '--host-only', '--node', 'loop', '--every', '1s', '--json'],
      {
        cwd,
        env: cleanEnv({
          LBVM_STORE_URL: server.storeUrl('outage-loop', admin),
          LBVM_LOG_FORMAT: 'json',
          LBVM_LOG_LEVEL: 'info',
        }),
      },
    );
    type Round = {
      timeMs: number;
      delivery: { written: number; spooled: number; replayed: number; storeError?: string };
    };
    const lines = () =>
      collector
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'));
    const rounds = () =>
      lines()
        .map((line) => JSON.parse(line) as Round & { level?: number })
        .filter((entry) => entry.delivery !== undefined);
    const warnings = () => lines().filter((line) => line.includes('"level":40'));
    try {
      await waitFor('a first round stored', () => rounds().some((round) => round.delivery.written === 1), {
        process: collector,
        timeoutMs: 20_000,
      });
      await server.stop();
      try {
        await waitFor('3 rounds spooled', () => rounds().filter((round) => round.delivery.spooled > 0).length >= 3, {
          process: collector,
          timeoutMs: 20_000,
        });
      } finally {
        await server.start();
      }
      await waitFor('a round that replays the spool', () => rounds().some((round) => round.delivery.replayed > 0), {
        process: collector,
        timeoutMs: 20_000,
      });
    } finally {
      collector.child.kill('SIGTERM');
      assert.equal((await collector.exited).code, 0, collector.output().slice(-2000));
    }
    const taken = rounds();
    const failed = taken.filter((round) => round.delivery.storeError);
    assert.ok(failed.length >= 3, JSON.stringify(taken));
    for (const round of failed)
      assert.match(
        round.delivery.storeError!,
        /InfluxDB at influx:\/\/collector:\*\*\*@127\.0\.0\.1:\d+\/outage-loop is unavailable/,
      );
    assert.equal(
      warnings().filter((line) => /did not take this round/.test(line)).length,
      1,
      'one warning for the outage, not one per round',
    );
    assert.equal(lines().filter((line) => /takes rounds again/.test(line)).length, 1, 'one line when it is over');
    assert.equal(
      taken.reduce((sum, round) => sum + round.delivery.replayed, 0),
      failed.reduce((sum, round) => sum + round.delivery.spooled, 0),
      'every spooled sample replayed',
    );
    assert.ok(!collector.output().includes(admin.password), 'a secret reached the output');
    const answer = await influxQuery(
      server,
      'outage-loop',
      'SELECT "cpuUsedCores" FROM "lbvm_raw"."host_sample"',
      admin,
    );
    const stored = answer.results[0]!.series![0]!.values.map((row) => row[0] as number);
    assert.deepEqual(
      stored,
      taken.map((round) => round.timeMs),
      'every round stored once, in the order taken',
    );
  });
});
