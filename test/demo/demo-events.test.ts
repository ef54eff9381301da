/**
 * The demo's story of migration events, and what it counts: a migration is a move a job made, with
 * its time; a re-run that found its VM already moved (an earlier attempt moved it and was reported
 * failed) is told as such and not counted again, nor shown with a time it did not take.
 */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { describeEvent, type DemoResult } from '../../src/cli/demo/run.ts';
import { DemoView } from '../../src/cli/demo/view.ts';
import type { LbvmEvent } from '../../src/model/index.ts';

function story() {
  const out = new PassThrough();
  let text = '';
  out.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const view = new DemoView(out as unknown as NodeJS.WriteStream, 'test', Date.now());
  const result = { migrations: [], failedMigrations: 0, alreadyThere: 0 } as unknown as DemoResult;
  return { view, result, text: () => text };
}

const move = { vm: 'vm-1', from: 'h1', to: 'h2', jobId: 'j1', mode: 'live' as const };

describe('the demo tells migration events as they were', () => {
  it('a moved VM is a migration with its time and downtime; a failed attempt is counted as failed', () => {
    const { view, result, text } = story();
    const events: LbvmEvent[] = [
      { ...move, type: 'migration.started', timeMs: 1 },
      { ...move, type: 'migration.failed', timeMs: 2, error: 'lost its lock', detail: { willRetry: true } },
      { ...move, type: 'migration.finished', timeMs: 3, totalMs: 840, downtimeMs: 51, detail: { outcome: 'migrated' } },
    ];
    for (const event of events) describeEvent(event, view, result);
    assert.deepEqual(result.migrations, [
      { vm: 'vm-1', from: 'h1', to: 'h2', mode: 'live', totalMs: 840, downtimeMs: 51 },
    ]);
    assert.equal(result.failedMigrations, 1);
    assert.equal(result.alreadyThere, 0);
    assert.match(text(), /migrating vm-1 h1 → h2 \(live\)/);
    assert.match(text(), /migration of vm-1 h1 → h2 failed: lost its lock/);
    assert.match(text(), /migrated vm-1 h1 → h2 in .*, downtime 51 ms/);
  });

  it('a job that found its VM already on the destination is said so, and not counted as a migration', () => {
    const { view, result, text } = story();
    describeEvent(
      {
        ...move,
        type: 'migration.finished',
        timeMs: 3,
        totalMs: 0,
        downtimeMs: null,
        detail: { outcome: 'already-there' },
      },
      view,
      result,
    );
    assert.deepEqual(result.migrations, []);
    assert.equal(result.alreadyThere, 1);
    assert.match(text(), /vm-1 was already on h2 when its job ran \(an earlier attempt moved it\): nothing moved/);
    assert.doesNotMatch(text(), /migrated vm-1/);
  });
});
