import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HostSample, LbvmEvent, VmSample } from '../../src/model/index.ts';
import { NO_RULES } from '../../src/model/index.ts';
import { rulesFromConfig } from '../../src/config/policy-settings.ts';
import { loadConfig } from '../../src/config/load.ts';
import { SnapshotBuilder, rulesFromTags, type SnapshotInputs } from '../../src/monitor/index.ts';

const MIN = 60_000;
const GiB = 1024 ** 3;
const host = (name: string, timeMs: number, used = 1): HostSample => ({
  kind: 'host',
  host: name,
  timeMs,
  cpuCores: 4,
  cpuUsedCores: used,
  memBytes: 16 * GiB,
  memUsedBytes: 4 * GiB,
});
const vm = (name: string, on: string, timeMs: number, cores = 0.5, tags: string[] = []): VmSample => ({
  kind: 'vm',
  vm: name,
  host: on,
  timeMs,
  vcpus: 1,
  cpuUsedCores: cores,
  memBytes: 2 * GiB,
  memUsedBytes: GiB,
  tags,
});
const inputs = (nowMs: number, extra: Partial<SnapshotInputs> = {}): SnapshotInputs => ({
  nowMs,
  intervalMs: MIN,
  staleAfterIntervals: 3,
  configuredHosts: {},
  maintenance: new Set(),
  rules: NO_RULES,
  inFlight: [],
  quarantineAfterFailures: 2,
  quarantineMs: 60 * MIN,
  ...extra,
});

describe('snapshot builder', () => {
  it('marks a host silent for more than 3 intervals stale, and a configured host that never reported', () => {
    const builder = new SnapshotBuilder();
    for (let t = 0; t <= 10; t++) builder.addSample(host('n1', t * MIN));
    for (let t = 0; t <= 5; t++) builder.addSample(host('n2', t * MIN));
    const snapshot = builder.build(inputs(10 * MIN, { configuredHosts: { n3: { cpuCores: 8, memBytes: 8 * GiB } } }));
    const status = Object.fromEntries(snapshot.hosts.map((h) => [h.name, h.status]));
    assert.deepEqual(status, { n1: 'up', n2: 'stale', n3: 'stale' });
    assert.equal(snapshot.hosts.find((h) => h.name === 'n3')!.lastSampleMs, null);
    assert.equal(snapshot.hosts.find((h) => h.name === 'n3')!.cpuCores, 8);
    assert.equal(snapshot.hosts.find((h) => h.name === 'n1')!.cpuUsedWindowCores.length, 11);
  });

  it('places a VM by its newest sample, overridden by a newer finished migration', () => {
    const builder = new SnapshotBuilder();
    for (let t = 0; t <= 4; t++) {
      builder.addSample(host('n1', t * MIN));
      builder.addSample(host('n2', t * MIN));
      builder.addSample(vm('a', 'n1', t * MIN, 0.1 * t));
    }
    const moved: LbvmEvent = { type: 'migration.finished', timeMs: 4 * MIN + 5000, vm: 'a', from: 'n1', to: 'n2' };
    builder.addEvent(moved);
    const snapshot = builder.build(inputs(4 * MIN + 10_000));
    const a = snapshot.vms.find((v) => v.name === 'a')!;
    assert.equal(a.host, 'n2');
    assert.equal(a.previousHost, 'n1');
    assert.equal(a.lastMoveMs, moved.timeMs);
    assert.deepEqual(
      a.cpuUsedWindowCores.map((c) => Number(c.toFixed(1))),
      [0, 0.1, 0.2, 0.3, 0.4],
    );
  });

  it("drops a VM missing from its live host's newest round, keeps one on a silent host", () => {
    const builder = new SnapshotBuilder();
    for (let t = 0; t <= 5; t++) builder.addSample(host('n1', t * MIN));
    builder.addSample(vm('gone', 'n1', 2 * MIN));
    builder.addSample(vm('here', 'n1', 5 * MIN));
    builder.addSample(host('n2', 1 * MIN));
    builder.addSample(vm('on-silent', 'n2', 1 * MIN));
    const names = builder.build(inputs(5 * MIN)).vms.map((v) => v.name);
    assert.deepEqual(names, ['here', 'on-silent']);
  });

  it('quarantines a VM after two failed migrations in a row, for the configured time', () => {
    const builder = new SnapshotBuilder();
    builder.addSample(host('n1', 0));
    builder.addSample(vm('a', 'n1', 0));
    builder.addEvent({ type: 'migration.failed', timeMs: 1000, vm: 'a', from: 'n1', to: 'n2', error: 'x' });
    builder.addEvent({ type: 'migration.failed', timeMs: 2000, vm: 'a', from: 'n1', to: 'n2', error: 'x' });
    assert.equal(builder.build(inputs(3000)).vms[0]!.quarantinedUntilMs, 2000 + 60 * MIN);
    assert.equal(
      builder.build(inputs(2000 + 61 * MIN)).vms[0]!.quarantinedUntilMs,
      undefined,
      'the quarantine ends after its time',
    );
    builder.addEvent({ type: 'migration.finished', timeMs: 2500, vm: 'a', from: 'n1', to: 'n2' });
    assert.equal(
      builder.build(inputs(3000)).vms[0]!.quarantinedUntilMs,
      undefined,
      'a success ends the run of failures',
    );
  });

  it('reads rules from tags and expands ignore globs from config', () => {
    const builder = new SnapshotBuilder();
    builder.addSample(host('n1', 0));
    builder.addSample(vm('dns-1', 'n1', 0, 0.1, ['lbvm.anti-affinity=dns']));
    builder.addSample(vm('dns-2', 'n1', 0, 0.1, ['lbvm.anti-affinity=dns', 'lbvm.pin=n1,n2']));
    builder.addSample(vm('db-1', 'n1', 0, 0.1, ['lbvm.prefer=n3']));
    const { config } = loadConfig({ env: {}, overrides: { 'rules.ignore': ['db-*'] }, cwd: '/nonexistent' });
    const snapshot = builder.build(inputs(0, { rules: (names) => rulesFromConfig(config, names) }));
    assert.deepEqual(snapshot.rules.groups, [
      { name: 'tag:anti-affinity=dns', kind: 'anti-affinity', hard: true, vms: ['dns-1', 'dns-2'] },
    ]);
    assert.deepEqual(
      snapshot.rules.pins.map((p) => [p.vm, p.hosts, p.hard]),
      [
        ['db-1', ['n3'], false],
        ['dns-2', ['n1', 'n2'], true],
      ],
    );
    assert.deepEqual(snapshot.rules.ignoredVms, ['db-1']);
    assert.deepEqual(rulesFromTags([{ name: 'x', tags: ['lbvm.ignore'] }]).ignoredVms, ['x']);
  });

  it('the same inputs give the same snapshot (and seed)', () => {
    const build = () => {
      const builder = new SnapshotBuilder();
      for (let t = 0; t <= 3; t++) for (const name of ['n2', 'n1']) builder.addSample(host(name, t * MIN));
      builder.addSample(vm('b', 'n2', 3 * MIN));
      builder.addSample(vm('a', 'n1', 3 * MIN));
      return builder.build(inputs(3 * MIN));
    };
    assert.deepEqual(build(), build());
  });
});
