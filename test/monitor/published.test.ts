/**
 * The snapshot the leader publishes for `lbm` (src/monitor/published.ts), against a real Redis and a
 * real files store: it is the round's snapshot exactly (a store read at the round's time gives the
 * same); readers take it with pause, maintenance and in-flight moves as they are now and say its
 * age; they read the store when there is none, when it is older than staleAfterIntervals intervals,
 * or when it came from another store; `lbm hosts` says which, and `--from-store` reads the store.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import { CliContext } from '../../src/cli/context.ts';
import { planOf, viewAndPlan } from '../../src/cli/plan-of.ts';
import { policySettingsFromConfig } from '../../src/config/policy-settings.ts';
import { setMaintenance } from '../../src/monitor/control.ts';
import { planInputs, planRound, vmDemand } from '../../policies/index.ts';
import {
  decodeSnapshot,
  encodeSnapshot,
  PUBLISHED_VERSION,
  publishedKey,
  readPublished,
  vmTotalsOf,
} from '../../src/monitor/published.ts';
import { readCluster, type ClusterView } from '../../src/monitor/read.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { simCluster, simVm, type SimCluster } from './sim-cluster.ts';

describe('the snapshot the leader publishes for lbm (real Redis, files store)', () => {
  let server: RedisServer;
  let c: SimCluster;
  before(async () => {
    server = await startRedis();
    c = await simCluster(server.url, {
      hosts: 3,
      vms: Array.from({ length: 6 }, (_, i) => simVm(`vm-${i}`, 0.3 + i * 0.05)),
      worker: false,
      config: { 'monitor.mode': 'report', 'monitor.interval': '1m', 'monitor.window': '10m' },
    });
    await c.collect();
    await c.collect();
  });
  after(async () => {
    await c?.close();
    await server?.stop();
  });

  /** Without the keys whose value is undefined (JSON drops them; nobody reads the difference). */
  const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
  const view = (nowMs: number, published: boolean): Promise<ClusterView> =>
    readCluster({ config: c.config, store: c.store, redis: c.redis, queue: c.queue }, nowMs, undefined, { published });

  it("is the round's snapshot exactly, and readers take it with what changed since", async () => {
    const record = await c.monitor().round();
    assert.ok(record.publishedBytes! > 0, 'the round published nothing');
    const published = await readPublished(c.redis, c.config.redis.prefix);
    assert.ok(published, 'no published snapshot in Redis');
    assert.equal(published.roundId, record.roundId);
    assert.equal(published.store, c.store.displayUrl);
    const fromStore = await view(record.timeMs, false);
    assert.equal(fromStore.source.kind, 'store');
    // Rules and moves in flight are not published: readers take them as they are now.
    const { rules: _rules, inFlight: _inFlight, ...round } = plain(fromStore.snapshot);
    const { rules: _none, inFlight: _noMoves, ...publishedRound } = published.snapshot;
    assert.deepEqual(publishedRound, round);
    assert.deepEqual(published.vmTotals, vmTotalsOf(fromStore.snapshot.vms));
    // The hosts part alone: no VMs, and what they add up to per host.
    const hostsOnly = await readPublished(c.redis, c.config.redis.prefix, 'hosts');
    assert.deepEqual(hostsOnly!.snapshot.hosts, published.snapshot.hosts);
    assert.deepEqual(hostsOnly!.snapshot.vms, []);
    assert.deepEqual(hostsOnly!.vmTotals, published.vmTotals);
    assert.equal(hostsOnly!.vmTotals.count, 6);
    // lbm plan and explain take the round's plan while nothing it was planned from changed.
    const settings = policySettingsFromConfig(c.config);
    const policies = c.config.monitor.policies;
    const now = await view(record.timeMs, true);
    assert.equal(now.publishedPlan!.inputs, planInputs(policies, settings, now.snapshot));
    assert.deepEqual(planOf(now, settings, policies), plain(planRound(now.snapshot, settings, policies)));
    assert.ok(planOf(now, settings, policies) === now.publishedPlan!.plan, 'lbm planned again');
    assert.ok(published.snapshot.vms.every((vm) => vm.cpuUsedWindowCores.length === 2));
    // Each VM's latest CPU use and forecast, under the monitor's demand settings: lbm vms reads no window.
    assert.deepEqual(published.forecast?.demand, settings.demand);
    assert.deepEqual(
      [...published.forecast!.latestCores],
      published.snapshot.vms.map((vm) => vm.cpuUsedWindowCores.at(-1)),
    );
    assert.deepEqual(
      [...published.forecast!.forecastCores],
      published.snapshot.vms.map((vm) => vmDemand(vm, settings.demand).cores),
    );
    // Asked to leave the windows out under the monitor's demand settings, a reader gets none; under
    // others, every one (it forecasts itself).
    const readUnder = (demand: typeof settings.demand) =>
      readCluster({ config: c.config, store: c.store, redis: c.redis, queue: c.queue }, record.timeMs, undefined, {
        published: true,
        windowsOf: { forecastUnder: demand },
      });
    const under = await readUnder(settings.demand);
    assert.equal(under.windowsLeftOut, true);
    assert.ok(under.snapshot.vms.every((vm) => vm.cpuUsedWindowCores.length === 0));
    assert.deepEqual(under.publishedForecast, published.forecast);
    const other = await readUnder({ ...settings.demand, horizonMs: 1 });
    assert.equal(other.windowsLeftOut, undefined);
    assert.deepEqual(other.snapshot.vms, now.snapshot.vms);
    // lbm plan and explain read it without the VMs' windows (explain keeps its VM's): all else is the
    // same, and so is the plan they show.
    const windowless = await readCluster(
      { config: c.config, store: c.store, redis: c.redis, queue: c.queue },
      record.timeMs,
      undefined,
      { published: true, windowsOf: (vm) => vm === 'vm-2' },
    );
    assert.equal(windowless.windowsLeftOut, true);
    assert.deepEqual(
      windowless.snapshot.vms.map((vm) => [vm.name, vm.cpuUsedWindowCores.length]),
      now.snapshot.vms.map((vm) => [vm.name, vm.name === 'vm-2' ? 2 : 0]),
    );
    const windowsAside = (v: ClusterView) => v.snapshot.vms.map(({ cpuUsedWindowCores: _w, ...vm }) => vm);
    assert.deepEqual(windowsAside(windowless), windowsAside(now));
    assert.ok(planOf(windowless, settings, policies) === windowless.publishedPlan!.plan);
    const context = new CliContext(c.config, null, 'test', 'command');
    try {
      const shown = await viewAndPlan(context, record.timeMs, { settings, policies });
      assert.equal(shown.view.windowsLeftOut, true);
      assert.ok(shown.plan === shown.view.publishedPlan!.plan, 'lbm planned again');
    } finally {
      await context.close();
    }

    await setMaintenance(c.redis, c.config.redis.prefix, 'h2', true, {
      by: 'test',
      sinceMs: Date.now(),
      evacuate: false,
    });
    const later = await view(record.timeMs + 30_000, true);
    assert.deepEqual(later.source, {
      kind: 'published',
      roundId: record.roundId,
      monitor: 'test-0',
      timeMs: record.timeMs,
      ageMs: 30_000,
    });
    assert.deepEqual(
      later.snapshot.hosts.map((host) => [host.name, host.maintenance]),
      [
        ['h1', false],
        ['h2', true],
        ['h3', false],
      ],
    );
    assert.deepEqual(later.snapshot.vms, published.snapshot.vms);
    // A host in maintenance since: the plan is made again.
    assert.notEqual(later.publishedPlan!.inputs, planInputs(policies, settings, later.snapshot));
    assert.ok(
      planOf(later, settings, policies) !== later.publishedPlan!.plan,
      'lbm took a plan made before maintenance',
    );
    // Read without windows, that plan cannot be made; lbm plan then reads the VMs whole and plans now.
    const laterWindowless = await readCluster(
      { config: c.config, store: c.store, redis: c.redis, queue: c.queue },
      record.timeMs + 30_000,
      undefined,
      { published: true, windowsOf: () => false },
    );
    assert.throws(() => planOf(laterWindowless, settings, policies), /cannot be planned on/);
    const context2 = new CliContext(c.config, null, 'test', 'command');
    try {
      const shown = await viewAndPlan(context2, record.timeMs + 30_000, { settings, policies });
      assert.equal(shown.view.windowsLeftOut, undefined);
      assert.ok(shown.view.snapshot.vms.every((vm) => vm.cpuUsedWindowCores.length === 2));
      assert.deepEqual(shown.plan, planOf(later, settings, policies));
    } finally {
      await context2.close();
    }
    // Time rules are judged now: a quarantine that ended since the round has ended for lbm too.
    assert.equal(later.snapshot.nowMs, record.timeMs + 30_000);
    assert.equal(later.snapshot.seed, published.snapshot.seed);
  });

  it("lbm vms shows each VM's CPU as the monitor forecast it, and forecasts itself when configured otherwise", async () => {
    const env = cleanEnv();
    const configFile = path.join(c.dir, 'vms.yaml');
    const rows = async (extra: Record<string, unknown>, ...args: string[]) => {
      fs.writeFileSync(
        configFile,
        YAML.stringify({
          redis: { url: server.url, prefix: c.config.redis.prefix },
          store: { url: c.config.store.url },
          monitor: { interval: '1m', window: '10m' },
          ...extra,
        }),
      );
      const result = await runCli('lbm', ['vms', '--json', '--config', configFile, ...args], { env });
      assert.equal(result.code, 0, result.stderr);
      const shown = JSON.parse(result.stdout) as { source: { kind: string }; vms: unknown[] };
      return { source: shown.source.kind, vms: shown.vms };
    };
    // Configured as the monitor: its forecast; configured with another horizon: its own from the windows.
    for (const extra of [{}, { policies: { demand: { horizon: '7m' } } }]) {
      const published = await rows(extra);
      const fromStore = await rows(extra, '--from-store');
      assert.deepEqual([published.source, fromStore.source], ['published', 'store']);
      assert.equal(published.vms.length, 6);
      assert.deepEqual(published.vms, fromStore.vms);
    }
  });

  it('is not used when stale, missing, or read from another store; lbm says which', async () => {
    const published = (await readPublished(c.redis, c.config.redis.prefix))!;
    const roundMs = published.snapshot.nowMs;
    const stale = await view(roundMs + 3 * 60_000 + 1000, true);
    assert.deepEqual(stale.source, { kind: 'store', reason: 'the published snapshot is 181 s old' });

    const configFile = path.join(c.dir, 'lbvm.yaml');
    const write = (storeUrl: string) =>
      fs.writeFileSync(
        configFile,
        YAML.stringify({
          redis: { url: server.url, prefix: c.config.redis.prefix },
          store: { url: storeUrl },
          monitor: { interval: '1m', window: '10m' },
        }),
      );
    write(c.config.store.url);
    const env = cleanEnv();
    const hosts = await runCli('lbm', ['hosts', '--config', configFile], { env });
    assert.equal(hosts.code, 0, hosts.stderr);
    assert.match(hosts.stdout, new RegExp(`^snapshot: round ${published.roundId} of monitor test-0, \\d+s ago\\n`));
    const fromStore = await runCli('lbm', ['hosts', '--json', '--from-store', '--config', configFile], { env });
    assert.equal(fromStore.code, 0, fromStore.stderr);
    assert.deepEqual(JSON.parse(fromStore.stdout).source, { kind: 'store', reason: 'the monitor reads the store' });

    write(`files:${path.join(c.dir, 'other-samples')}`);
    const other = await runCli('lbm', ['status', '--json', '--config', configFile], { env });
    assert.equal(other.code, 0, other.stderr);
    assert.deepEqual(JSON.parse(other.stdout).source, {
      kind: 'store',
      reason: `the published snapshot was read from ${c.store.displayUrl}`,
    });
    assert.equal(JSON.parse(other.stdout).hosts.length, 0);

    await c.redis.del(publishedKey(c.config.redis.prefix));
    const none = await view(roundMs, true);
    assert.deepEqual(none.source, {
      kind: 'store',
      reason: 'no monitor has published one (none leads, or none has finished a round)',
    });
  });

  it('decodes to the same snapshot, and names the key when it holds something else', async () => {
    const snapshot = (await view(Date.now(), false)).snapshot;
    snapshot.vms[0]!.cpuUsedWindowCores = [];
    snapshot.vms[1]!.cpuUsedWindowCores = [0.1 + 0.2, Number.MIN_VALUE, 1e-300];
    // What a VM has now and then: tags, a last move, a quarantine, a lock, an HA state, a local disk.
    const { localDiskBytes: _none, tags: _tags, ...vm } = snapshot.vms[2]!;
    const { diskBytesPerSec, netBytesPerSec, lastMoveMs: _m, previousHost: _p, quarantinedUntilMs: _q, ...head } = vm;
    // In the order the snapshot builder sets the keys.
    snapshot.vms[2] = {
      ...head,
      localDiskBytes: 2 ** 34,
      diskBytesPerSec,
      netBytesPerSec,
      tags: ['a', 'lbvm.ignore'],
      lastMoveMs: 123,
      previousHost: 'h9',
      quarantinedUntilMs: 456,
      busy: 'migrate',
      haState: 'started',
    };
    delete snapshot.vms[3]!.diskBytesPerSec;
    snapshot.hosts[0]!.lastSampleMs = null;
    snapshot.hosts[1]!.status = 'down';
    const meta = {
      version: PUBLISHED_VERSION,
      roundId: 'r1',
      monitor: 'm',
      store: 'files:x',
      windowMs: 600_000,
      samplesSkipped: 2,
    };
    const decoded = decodeSnapshot(await encodeSnapshot({ ...meta, snapshot }));
    const expected = plain({
      ...meta,
      snapshot: { ...snapshot, rules: { groups: [], pins: [], ignoredVms: [] }, inFlight: [] },
    });
    assert.deepEqual({ ...decoded, vmTotals: undefined }, { ...expected, vmTotals: undefined });
    // With the demand settings it forecast under: each VM's latest CPU use (NaN without a window) and forecast.
    const demand = { horizonMs: 600_000, sampleIntervalMs: 60_000, maxWindowSamples: 10 };
    const forecast = decodeSnapshot(await encodeSnapshot({ ...meta, snapshot, demand })).forecast!;
    assert.deepEqual(forecast.demand, demand);
    assert.deepEqual(
      [...forecast.latestCores],
      snapshot.vms.map((vm) => vm.cpuUsedWindowCores.at(-1) ?? NaN),
    );
    assert.deepEqual(
      [...forecast.forecastCores],
      snapshot.vms.map((vm) => vmDemand(vm, demand).cores),
    );
    // The VMs' keys in the builder's order: --json prints them alike.
    assert.deepEqual(
      decoded.snapshot.vms.map((vm) => Object.keys(vm)),
      expected.snapshot.vms.map((vm) => Object.keys(vm)),
    );

    // A key in another form (a monitor of another version): an error naming the key; readers read the store.
    await c.redis.set(publishedKey(c.config.redis.prefix), 'not deflated');
    await assert.rejects(readPublished(c.redis, c.config.redis.prefix), {
      message: new RegExp(`^Redis key ${c.config.redis.prefix}:monitor:snapshot: not a published snapshot \\(`),
    });
    const fallback = await view(Date.now(), true);
    assert.equal(fallback.source.kind, 'store');
    assert.match((fallback.source as { reason: string }).reason, /^the published snapshot cannot be read: Redis key /);
  });
});
