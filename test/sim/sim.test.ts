import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_SETTINGS, withSettings } from '../../policies/index.ts';
import {
  crsRebalance,
  drsGreedy,
  lowNodeUtilization,
  ovirtEvenlyDistributed,
  proxlbGreedy,
  xoPerformance,
} from '../../src/sim/peers.ts';
import { simulate } from '../../src/sim/simulate.ts';
import { readTrace, withLocalDisks } from '../../src/sim/traces.ts';

const GiB = 1024 ** 3;
import { UsageError } from '../../src/errors.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { host, NOW, snapshot, vm } from '../helpers/snapshot.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { sharedTrace } from '../helpers/traces.ts';

// Looked up in each test that replays it, so that without shared/ the other tests still run.
const planetlabDay = () => sharedTrace('planetlab/20110306');
const SUMMARY_FIELDS = [
  'trace',
  'vms',
  'hosts',
  'steps',
  'policy',
  'migrations',
  'meanImbalance',
  'p95Imbalance',
  'overloadedHostSteps',
  'unservedFraction',
  'meanActiveHosts',
  'planMsMedian',
  'planMsP99',
  'movedGiB',
  'refusedByReason',
  'notes',
];
const HOURLY = { stepMs: 300_000 };
const simSettings = withSettings({ demand: { sampleIntervalMs: 300_000, maxWindowSamples: 6 } });

/** A small PlanetLab-format folder: `count` VMs (one name with a space), `steps` lines each. */
function smallPlanetLab(count = 12, steps = 24): string {
  const dir = tmpDir('lbvm-pl-');
  for (let i = 0; i < count; i++) {
    const name = i === 0 ? 'node_a_ slice' : `node_${String.fromCharCode(98 + i)}_slice`;
    const lines = Array.from({ length: steps }, (_, t) => String((i * 13 + t * 7 * ((i % 3) + 1)) % 100));
    fs.writeFileSync(path.join(dir, name), `${lines.join('\n')}\n`);
  }
  return dir;
}

const HEADER =
  'Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\tDisk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]';
const row = (...values: number[]) => values.join(';\t');

describe('trace readers', () => {
  it('planetlab: one file per VM (names with spaces), value/100 cores, 1 vCPU', () => {
    const trace = readTrace(smallPlanetLab(3, 5), 'planetlab');
    assert.equal(trace.steps, 5);
    assert.deepEqual(
      trace.vms.map((v) => v.name),
      ['node_a_ slice', 'node_c_slice', 'node_d_slice'],
    );
    assert.deepEqual(Array.from(trace.vms[0]!.cpuCores), [0, 0.07, 0.14, 0.21, 0.28]);
    assert.equal(trace.vms[0]!.vcpus, 1);
  });

  it('bitbrains: seconds timestamps, MHz to cores, duplicates averaged, gaps held, off VMs left out', () => {
    const dir = tmpDir('lbvm-bb-');
    const t0 = 1375308176;
    fs.writeFileSync(
      path.join(dir, '1.csv'),
      [
        HEADER,
        row(t0, 2, 5000, 1250, 25, 4096, 1024, 0, 0, 0, 0),
        row(t0 + 300, 2, 5000, 2500, 50, 4096, 2048, 0, 0, 0, 0),
        row(t0 + 300, 2, 5000, 3500, 70, 4096, 2048, 0, 0, 0, 0),
        row(t0 + 901, 2, 5000, 5000, 100, 8192, 4096, 0, 0, 0, 0),
        '',
      ].join('\n'),
    );
    fs.writeFileSync(
      path.join(dir, '2.csv'),
      [HEADER, row(t0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), row(t0 + 300, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), ''].join('\n'),
    );
    fs.writeFileSync(
      path.join(dir, '3.csv'),
      [HEADER, row(t0, 4, 8000, 2000, 25, 1024, 512, 0, 0, 0, 0), row(t0 + 300, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), ''].join(
        '\n',
      ),
    );
    const trace = readTrace(dir, 'bitbrains');
    assert.equal(trace.startMs, t0 * 1000);
    assert.equal(trace.steps, 4);
    assert.deepEqual(
      trace.vms.map((v) => v.name),
      ['1', '3'],
    );
    // 1250 MHz of 2 × 2500 MHz cores = 0.5 core; step 1 averages 1 and 1.4 cores; step 2 is a gap (held); step 3 = 2 cores.
    assert.deepEqual(
      Array.from(trace.vms[0]!.cpuCores).map((x) => Number(x.toFixed(6))),
      [0.5, 1.2, 1.2, 2],
    );
    assert.equal(trace.vms[0]!.memBytes, 8192 * 1024);
    // VM 3 is off at step 1: no demand, not a held value.
    assert.deepEqual(Array.from(trace.vms[1]!.cpuCores).slice(0, 2), [1, 0]);
    assert.match(trace.notes.join('\n'), /left out 1 VM.*: 2/);
  });

  it('refuses a missing folder and an unknown format with a UsageError naming the flag', () => {
    assert.throws(
      () => readTrace('/nonexistent/trace', 'planetlab'),
      (e: unknown) => e instanceof UsageError && /^--trace: folder "\/nonexistent\/trace" not found/.test(e.message),
    );
    assert.throws(
      () => readTrace(tmpDir(), 'csv'),
      (e: unknown) =>
        e instanceof UsageError &&
        /^--format: unknown trace format "csv"; expected one of: planetlab, bitbrains/.test(e.message),
    );
  });
});

describe('peers', () => {
  it('XO-style plan moves at most 2 VMs a step, only off hosts at >= 76.5%, and honours its 30-minute cooldown', () => {
    const hosts = [host('h0', { cpuCores: 4 }), host('h1', { cpuCores: 4 }), host('h2', { cpuCores: 4 })];
    const vms = [vm('a', 'h0', 1.2), vm('b', 'h0', 1), vm('c', 'h0', 0.9), vm('d', 'h0', 0.2), vm('e', 'h1', 0.5)];
    const plan = xoPerformance(snapshot(hosts, vms));
    // h0 at 82.5%: its highest-CPU VM goes to the least loaded host; h0 is then at 52.5% ≤ 58.5%.
    assert.deepEqual(
      plan.moves.map((m) => [m.vm, m.to]),
      [['a', 'h2']],
    );
    // Six VMs of 0.65 cores (97.5%) would need three moves to reach 58.5%: capped at two a step.
    const many = xoPerformance(
      snapshot(
        hosts,
        Array.from({ length: 6 }, (_, i) => vm(`v${i}`, 'h0', 0.65)),
      ),
    );
    assert.equal(many.moves.length, 2);
    const cooling = xoPerformance(
      snapshot(
        hosts,
        vms.map((v) => (v.name === 'a' ? { ...v, lastMoveMs: NOW - 10 * 60_000 } : v)),
      ),
    );
    assert.ok(!cooling.moves.some((m) => m.vm === 'a'));
    const calm = xoPerformance(snapshot(hosts, [vm('a', 'h0', 3), vm('b', 'h1', 0.1)]));
    assert.deepEqual(calm.moves, []);
  });

  it('ProxLB-style greedy acts only above a 10-point spread, smallest VM first from the most loaded host', () => {
    const hosts = [host('h0', { cpuCores: 10 }), host('h1', { cpuCores: 10 })];
    assert.deepEqual(proxlbGreedy(snapshot(hosts, [vm('a', 'h0', 1.5), vm('b', 'h1', 0.6)]), HOURLY).moves, []);
    const plan = proxlbGreedy(
      snapshot(hosts, [vm('big', 'h0', 3), vm('small', 'h0', 0.5), vm('mid', 'h0', 1)]),
      HOURLY,
    );
    // 45% vs 0%: small (40/5), mid (30/15: still above 10 points), big (0/45: h0 no longer the most loaded, stop).
    assert.deepEqual(
      plan.moves.map((m) => m.vm),
      ['small', 'mid', 'big'],
    );
  });

  it('ProxLB-style greedy reads a guest as the mean of its last hour, not its latest sample', () => {
    const hosts = [host('h0', { cpuCores: 10 }), host('h1', { cpuCores: 10 })];
    // a spiked to 3 cores on its latest 5-minute sample after an hour at 0.5: the hour's mean is 0.71.
    const spiky = vm('a', 'h0', 0.5, { cpuUsedWindowCores: [...Array(11).fill(0.5), 3] });
    assert.deepEqual(proxlbGreedy(snapshot(hosts, [spiky, vm('b', 'h1', 0.3)]), HOURLY).moves, []);
  });

  it('DRS-style greedy takes the move off the 3 most loaded hosts that lowers the std-dev most, at most 8, each >= 0.002', () => {
    const hosts = Array.from({ length: 4 }, (_, i) => host(`h${i}`, { cpuCores: 10 }));
    const vms = [vm('a', 'h0', 4), vm('b', 'h0', 2), vm('c', 'h0', 1), vm('d', 'h1', 1)];
    const plan = drsGreedy(snapshot(hosts, vms));
    // h0 70%, h1 10%, h2 and h3 empty: a (4 cores) to an empty host leaves 30/10/40/0 (σ 15.8%), better than b (σ 18.7%).
    assert.deepEqual([plan.moves[0]!.vm, plan.moves[0]!.from, plan.moves[0]!.to], ['a', 'h0', 'h2']);
    assert.ok(plan.moves.length >= 2 && plan.moves.length <= 8);
    const flat = drsGreedy(
      snapshot(
        hosts,
        hosts.map((h, i) => vm(`v${i}`, h.name, 2)),
      ),
    );
    assert.deepEqual(flat.moves, []);
    const many = drsGreedy(
      snapshot(
        Array.from({ length: 20 }, (_, i) => host(`h${i}`, { cpuCores: 4 })),
        Array.from({ length: 40 }, (_, i) => vm(`v${String(i).padStart(2, '0')}`, 'h0', 0.1)),
      ),
    );
    assert.equal(many.moves.length, 8);
  });

  it('oVirt-style: one move a run, the most loaded source at >= 75%, its smallest VM that keeps a host under 55% at <= 75%', () => {
    const hosts = [host('h0', { cpuCores: 10 }), host('h1', { cpuCores: 10 }), host('h2', { cpuCores: 10 })];
    const vms = [vm('big', 'h0', 6), vm('tiny', 'h0', 0.5), vm('mid', 'h0', 1.5), vm('x', 'h1', 6), vm('y', 'h2', 1)];
    const plan = ovirtEvenlyDistributed(snapshot(hosts, vms));
    assert.deepEqual(
      plan.moves.map((m) => [m.vm, m.from, m.to]),
      [['tiny', 'h0', 'h2']],
    );
    assert.deepEqual(ovirtEvenlyDistributed(snapshot(hosts, [vm('a', 'h0', 7), vm('b', 'h1', 1)])).moves, []);
  });

  it('LowNodeUtilization acts only while some host is under 20%, largest VMs first, filling it to at most 50%', () => {
    const hosts = [host('h0', { cpuCores: 10 }), host('h1', { cpuCores: 10 }), host('h2', { cpuCores: 10 })];
    const plan = lowNodeUtilization(
      snapshot(hosts, [vm('a', 'h0', 3), vm('b', 'h0', 2), vm('c', 'h0', 2.5), vm('d', 'h1', 4), vm('e', 'h2', 1)]),
    );
    // h0 at 75%: a (3 cores) to h2 (10% → 40%); then h0 at 45% is no longer over 50%.
    assert.deepEqual(
      plan.moves.map((m) => [m.vm, m.to]),
      [['a', 'h2']],
    );
    assert.deepEqual(
      lowNodeUtilization(snapshot(hosts, [vm('a', 'h0', 9), vm('b', 'h1', 3), vm('c', 'h2', 2.5)])).moves,
      [],
    );
  });

  it('CRS-style acts after 3 samples above 0.3 with the single best move, only if it improves the imbalance by 10%', () => {
    const hosts = [host('h0', { cpuCores: 10 }), host('h1', { cpuCores: 10 }), host('h2', { cpuCores: 10 })];
    // Everything on h0: CV = √2, imbalance √2/√2 = 1 > 0.3 on every sample.
    const plan = crsRebalance(snapshot(hosts, [vm('a', 'h0', 3), vm('b', 'h0', 2), vm('c', 'h0', 1)]));
    assert.equal(plan.moves.length, 1);
    // Above 0.3 only on the latest sample: no move.
    const recent = [vm('a', 'h0', 3, { cpuUsedWindowCores: [1, 1, 1, 1, 1, 3] }), vm('b', 'h1', 1), vm('c', 'h2', 1)];
    assert.deepEqual(crsRebalance(snapshot(hosts, recent)).moves, []);
  });
});

describe('simulate', () => {
  it('gives the same result for a shared trace on every run, and moves apply before the next step', () => {
    const trace = readTrace(planetlabDay(), 'planetlab');
    const run = () => {
      const steps: string[] = [];
      const result = simulate(trace, {
        hosts: 50,
        hostCores: 4,
        hostMemBytes: 64 * 1024 ** 3,
        policy: 'overload,balance',
        settings: simSettings,
        onStep: (t, moves) => steps.push(JSON.stringify({ t, moves })),
      });
      const { planMsMedian, planMsP99, ...rest } = result.summary;
      assert.ok(planMsMedian >= 0 && planMsP99 >= planMsMedian);
      return { rest, steps };
    };
    const first = run();
    const second = run();
    assert.deepEqual(second, first);
    assert.equal(first.rest.vms, 898);
    assert.equal(first.rest.steps, 288);
    assert.ok(first.rest.migrations > 0);
  });

  it('a balancer beats no balancing on the same trace (fewer overloaded host-steps, flatter)', () => {
    const trace = readTrace(planetlabDay(), 'planetlab');
    const options = { hosts: 50, hostCores: 4, hostMemBytes: 64 * 1024 ** 3, settings: simSettings };
    const none = simulate(trace, { ...options, policy: 'none' }).summary;
    const lbvm = simulate(trace, { ...options, policy: 'overload,balance' }).summary;
    assert.equal(none.migrations, 0);
    assert.ok(
      lbvm.overloadedHostSteps < none.overloadedHostSteps,
      `${lbvm.overloadedHostSteps} vs ${none.overloadedHostSteps}`,
    );
    assert.ok(lbvm.meanImbalance < none.meanImbalance);
  });

  it('a consolidating round runs the day on fewer hosts without more overloaded host-steps', () => {
    const trace = readTrace(planetlabDay(), 'planetlab');
    const options = { hosts: 60, hostCores: 4, hostMemBytes: 64 * 1024 ** 3, settings: simSettings };
    const none = simulate(trace, { ...options, policy: 'none' }).summary;
    const packed = simulate(trace, { ...options, policy: 'evacuate,overload,consolidate' }).summary;
    assert.equal(none.meanActiveHosts, 60);
    assert.ok(packed.meanActiveHosts < 50, `mean active hosts ${packed.meanActiveHosts}`);
    assert.ok(
      packed.overloadedHostSteps <= none.overloadedHostSteps,
      `${packed.overloadedHostSteps} vs ${none.overloadedHostSteps}`,
    );
  });

  it('refuses --initial naming a VM not in the trace or a host out of range', () => {
    const trace = readTrace(smallPlanetLab(4, 3), 'planetlab');
    const options = {
      hosts: 2,
      hostCores: 4,
      hostMemBytes: 1024 ** 3 * 8,
      policy: 'balance',
      settings: DEFAULT_SETTINGS,
    };
    assert.throws(
      () => simulate(trace, { ...options, initial: { ghost: 'h0' } }),
      /^UsageError: --initial: VM "ghost" is not in the trace/,
    );
    assert.throws(
      () => simulate(trace, { ...options, initial: { node_c_slice: 'h2' } }),
      /--initial: VM "node_c_slice" placed on "h2"; expected a host h0 … h1/,
    );
    const placed = simulate(trace, {
      ...options,
      policy: 'none',
      initial: { node_c_slice: 'h1', 'node_a_ slice': 'h1', node_d_slice: 'h1', node_e_slice: 'h1' },
    });
    assert.equal(placed.summary.meanActiveHosts, 1);
  });
});

describe('lbvm simulate (the real CLI)', () => {
  it('--json prints exactly the summary fields; --moves-out writes one JSON line per step', async () => {
    const dir = tmpDir();
    const movesFile = path.join(dir, 'moves.jsonl');
    const result = await runCli(
      'lbvm',
      [
        'simulate',
        '--trace',
        planetlabDay(),
        '--format',
        'planetlab',
        '--hosts',
        '60',
        '--host-cores',
        '4',
        '--policy',
        'balance',
        '--threshold',
        '4',
        '--moves-out',
        movesFile,
        '--json',
      ],
      { cwd: dir, env: cleanEnv() },
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(summary), SUMMARY_FIELDS);
    assert.equal(summary.trace, '20110306');
    assert.equal(summary.vms, 898);
    assert.equal(summary.hosts, 60);
    assert.equal(summary.steps, 288);
    const lines = fs
      .readFileSync(movesFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { t: number; moves: { vm: string; from: string; to: string }[] });
    assert.equal(lines.length, 288);
    assert.deepEqual(
      lines.map((l) => l.t),
      Array.from({ length: 288 }, (_, t) => t),
    );
    assert.equal(
      lines.reduce((n, l) => n + l.moves.length, 0),
      summary.migrations,
    );
    for (const l of lines) for (const m of l.moves) assert.deepEqual(Object.keys(m), ['vm', 'from', 'to']);
  });

  it('names a start no move can fix (VMs given more memory than the hosts have) with the flag that fixes it', async () => {
    const dir = tmpDir('lbvm-bb-mem-');
    const t0 = 1375308176;
    // Three VMs of 48 GiB each on two hosts: 64 GiB hosts cannot hold two of them.
    for (const name of ['1', '2', '3']) {
      const rows = Array.from({ length: 6 }, (_, i) =>
        row(t0 + i * 300, 4, 10_000, name === '1' ? 9000 : 1000, 0, 48 * 1024 ** 2, 1024 ** 2, 0, 0, 0, 0),
      );
      fs.writeFileSync(path.join(dir, `${name}.csv`), [HEADER, ...rows, ''].join('\n'));
    }
    const result = await runCli(
      'lbvm',
      [
        'simulate',
        '--trace',
        dir,
        '--format',
        'bitbrains',
        '--hosts',
        '2',
        '--host-cores',
        '8',
        '--policy',
        'evacuate,overload,balance',
        '--json',
      ],
      { cwd: tmpDir(), env: cleanEnv() },
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as {
      notes: string[];
      refusedByReason: Record<string, number>;
      movedGiB: number;
      migrations: number;
    };
    assert.match(
      summary.notes.join('\n'),
      /memory overcommitted at the start: 1 of 2 hosts hold more VM memory than their 64 GiB \(h0: 96 GiB\); the trace's VMs provision 144 GiB in all, more than the 128 GiB of all hosts together, so every move is refused \(DEST_MEM_FULL\)\. Give hosts their real memory: --host-mem-gib 120 or more/,
    );
    assert.equal(summary.migrations, 0);
    assert.equal(summary.movedGiB, 0);
    assert.ok((summary.refusedByReason.NO_DESTINATION ?? 0) > 0, JSON.stringify(summary.refusedByReason));
    const text = await runCli(
      'lbvm',
      [
        'simulate',
        '--trace',
        dir,
        '--format',
        'bitbrains',
        '--hosts',
        '2',
        '--host-cores',
        '8',
        '--host-mem-gib',
        '256',
        '--policy',
        'evacuate,overload,balance',
      ],
      { cwd: tmpDir(), env: cleanEnv() },
    );
    assert.equal(text.code, 0, text.stderr);
    assert.doesNotMatch(text.stdout, /overcommitted/);
    assert.match(text.stdout, /migrations\s+\d+ \([\d,.]+ GiB of memory moved\)/);
    assert.match(text.stdout, /passed over\s+/);
  });

  it('prints a readable summary with an imbalance chart', async () => {
    const result = await runCli(
      'lbvm',
      [
        'simulate',
        '--trace',
        smallPlanetLab(),
        '--format',
        'planetlab',
        '--hosts',
        '3',
        '--host-cores',
        '2',
        '--policy',
        'xo',
      ],
      { cwd: tmpDir(), env: cleanEnv() },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /12 VMs on 3 hosts, 24 steps \(2\.0 h\), policy xo/);
    assert.match(result.stdout, /overloaded host-steps\s+\d+/);
    assert.match(result.stdout, /imbalance over time:\n[ \d.]+│[█ ]+\n/);
  });

  it('bad input exits 2 with one line naming the flag, the value and what was expected', async () => {
    const dir = tmpDir();
    const trace = smallPlanetLab(3, 4);
    fs.writeFileSync(path.join(dir, 'bad.json'), '{"vm": ');
    fs.writeFileSync(path.join(dir, 'ghost.json'), '{"ghost": "h0"}');
    fs.writeFileSync(path.join(dir, 'far.json'), '{"node_c_slice": "h9"}');
    const base = ['simulate', '--format', 'planetlab', '--hosts', '2', '--host-cores', '4'];
    const cases: [string[], RegExp][] = [
      [
        [
          'simulate',
          '--trace',
          path.join(dir, 'missing'),
          '--format',
          'planetlab',
          '--hosts',
          '2',
          '--host-cores',
          '4',
        ],
        /^lbvm: --trace: folder ".*missing" not found; expected a folder of planetlab trace files$/,
      ],
      [
        ['simulate', '--trace', trace, '--format', 'swf', '--hosts', '2', '--host-cores', '4'],
        /^lbvm: --format: unknown trace format "swf"; expected one of: planetlab, bitbrains, azure$/,
      ],
      [
        [...base, '--trace', trace, '--initial', path.join(dir, 'bad.json')],
        /^lbvm: --initial: .*bad\.json: not valid JSON \(.*\); expected a JSON object/,
      ],
      [
        [...base, '--trace', trace, '--initial', path.join(dir, 'ghost.json')],
        /^lbvm: --initial: VM "ghost" is not in the trace/,
      ],
      [
        [...base, '--trace', trace, '--initial', path.join(dir, 'far.json')],
        /^lbvm: --initial: VM "node_c_slice" placed on "h9"; expected a host h0 … h1$/,
      ],
      [
        [...base, '--trace', trace, '--threshold', '9'],
        /^lbvm: --threshold: "9": expected a whole number >= 1 and <= 5$/,
      ],
      [[...base, '--trace', trace, '--policy', 'magic'], /^lbvm: --policy: unknown policy "magic"; expected one of: /],
    ];
    for (const [args, pattern] of cases) {
      const result = await runCli('lbvm', args, { cwd: dir, env: cleanEnv() });
      assert.equal(result.code, 2, `${args.join(' ')}\n${result.stderr}`);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr.trim(), pattern);
    }
  });
});

describe('simulate: local disks', () => {
  it('takes per-VM local disk sizes from a side file: moved bytes count them, and unknown VMs or sizes are refused', () => {
    const trace = readTrace(smallPlanetLab(), 'planetlab');
    const options = {
      hosts: 3,
      hostCores: 2,
      hostMemBytes: 64 * GiB,
      policy: 'overload,balance',
      settings: simSettings,
    };
    const sizes = Object.fromEntries(trace.vms.map((v) => [v.name, '20GiB']));
    const plain = simulate(trace, options).summary;
    const withDisks = simulate(withLocalDisks(trace, sizes, 'disks.json'), options).summary;
    assert.ok(plain.migrations > 0);
    // 1 GiB of memory per VM; with a 20 GiB disk each move copies 21 GiB, and costs more: fewer moves.
    assert.ok(withDisks.migrations <= plain.migrations);
    assert.equal(withDisks.movedGiB, withDisks.migrations * 21);
    assert.equal(plain.movedGiB, plain.migrations);
    assert.throws(
      () => withLocalDisks(trace, { nobody: '1GiB' }, 'disks.json'),
      /disks\.json: VM "nobody" is not in the trace/,
    );
    assert.throws(
      () => withLocalDisks(trace, { [trace.vms[0]!.name]: 'big' }, 'disks.json'),
      /disks\.json: VM "node_a_ slice": "big" is not a size/,
    );
  });
});
