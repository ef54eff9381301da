/**
 * `lbm` against a real Redis, a real files store with samples collected from the sim driver, and
 * the real worker: every command's --json output and its text's key lines.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LbvmConfig } from '../../src/config/schema.ts';
import type { SimDriver } from '../../src/drivers/sim.ts';
import { Monitor } from '../../src/monitor/daemon.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { startMigrationWorker, type MigrationWorker } from '../../src/queue/worker.ts';
import type { SampleStore } from '../../src/store/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import type { RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { GiB, log, simVmOf, startLbmCluster, type LbmCluster } from './support.ts';

describe('lbm (real Redis, files store, worker; sim driver)', () => {
  let cluster: LbmCluster;
  let server: RedisServer;
  let config: LbvmConfig;
  let configFile: string;
  let store: SampleStore;
  let driver: SimDriver;
  let worker: MigrationWorker | null = null;
  const clients: ReturnType<typeof connectRedis>[] = [];
  const lbm = (...args: string[]) => cluster.lbm(...args);
  const json = <T>(...args: string[]): Promise<T> => cluster.json<T>(...args);
  const collect = () => cluster.collect();

  before(async () => {
    const vms = [
      // Each web VM has a 1 GiB local disk: its moves copy it (lbm plan counts it).
      ...Array.from({ length: 6 }, (_, i) => ({ ...simVmOf(`web-${i + 1}`, 2 * GiB, 0.5), localDiskBytes: GiB })),
      simVmOf('dns-1', GiB, 0.1),
      simVmOf('dns-2', GiB, 0.1),
    ];
    const placement: Record<string, string> = Object.fromEntries(vms.map((vm) => [vm.name, 'h1']));
    placement['dns-2'] = 'h2';
    cluster = await startLbmCluster(['h1', 'h2', 'h3', 'h4'], vms, placement, {
      monitor: { interval: '1m', window: '10m' },
      limits: { migrationsPerSourceHost: 4, migrationsPerDestinationHost: 4, migrationsInCluster: 8, cooldown: '1s' },
      migration: { slotWait: '200ms' },
      sim: { speedup: 100 },
      rules: { antiAffinity: [{ name: 'dns-pair', vms: ['dns-1', 'dns-2'], hard: true }] },
    });
    ({ server, config, configFile, store, driver } = cluster);
    await collect();
    await collect();
    const blocking = connectRedis(server.url, { blocking: true });
    clients.push(blocking);
    worker = startMigrationWorker({ config, driver, log, connection: blocking });
  });
  after(async () => {
    await worker?.close(true);
    for (const client of clients) client.disconnect();
    await cluster.close();
  });

  it('status: hosts with bars, VM counts, imbalance, no leader yet', async () => {
    const status = await json<{
      hosts: { host: string; vms: number; status: string }[];
      vms: number;
      imbalance: number;
      monitor: { leader: string | null };
    }>('status');
    assert.deepEqual(
      status.hosts.map((h) => [h.host, h.vms, h.status]),
      [
        ['h1', 7, 'up'],
        ['h2', 1, 'up'],
        ['h3', 0, 'up'],
        ['h4', 0, 'up'],
      ],
    );
    assert.equal(status.vms, 8);
    assert.ok(status.imbalance > 0.2, `imbalance ${status.imbalance}`);
    assert.equal(status.monitor.leader, null);
    const text = await lbm('status');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /LBVM cluster: 4 hosts, 8 VMs · imbalance 0\.\d{3}/);
    assert.match(text.stdout, /NO LEADER/);
    assert.match(text.stdout, /^h1 +█+░* +\d+% +[\d.]+\/4 cores/m);
  });

  it('hosts and vms: tables, --host filter, rules shown', async () => {
    const hosts = await json<{ hosts: { host: string }[] }>('hosts');
    assert.equal(hosts.hosts.length, 4);
    const vms = await json<{ vms: { vm: string; host: string; rules: string[]; cpuEstimateCores: number }[] }>(
      'vms',
      '--host',
      'h2',
    );
    assert.deepEqual(
      vms.vms.map((v) => [v.vm, v.rules]),
      [['dns-2', ['anti-affinity:dns-pair']]],
    );
    const text = await lbm('vms');
    assert.match(text.stdout, /^VM +HOST +VCPUS +MEMORY +CPU NOW +CPU EST\. +RULES +LAST MOVE$/m);
    assert.match(text.stdout, /^web-1 +h1 +1 +2 GiB +0\.\d\d +\d\.\d\d +- +-$/m);
    const unknown = await lbm('vms', '--host', 'h9');
    assert.equal(unknown.code, 5);
    assert.match(unknown.stderr, /unknown host "h9"; did you mean "h1", "h2", "h3"/);
  });

  it("logs: a host's and a VM's resource log as JSON, chart and table; unknown names get suggestions", async () => {
    const host = await json<{ kind: string; points: { value: number }[] }>('logs', 'h1', '--since', '10m');
    assert.equal(host.kind, 'host');
    assert.ok(host.points.length >= 2 && host.points.every((p) => p.value > 2), JSON.stringify(host.points));
    const vm = await lbm('logs', 'web-3', '--metric', 'mem', '--since', '10m');
    assert.equal(vm.code, 0, vm.stderr);
    assert.match(vm.stdout, /^vm web-3 \(on h1\): mem, last 10m, \d+ samples/);
    assert.match(vm.stdout, /┤/);
    const typo = await lbm('logs', 'web-33');
    assert.equal(typo.code, 5);
    assert.match(typo.stderr, /did you mean "web-3"/);
    const badMetric = await lbm('logs', 'h1', '--metric', 'gpu');
    assert.equal(badMetric.code, 2);
    assert.match(badMetric.stderr, /--metric "gpu": expected one of cpu, mem, disk, net/);
  });

  it("plan: moves with reasons, gains and costs, and what the monitor's gate would hold back; moves nothing", async () => {
    type PlanOutput = {
      moves: {
        vm: string;
        from: string;
        to: string;
        reason: string;
        gain: number;
        cost: { bytes: number; diskBytes?: number };
      }[];
      scoreBefore: number;
      scoreAfter: number;
      mode: string;
      wouldEnqueue: string[];
      heldBack: { vm: string; reason: string; detail: string }[];
    };
    const plan = await json<PlanOutput>('plan');
    assert.ok(plan.moves.length > 0);
    assert.ok(plan.moves.every((m) => m.from === 'h1' && m.reason.length > 10 && m.gain > 0));
    assert.ok(plan.scoreAfter < plan.scoreBefore);
    assert.ok(
      plan.moves.every((m) => !(m.vm === 'dns-1' && m.to === 'h2')),
      'the plan broke the anti-affinity rule',
    );
    assert.equal(plan.mode, 'enforce');
    assert.deepEqual(
      plan.wouldEnqueue,
      plan.moves.map((m) => m.vm),
    );
    assert.deepEqual(plan.heldBack, []);
    const jobs = await json<{ jobs: unknown[] }>('jobs');
    assert.deepEqual(jobs.jobs, [], 'lbm plan enqueued something');
    const webMoves = plan.moves.filter((m) => m.vm.startsWith('web-'));
    assert.ok(webMoves.length > 0);
    for (const move of webMoves) {
      assert.equal(move.cost.diskBytes, GiB, `${move.vm}: its local disk is counted`);
      assert.ok(move.cost.bytes > 3 * GiB, `${move.vm}: 2 GiB of memory and 1 GiB of disk: ${move.cost.bytes}`);
    }
    const text = await lbm('plan', '--policy', 'balance');
    assert.match(text.stdout, /^plan \(balance\): \d+ moves, imbalance score/);
    assert.match(text.stdout, / web-\d .*\([^)]*, 3(\.\d)? GiB incl\. disk 1 GiB\)/);
    assert.match(text.stdout, /^the monitor \(enforce\) would enqueue (\d+) of \1 now$/m);
    // Paused, the gate holds every move back, as the monitor's round would.
    assert.equal((await lbm('pause', '--reason', 'plan test')).code, 0);
    try {
      const paused = await json<PlanOutput>('plan');
      assert.equal(paused.mode, 'paused');
      assert.deepEqual(paused.wouldEnqueue, []);
      assert.deepEqual(
        paused.heldBack.map((h) => [h.vm, h.reason]),
        paused.moves.map((m) => [m.vm, 'PAUSED']),
      );
      const pausedText = await lbm('plan');
      assert.match(pausedText.stdout, /^the monitor \(paused\) would enqueue 0 of \d+ now; held back: \d+$/m);
      assert.match(pausedText.stdout, /^held back: \S+ PAUSED \(paused by .*: plan test\)$/m);
    } finally {
      assert.equal((await lbm('resume')).code, 0);
    }
    const bad = await lbm('plan', '--policy', 'random');
    assert.equal(bad.code, 2);
  });

  it('migrate --wait moves the VM and says how it went', async () => {
    const moved = await lbm('migrate', 'web-1', 'h3', '--wait');
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /^done: web-1 h1 → h3 in .*, downtime \d+ ms/m);
    assert.equal(await driver.locate('web-1'), 'h3');
    const jobs = await json<{ jobs: { data: { vm: string; requestedBy: string }; state: string }[] }>('jobs');
    assert.equal(jobs.jobs[0]!.state, 'completed');
    assert.match(jobs.jobs[0]!.data.requestedBy, /^operator:/);
  });

  it('explain: where a VM is and why, with its history and rules', async () => {
    const explained = await json<{ host: string; history: { type: string }[]; rules: { rule: string }[] }>(
      'explain',
      'web-1',
    );
    assert.equal(explained.host, 'h3');
    assert.ok(explained.history.some((e) => e.type === 'migration.finished'));
    const text = await lbm('explain', 'dns-1');
    assert.match(text.stdout, /^dns-1 runs on h1/);
    assert.match(text.stdout, /rule dns-pair: anti-affinity with dns-2/);
  });

  it('pause, resume and maintenance persist in Redis and show in status', async () => {
    assert.match((await lbm('pause', '--reason', 'testing')).stdout, /^paused by .*\(testing\)/);
    assert.match((await lbm('status')).stdout, /PAUSED by .* \(testing\)/);
    assert.match((await lbm('resume')).stdout, /^resumed/);
    const on = await json<{ maintenance: boolean; evacuate: boolean }>('maintenance', 'h4', 'on', '--evacuate');
    assert.deepEqual([on.maintenance, on.evacuate], [true, true]);
    assert.match((await lbm('status')).stdout, /^h4 .*maintenance \(evacuate\)$/m);
    assert.equal((await lbm('maintenance', 'h4', 'sideways')).code, 2);
    await lbm('maintenance', 'h4', 'off');
  });

  it('report: migrations and imbalance as text, JSON and a self-contained HTML page', async () => {
    const redis = connectRedis(server.url);
    clients.push(redis);
    const queue = new MigrationQueue(redis, config);
    await collect();
    await new Monitor({ config, log, store, redis, queue, id: 'test' }).round();
    await queue.close();
    const html = path.join(tmpDir(), 'report.html');
    const report = await json<{ totals: { migrations: number }; imbalance: unknown[]; htmlFile: string }>(
      'report',
      '--since',
      '1h',
      '--html',
      html,
    );
    assert.ok(report.totals.migrations >= 1);
    assert.ok(report.imbalance.length >= 1);
    assert.equal(report.htmlFile, html);
    assert.match(fs.readFileSync(html, 'utf8'), /<svg id="chart-cpu"/);
    const text = await lbm('report', '--since', '1h');
    assert.match(text.stdout, /^LBVM report, last 1h: 4 hosts · \d+ migrations/);
    assert.match(text.stdout, /web-1 +h1 → h3 +operator:/);
    assert.doesNotMatch(text.stdout, /energy/);
    // With power curves: the energy estimated per host, and the hosts consolidation would power down.
    const powered = await runCli('lbm', ['report', '--since', '1h', '--json', '--config', configFile], {
      env: cleanEnv({ LBVM_POWER_DEFAULT: 'hp-ml110-g5' }),
    });
    assert.equal(powered.code, 0, powered.stderr);
    const energy = JSON.parse(powered.stdout) as {
      energy: { kWh: number; byHost: { host: string; meanWatts: number }[] };
      powerDown: { hosts: { host: string; idleWatts: number }[] };
    };
    assert.deepEqual(
      energy.energy.byHost.map((h) => h.host),
      ['h1', 'h2', 'h3', 'h4'],
    );
    // Between the G5's idle and full draw (a host idle all along draws 93.7 W, give or take rounding).
    assert.ok(
      energy.energy.byHost.every((h) => h.meanWatts >= 93.7 - 1e-9 && h.meanWatts <= 135 + 1e-9),
      JSON.stringify(energy.energy),
    );
    assert.ok(energy.energy.kWh > 0);
    // Which hosts consolidation would empty now depends on where the worker has moved VMs by then.
    assert.ok(Array.isArray(energy.powerDown.hosts), JSON.stringify(energy));
    assert.ok(energy.powerDown.hosts.every((h) => h.idleWatts === 93.7));
    const poweredText = await runCli('lbm', ['report', '--since', '1h', '--config', configFile], {
      env: cleanEnv({ LBVM_POWER_DEFAULT: 'hp-ml110-g5' }),
    });
    assert.match(
      poweredText.stdout,
      /^energy \(estimated from CPU use and power\.\* curves\): [\d.]+ kWh over 4 host\(s\)$/m,
    );
    assert.match(
      poweredText.stdout,
      /^consolidate would power down (\d+ host\(s\) now: h\d.* \(their idle draw: \d+ W|no host now)/m,
    );
  });

  it('Redis unreachable: says which URL and what to check, exit 3, no stack', async () => {
    const result = await runCli('lbm', ['status', '--config', configFile], {
      env: cleanEnv({ LBVM_REDIS_URL: 'redis://127.0.0.1:1' }),
    });
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      /Redis at redis:\/\/127\.0\.0\.1:1 is unreachable .*Check that redis-server runs there/,
    );
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });
});
