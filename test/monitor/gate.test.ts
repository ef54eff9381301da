/**
 * The monitor's gate (src/monitor/gate.ts): the pure step between a round's plan and the queue, which
 * the daemon and `lbm plan` both run. Every move it does not let through is held back with a reason.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gate, reconcile, type GateInputs } from '../../src/monitor/gate.ts';
import type { Move } from '../../src/model/index.ts';

const move = (vmName: string, to = 'n2'): Move => ({
  vm: vmName,
  from: 'n1',
  to,
  policy: 'balance',
  reason: 'r',
  gain: 1,
  cost: { bytes: 1, durationMs: 1, score: 0 },
});

const up = (name: string) => ({ name, status: 'up' as const });

function inputs(overrides: Partial<GateInputs> = {}): GateInputs {
  return {
    moves: [move('a'), move('b')],
    hosts: [up('n1'), up('n2'), up('n3')],
    inFlight: [],
    pause: { paused: false },
    mode: 'enforce',
    limits: { movesPerRound: 10, movesPerHour: 60 },
    movesInLastHour: 0,
    monitor: { maxUnknownHostShare: 0.3, staleAfterIntervals: 3, windowMs: 2 * 3_600_000 },
    storeUrl: 'files:/srv/lbvm',
    ...overrides,
  };
}

const held = (result: ReturnType<typeof gate>) => result.heldBack.map((h) => [h.move.vm, h.reason]);

describe('the monitor gate', () => {
  it('enforcing, lets the plan through', () => {
    const result = gate(inputs());
    assert.equal(result.mode, 'enforce');
    assert.deepEqual(
      result.enqueue.map((m) => m.vm),
      ['a', 'b'],
    );
    assert.deepEqual(result.heldBack, []);
  });

  it('paused or in report mode, holds every move back and says so', () => {
    const paused = gate(inputs({ pause: { paused: true, by: 'ops', reason: 'firmware' } }));
    assert.equal(paused.mode, 'paused');
    assert.deepEqual(held(paused), [
      ['a', 'PAUSED'],
      ['b', 'PAUSED'],
    ]);
    assert.equal(paused.heldBack[0]!.detail, 'paused by ops: firmware');
    assert.deepEqual(paused.notes, ['paused by ops (lbm resume to continue): planned 2 moves, moved nothing']);
    const report = gate(inputs({ mode: 'report' }));
    assert.equal(report.mode, 'report');
    assert.deepEqual(held(report), [
      ['a', 'REPORT_MODE'],
      ['b', 'REPORT_MODE'],
    ]);
  });

  it('halts above the share of unknown hosts, and with no host at all, naming the store', () => {
    const halted = gate(inputs({ hosts: [up('n1'), { name: 'n2', status: 'stale' }] }));
    assert.equal(halted.mode, 'halted');
    assert.deepEqual(held(halted), [
      ['a', 'TOO_MANY_UNKNOWN_HOSTS'],
      ['b', 'TOO_MANY_UNKNOWN_HOSTS'],
    ]);
    assert.match(
      halted.notes[0]!,
      /1 of 2 hosts are unknown \(50% > 30% allowed by monitor.maxUnknownHostShare\).*: n2$/,
    );
    const empty = gate(inputs({ moves: [], hosts: [] }));
    assert.equal(empty.mode, 'halted');
    assert.match(empty.notes[0]!, /no host has sent a sample in the last 120 min: .* writes to files:\/srv\/lbvm/);
  });

  it('holds back VMs in flight and duplicates, and respects the round and hour budgets, naming why', () => {
    const result = reconcile(
      [move('a'), move('b'), move('b', 'n3'), move('c'), move('d')],
      [{ vm: 'a', from: 'n1', to: 'n4', jobId: 'j1', state: 'active' }],
      { movesPerRound: 2, movesPerHour: 5 },
      0,
    );
    assert.deepEqual(
      result.enqueue.map((m) => m.vm),
      ['b', 'c'],
    );
    assert.deepEqual(
      result.heldBack.map((h) => [h.move.vm, h.reason]),
      [
        ['a', 'IN_FLIGHT'],
        ['b', 'DUPLICATE'],
        ['d', 'ROUND_MOVE_LIMIT'],
      ],
    );
    assert.match(result.heldBack[0]!.detail, /already migrating n1 → n4 \(job j1, active\)/);
    const hour = gate(inputs({ limits: { movesPerRound: 10, movesPerHour: 60 }, movesInLastHour: 59 }));
    assert.deepEqual(
      hour.enqueue.map((m) => m.vm),
      ['a'],
    );
    assert.deepEqual(
      hour.heldBack.map((h) => [h.move.vm, h.reason, h.detail]),
      [['b', 'HOUR_MOVE_LIMIT', '60 moves in the last hour (limits.movesPerHour 60)']],
    );
  });
});
