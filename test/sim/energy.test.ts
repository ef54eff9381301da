import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_SETTINGS } from '../../policies/index.ts';
import { POWER_CURVES, powerWatts } from '../../policies/power.ts';
import { cloudsimPeer } from '../../src/sim/cloudsim-peers.ts';
import { cloudsimPlanetLab, departureSteps, type EnergyHost } from '../../src/sim/cloudsim.ts';
import { runCloudsimDay } from '../../src/sim/cloudsim-run.ts';
import { EnergyMeter } from '../../src/sim/energy.ts';
import { readTrace, type Trace } from '../../src/sim/traces.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { host, snapshot, vm } from '../helpers/snapshot.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { sharedTrace } from '../helpers/traces.ts';

/** A trace of VMs given as cores per step. */
function trace(series: number[][]): Trace {
  return {
    name: 'hand',
    format: 'planetlab',
    stepMs: 300_000,
    startMs: 0,
    steps: series[0]!.length,
    vms: series.map((s, i) => ({
      name: `vm${i}`,
      vcpus: 2.5,
      memBytes: 870 * 1024 ** 2,
      cpuCores: Float64Array.from(s),
      memUsedBytes: null,
    })),
    notes: [],
  };
}

describe('CloudSim PlanetLab setup', () => {
  it('power: SPECpower points read between the tenths (ML110 G5 at 45% draws 113 W, G4 idle 86 W, above 100% reads 100%)', () => {
    assert.equal(powerWatts(POWER_CURVES['hp-ml110-g5'], 0.45), 113);
    assert.equal(powerWatts(POWER_CURVES['hp-ml110-g4'], 0), 86);
    assert.equal(powerWatts(POWER_CURVES['hp-ml110-g4'], 1.3), 117);
  });

  it('a VM finishes at its first two zero samples in a row (not at one zero, never at step 0)', () => {
    const t = trace([
      [0, 0, 5, 0, 1, 0, 0, 2],
      [0, 1, 0, 1, 0, 1, 0, 1],
      [1, 1, 1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 0],
    ]);
    assert.deepEqual(Array.from(departureSteps(t.vms)), [5, -1, 6, 7]);
  });

  it('meters energy, SLATAH and PDM as CloudSim does: trapezoids while on, starved time, 10% lost while migrating', () => {
    // Host 0 a G4 (3.72 cores, PEs of 1.86), host 1 a G5; vm0 wants 2 cores (one PE: 1.86 on the G4), vm1 1 core.
    const [g4Host, g5Host] = cloudsimPlanetLab({ ...trace([[1]]), listed: ['vm0'] }, { order: 'directory' }).hosts;
    const hosts = [g4Host!, g5Host!];
    const t = trace([
      [2, 2, 2, 2],
      [1, 1, 1, 1],
    ]);
    const d = 1740 / 62.5;
    const vms = [
      { pes: 1, migrationSeconds: 870 / 62.5 },
      { pes: 1, migrationSeconds: d },
    ];
    const meter = new EnergyMeter(t, hosts, vms, 300);
    const placement = Int32Array.from([0, 0]);
    const running = Uint8Array.from([1, 1]);
    meter.score(0, placement, running);
    meter.score(1, placement, running);
    // vm1 (1,740 MB: 27.84 s at 62.5 MB/s) moves to the G5 during step 1 → 2.
    meter.moved(1, 0, 1);
    placement[1] = 1;
    meter.score(2, placement, running);
    meter.score(3, placement, running);
    const e = meter.summary();
    const g4 = POWER_CURVES['hp-ml110-g4'];
    const g5 = POWER_CURVES['hp-ml110-g5'];
    const joules =
      ((powerWatts(g4, 2.86 / 3.72) + powerWatts(g4, 1.86 / 3.72)) / 2) * 300 + // step 1→2 on the G4
      ((powerWatts(g5, 0) + powerWatts(g5, 1 / 5.32)) / 2) * 300 + // the G5 switched on for the migration
      powerWatts(g4, 1.86 / 3.72) * 300 + // step 2→3 on the G4
      powerWatts(g5, 1 / 5.32) * 300;
    assert.ok(Math.abs(e.energyKWh - joules / 3.6e6) < 1e-9, `${e.energyKWh} kWh`);
    // The G4 starves vm0 (2 cores wanted, one PE of 1.86) all along; the G5 only while vm1 arrives.
    assert.ok(Math.abs(e.slatah - (600 + d) / 1200) < 1e-9, `SLATAH ${e.slatah}`);
    // Lost while migrating: 10% of vm1's core for d seconds, over the demand of steps 1 and 2.
    assert.ok(Math.abs(e.pdm - (0.1 * 1 * d) / (3 * 300 * 2)) < 1e-9, `PDM ${e.pdm}`);
    assert.equal(e.migrations, 1);
    assert.equal(e.hostsSwitchedOn, 1);
  });

  it('a host a VM passes through in one step (placed there, then moved on) is on only while the VM migrates', () => {
    const hosts = cloudsimPlanetLab({ ...trace([[1]]), listed: ['vm0'] }, { order: 'directory' }).hosts.slice(0, 3);
    const d = 870 / 62.5;
    const meter = new EnergyMeter(trace([[1, 1, 1]]), hosts, [{ pes: 1, migrationSeconds: d }], 300);
    const placement = Int32Array.from([0]);
    const running = Uint8Array.from([1]);
    meter.score(0, placement, running);
    meter.score(1, placement, running);
    meter.moved(0, 0, 1); // h0 (G4) → h1 (G5), then on to h2 (G4) in the same plan
    meter.moved(0, 1, 2);
    placement[0] = 2;
    meter.score(2, placement, running);
    const g4 = POWER_CURVES['hp-ml110-g4'];
    const joules =
      powerWatts(g4, 1 / 3.72) * d + // h0 until the VM has left
      powerWatts(POWER_CURVES['hp-ml110-g5'], 0) * d + // h1 while the VM passes through
      ((powerWatts(g4, 0) + powerWatts(g4, 1 / 3.72)) / 2) * 300; // h2 switched on for the step
    const e = meter.summary();
    assert.ok(Math.abs(e.energyKWh - joules / 3.6e6) < 1e-9, `${e.energyKWh} kWh`);
    assert.equal(e.migrations, 2);
  });

  it("THR-MMT's rewrite spreads an overloaded host's VMs as CloudSim's best fit does: a host that took one looks dearer for the next", () => {
    // Three G5 hosts (5.32 cores); h0's VMs request 7 cores (132% > 80%): the two 613 MB VMs (least RAM) leave.
    const g5: EnergyHost = {
      name: '',
      type: 'G5',
      cpuCores: 5.32,
      peCores: 2.66,
      memBytes: 64 * 1024 ** 3,
      power: POWER_CURVES['hp-ml110-g5'],
    };
    const specs = ['h0', 'h1', 'h2'].map((name) => ({ ...g5, name }));
    const MB = 1024 ** 2;
    const plan = cloudsimPeer(
      'thr-mmt',
      specs,
      300_000,
    )(
      snapshot(
        specs.map((h) => host(h.name, { cpuCores: h.cpuCores })),
        [
          vm('a', 'h0', 2, { memBytes: 613 * MB }),
          vm('b', 'h0', 2, { memBytes: 613 * MB }),
          vm('c', 'h0', 2, { memBytes: 1740 * MB }),
          vm('d', 'h0', 1, { memBytes: 1740 * MB }),
        ],
      ),
    );
    // Both empty hosts rise alike for the first VM (the first wins); for the second, h1's rise counts a's 2 cores.
    assert.deepEqual(
      plan.moves.map((m) => `${m.vm} ${m.from}→${m.to}`),
      ['a h0→h1', 'b h0→h2'],
    );
  });

  let day0303: Trace | undefined;
  const day = () => (day0303 ??= readTrace(sharedTrace('planetlab/20110303'), 'planetlab'));

  it('with no migrations, 20110303 costs within 2% of the 764.96 kWh CloudSim measures (DVFS run)', () => {
    // `hash` deals the VM types the same on every copy of the traces; CloudSim's own run used its folder's order.
    const result = runCloudsimDay(day(), { policy: 'none', settings: DEFAULT_SETTINGS, order: 'hash' });
    const kWh = result.energy.energyKWh;
    assert.ok(Math.abs(kWh - 764.96) / 764.96 < 0.02, `${kWh.toFixed(2)} kWh`);
    assert.equal(result.energy.migrations, 0);
    assert.equal(result.energy.hostsOnFirst, 414);
    assert.equal(result.energy.vmsRunningAtEnd, 520);
  });

  it("with LR-MMT's rewrite consolidating, 20110303 costs within 5% of CloudSim's 167.83 kWh and 27,649 migrations", () => {
    // The meter and the rewrite together against CloudSim's own LR-MMT 1.2 run (the folder's order there, `hash` here).
    const result = runCloudsimDay(day(), { policy: 'lr-mmt', settings: DEFAULT_SETTINGS, order: 'hash' });
    const { energyKWh, migrations } = result.energy;
    assert.ok(Math.abs(energyKWh - 167.83) / 167.83 < 0.05, `${energyKWh.toFixed(2)} kWh`);
    assert.ok(Math.abs(migrations - 27649) / 27649 < 0.05, `${migrations} migrations`);
  });

  it('lbvm simulate --setup refuses flags it does not use, an unknown setup and an unknown VM order, naming them (exit 2)', async () => {
    const dir = tmpDir('lbvm-setup-');
    fs.writeFileSync(path.join(dir, 'node_a_slice'), '10\n20\n');
    const env = cleanEnv();
    const cases: [string[], RegExp][] = [
      [
        ['--setup', 'cloudsim-planetlab', '--trace', dir, '--hosts', '3'],
        /--hosts: not used with --setup cloudsim-planetlab/,
      ],
      [
        ['--setup', 'cloudsim', '--trace', dir],
        /--setup: unknown setup "cloudsim"; expected one of: cloudsim-planetlab/,
      ],
      [
        ['--setup', 'cloudsim-planetlab', '--trace', dir, '--vm-order', 'random'],
        /--vm-order: "random": expected one of: directory, name, hash/,
      ],
      [
        ['--setup', 'cloudsim-planetlab', '--trace', dir, '--policy', 'pack'],
        /unknown policy "pack".*also lr-mmt, thr-mmt/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await runCli('lbvm', ['simulate', ...args], { env, cwd: dir });
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
    }
  });
});
