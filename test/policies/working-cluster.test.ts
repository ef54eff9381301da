/**
 * A round's policies share one working state while they move nothing (policies/cluster.ts
 * workingCluster): building it costs tens of milliseconds at 30,000 VMs. Sharing must never change a
 * plan, and a working state that was changed, or built for another snapshot, settings or demand, is
 * never handed on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { POLICIES, vmDemand, withSettings, type PolicyName } from '../../policies/index.ts';
import { Cluster, workingCluster } from '../../policies/cluster.ts';
import { DemandByVm } from '../../policies/demand.ts';
import { randomSnapshot } from '../helpers/snapshot.ts';

const SEEDS = 200;
const NAMES = Object.keys(POLICIES) as PolicyName[];

describe('a working state handed from one policy of a round to the next', () => {
  it('is taken only while it is exactly what would be built', () => {
    const s = randomSnapshot(7);
    const settings = withSettings({});
    const demand = new Map(s.vms.map((v) => [v.name, vmDemand(v, settings.demand)]));
    const built = new Cluster(s, settings, settings.weights, demand);
    assert.equal(workingCluster(s, settings, demand, built), built);
    assert.notEqual(workingCluster({ ...s }, settings, demand, built), built, 'another snapshot');
    assert.notEqual(workingCluster(s, withSettings({}), demand, built), built, 'other settings');
    assert.notEqual(workingCluster(s, settings, new Map(demand), built), built, 'another demand');
    assert.notEqual(workingCluster(s, settings, undefined, built), built, 'no demand');
    const weighted = new Cluster(s, settings, { ...settings.weights, cpu: 3 }, demand);
    assert.notEqual(workingCluster(s, settings, demand, weighted), weighted, 'other weights');
    const vm = built.vms.find((v) => v.host >= 0)!;
    const dest = built.hosts.find((h) => h.index !== vm.host)!;
    const source = built.hostOf(vm);
    built.apply(vm, dest);
    built.revert(vm, source);
    assert.notEqual(workingCluster(s, settings, demand, built), built, 'a move applied, even when reverted');
  });

  it('never changes a plan: each policy after one that moved nothing plans as on a state of its own', () => {
    let handedOn = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const s = randomSnapshot(seed);
      const settings = withSettings({ balance: { threshold: (2 + (seed % 4)) as 2 } });
      const demand = new Map(s.vms.map((v) => [v.name, vmDemand(v, settings.demand)]));
      const budget = 1 + (seed % 10);
      for (const first of NAMES) {
        const shared = new Cluster(s, settings, settings.weights, demand);
        if (POLICIES[first].run(s, settings, budget, demand, shared).moves.length > 0) continue;
        const reused = workingCluster(s, settings, demand, shared) === shared;
        if (reused) handedOn++;
        for (const next of NAMES) {
          const own = POLICIES[next].run(s, settings, budget, demand);
          const after = POLICIES[next].run(s, settings, budget, demand, workingCluster(s, settings, demand, shared));
          assert.deepEqual(after, own, `seed ${seed}: ${next} after ${first}${reused ? ' (state handed on)' : ''}`);
          if (reused && after.moves.length > 0) break;
        }
      }
    }
    // Worth something only if states were handed on, and plans made on them.
    assert.ok(handedOn > SEEDS, `only ${handedOn} states handed on over ${SEEDS} seeds`);
  });

  it("finds each VM's demand at its index, or by name when the list is in another order", () => {
    for (let seed = 1; seed <= 50; seed++) {
      const s = randomSnapshot(seed);
      const settings = withSettings({});
      const byName = new Map(s.vms.map((v) => [v.name, vmDemand(v, settings.demand)]));
      const inOrder = new DemandByVm(s.vms, settings.demand);
      assert.deepEqual([...inOrder], [...byName]);
      const loads = (c: Cluster) => c.vms.map((v) => [v.name, v.cpuDemandCores, v.cpuVarianceCoresSq]);
      const expected = loads(new Cluster(s, settings, settings.weights, byName));
      assert.deepEqual(loads(new Cluster(s, settings, settings.weights, inOrder)), expected);
      // The same VMs listed backwards: every index points at another VM's entry, and names decide.
      const reversed = { ...s, vms: [...s.vms].reverse() };
      assert.deepEqual(
        loads(new Cluster(reversed, settings, settings.weights, inOrder)),
        loads(new Cluster(reversed, settings, settings.weights, byName)),
      );
      if (s.vms.length > 1)
        assert.notDeepEqual(loads(new Cluster(reversed, settings, settings.weights, inOrder)), expected);
    }
  });
});
