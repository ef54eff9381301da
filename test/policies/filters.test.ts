/**
 * The filter registry (policies/constraints.ts): every refusal a plan or a manual move names is the
 * reason of the filter that refused, so `lbm plan`'s "passed over" counts and `lbm migrate`'s
 * messages say which line a destination crossed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkMove, consolidate, DEFAULT_SETTINGS, planRound, withSettings } from '../../policies/index.ts';
import { DEST_FILTERS, SOURCE_FILTERS, VM_FILTERS } from '../../policies/constraints.ts';
import { host, snapshot, vm } from '../helpers/snapshot.ts';

const loose = { migrationsPerSourceHost: 10, migrationsPerDestinationHost: 10, migrationsInCluster: 50 };

/** 8-core hosts: h0 holds 4 cores (50%), h1 3 (38%), h2 0.5 (6%). */
const packable = () =>
  snapshot([host('h0'), host('h1'), host('h2')], [vm('x', 'h0', 4), vm('y', 'h1', 3), vm('z', 'h2', 0.5)]);

/** The counts a consolidation skip gives for the receivers it passed over ("1 DEST_X, 2 DEST_Y"). */
function passedOver(detail: string): string[] {
  return [...detail.matchAll(/\d+ ([A-Z_]+)/g)].map((match) => match[1]!).sort();
}

describe('the filter registry', () => {
  it('names every filter once, each with its reason and how a manual move treats it', () => {
    for (const list of [VM_FILTERS, SOURCE_FILTERS, DEST_FILTERS] as const) {
      const names = list.map((filter) => filter.name);
      assert.equal(new Set(names).size, names.length, `duplicate filter names: ${names}`);
      for (const filter of list) {
        assert.match(filter.reason, /^[A-Z_]+$/);
        assert.ok(['hard', 'soft', 'destination'].includes(filter.manual), `${filter.name}: ${filter.manual}`);
      }
    }
  });

  it('consolidation names the low watermark and a host being emptied, not DEST_CPU_FULL or NO_DESTINATION', () => {
    const settings = withSettings({ limits: loose, consolidate: { headroom: 0.2, spareHosts: 0 } });
    const plan = consolidate(packable(), settings);
    assert.deepEqual(
      plan.moves.map((m) => `${m.vm} ${m.from}→${m.to}`),
      ['z h2→h0'],
    );
    const h1 = plan.skipped.find((skip) => skip.host === 'h1' && skip.reason === 'NO_DESTINATION');
    assert.ok(h1, JSON.stringify(plan.skipped));
    assert.match(h1.detail, /h1 cannot be emptied: y fits nowhere/);
    // h0 would be at 94%, under capacity but above the 60% low watermark (tighter than 80% for 20% headroom); h2 is being emptied.
    assert.deepEqual(passedOver(h1.detail), ['DEST_BEING_EMPTIED', 'DEST_OVER_LOW_WATERMARK']);
  });

  it('consolidation names the headroom when it is the tighter line', () => {
    const settings = withSettings({ limits: loose, consolidate: { headroom: 0.5, spareHosts: 0 } });
    const plan = consolidate(packable(), settings);
    const reasons = plan.skipped.flatMap((skip) => passedOver(skip.detail));
    assert.ok(reasons.includes('DEST_NO_HEADROOM'), JSON.stringify(plan.skipped));
    assert.ok(
      !reasons.includes('DEST_OVER_LOW_WATERMARK') && !reasons.includes('DEST_CPU_FULL'),
      JSON.stringify(plan.skipped),
    );
  });

  it('consolidation names a receiver too often above capacity (noisy VMs) as DEST_OVERLOAD_RISK', () => {
    // h1's VM alternates 0.4 and 4.4 cores: under the low watermark on its forecast, but not on its spread.
    const noisy = vm('noisy', 'h1', 2.4, {
      cpuUsedWindowCores: [0.4, 4.4, 0.4, 4.4, 0.4, 4.4, 0.4, 4.4, 0.4, 4.4],
      vcpus: 8,
    });
    const s = snapshot([host('h1'), host('h2')], [noisy, vm('z', 'h2', 2)]);
    const plan = consolidate(s, withSettings({ limits: loose, consolidate: { headroom: 0.2, spareHosts: 0 } }));
    const reasons = plan.skipped.flatMap((skip) => passedOver(skip.detail));
    assert.ok(reasons.includes('DEST_OVERLOAD_RISK'), JSON.stringify(plan.skipped));
  });

  it('in a consolidating round, overload names destinations above the low watermark', () => {
    // h0 hot (7.5 of 8 cores); h1 at 55%: the only other host, above low (60%) after either move.
    const s = snapshot([host('h0'), host('h1')], [vm('a', 'h0', 3.5), vm('b', 'h0', 4), vm('c', 'h1', 4.4)]);
    const round = planRound(s, withSettings({ limits: loose }), ['overload', 'consolidate']);
    const overload = round.plans.find((plan) => plan.policy === 'overload')!;
    assert.deepEqual(overload.moves, []);
    const skip = overload.skipped.find((entry) => entry.reason === 'NO_DESTINATION');
    assert.ok(skip, JSON.stringify(overload.skipped));
    // b (4 cores) would not fit h1's 8 cores at all; a (3.5) would, but above the low watermark.
    assert.deepEqual(passedOver(skip.detail), ['DEST_CPU_FULL', 'DEST_OVER_LOW_WATERMARK']);
  });
});

describe('checkMove: a manual move meets the same filters', () => {
  it('refuses a VM its hypervisor is busy with (VM_BUSY, hard), as the policies pass it over', () => {
    const s = snapshot([host('h0'), host('h1')], [vm('locked', 'h0', 1, { busy: 'lock: backup' })]);
    const check = checkMove(s, { vm: 'locked', to: 'h1' }, DEFAULT_SETTINGS);
    assert.deepEqual(
      check.hard.map((v) => v.rule),
      ['VM_BUSY'],
    );
    assert.match(check.hard[0]!.detail, /locked is busy on h0 \(lock: backup\)/);
    assert.equal(planRound(s, DEFAULT_SETTINGS, ['evacuate', 'overload', 'balance']).moves.length, 0);
  });

  it('names a pin once, by where the VM may go, and never a policy line (a host above high is a manual choice)', () => {
    const s = snapshot([host('h0'), host('h1'), host('h2')], [vm('pinned', 'h0', 1), vm('hot', 'h2', 6.9)], {
      rules: { groups: [], ignoredVms: [], pins: [{ name: 'stay', vm: 'pinned', hosts: ['h0'], hard: true }] },
    });
    const pinned = checkMove(s, { vm: 'pinned', to: 'h1' }, DEFAULT_SETTINGS);
    assert.deepEqual(pinned.hard, [{ rule: 'PINNED', detail: 'pinned must run on h0 (rule stay)' }]);
    // h2 ends at 99% of its CPU: above the high watermark, under capacity.
    const unpinned = snapshot(s.hosts, s.vms);
    assert.deepEqual(checkMove(unpinned, { vm: 'pinned', to: 'h2' }, DEFAULT_SETTINGS), { hard: [], soft: [] });
  });

  it('counts the cluster-wide migration limit as a soft rule, like the per-host ones', () => {
    const s = snapshot([host('h0'), host('h1'), host('h2')], [vm('a', 'h0'), vm('b', 'h1'), vm('c', 'h2')], {
      inFlight: [{ vm: 'b', from: 'h1', to: 'h2', jobId: 'j1', state: 'active' }],
    });
    const settings = withSettings({ limits: { ...loose, migrationsInCluster: 1 } });
    const check = checkMove(s, { vm: 'a', to: 'h1' }, settings);
    assert.deepEqual(check.hard, []);
    assert.deepEqual(check.soft, [{ rule: 'CLUSTER_LIMIT', detail: '1 migrations in the cluster (limit 1)' }]);
  });
});
