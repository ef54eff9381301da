/**
 * The demo's last word: "balanced" only when the numbers say so (a settled cluster with a host at 79%
 * and one at 4% is not balanced), and otherwise the limit or rule that stops it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import { judgeEnd, type DemoHost } from '../../src/cli/demo/run.ts';
import type { RoundRecord } from '../../src/monitor/daemon.ts';
import { tmpDir } from '../helpers/tmp.ts';

const { config } = loadConfig({ env: {}, cwd: tmpDir() });
const host = (name: string, cpuShare: number, memCommittedShare = 0.3): DemoHost => ({
  host: name,
  cpuShare,
  memUsedShare: memCommittedShare / 2,
  memCommittedShare,
  vms: 3,
});

function round(overrides: Partial<RoundRecord>): RoundRecord {
  return {
    roundId: 'r1',
    timeMs: 0,
    monitor: 'm',
    mode: 'enforce',
    fencingToken: 1,
    inputs: { hosts: 2, vms: 6, unknownHosts: [], maintenanceHosts: [], samplesSkipped: 0, inFlight: 0 },
    imbalanceBefore: 0.3,
    imbalanceAfter: 0.3,
    moves: [],
    enqueued: [],
    heldBack: [],
    quarantined: [],
    notes: [],
    planMs: 1,
    roundMs: 2,
    ...overrides,
  };
}

describe('demo: when to say balanced', () => {
  it('a flat cluster with no hot host is balanced, and says against which target', () => {
    const end = judgeEnd([host('h1', 0.41), host('h2', 0.39), host('h3', 0.4)], 0.008, null, config);
    assert.equal(end.balanced, true);
    assert.match(end.reason, /imbalance under threshold 3's target 0\.1/);
  });

  it('79% beside 4% is not balanced: the reason gives the figures and what held the moves back', () => {
    const hosts = [host('h1', 0.79), host('h2', 0.04), host('h3', 0.05)];
    const end = judgeEnd(
      hosts,
      0.35,
      round({
        heldBack: [
          { vm: 'vm-3', reason: 'HOUR_MOVE_LIMIT', detail: '60 moves in the last hour (limits.movesPerHour)' },
        ],
      }),
      config,
    );
    assert.equal(end.balanced, false);
    assert.match(end.reason, /imbalance 0\.350 is above threshold 3's target 0\.1/);
    assert.match(end.reason, /what stops it: HOUR_MOVE_LIMIT: 60 moves in the last hour \(limits\.movesPerHour\)/);
  });

  it('a host above the high watermark while another has room is not balanced, even when the spread is small', () => {
    const hosts = [host('h1', 0.5, 0.85), host('h2', 0.45, 0.2), host('h3', 0.5, 0.7)];
    const end = judgeEnd(
      hosts,
      0.02,
      round({
        notes: [
          'evacuate: nothing to do: no host is in maintenance',
          "balance: stopped: imbalance 0.020 (threshold 3's target 0.1); the best remaining move is worth less than the level asks (0.03)",
        ],
      }),
      config,
    );
    assert.equal(end.balanced, false);
    assert.match(end.reason, /h1 \(85%\) above high 80% while 1 host\(s\) are under low 60% \(e\.g\. h2 at 45%\)/);
    assert.match(end.reason, /what stops it: balance: stopped: /);
  });
});
