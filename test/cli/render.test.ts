import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  JSON_SLICE,
  bar,
  lineChart,
  safeJson,
  safeJsonPieces,
  safeOutput,
  sparkline,
  table,
} from '../../src/cli/render.ts';

describe('terminal rendering', () => {
  it('draws usage bars, marking overflow', () => {
    assert.equal(bar(0.5, 10), '█████░░░░░');
    assert.equal(bar(0, 4), '░░░░');
    assert.equal(bar(1.4, 5), '████▶');
  });
  it('aligns table columns, numbers to the right', () => {
    assert.equal(
      table(
        ['host', 'vms'],
        [
          ['n1', '3'],
          ['n10', '12'],
        ],
      ),
      'host  vms\nn1      3\nn10    12',
    );
  });
  it('shows outside text safely: terminal controls escaped, one line per row, long cells cut with their length said', () => {
    const shown = table(
      ['VM', 'REASON'],
      [
        ['x\u001b]0;t\u0007\nh2\u009b', 'r'.repeat(300)],
        ['v'.repeat(10_240), 'ok'],
      ],
    );
    assert.equal(shown.split('\n').length, 3);
    assert.ok(shown.includes('x\\u001b]0;t\\u0007\\u000ah2\\u009b'), shown);
    assert.doesNotMatch(shown, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    assert.ok(shown.includes(`${'v'.repeat(48)}…(10240 chars)`));
    assert.ok(shown.includes(`${'r'.repeat(184)}…(300 chars)`), 'the last column (free text) gets more room');
    assert.equal(safeOutput('a\nb\u001b[2J\ud800'), 'a\nb\\u001b[2J\\ud800');
    assert.deepEqual(JSON.parse(safeJson({ name: '\u009b\u202e\ud800\n' }, 2)), { name: '\u009b\u202e\ud800\n' });
    assert.doesNotMatch(safeJson({ name: '\u009b\u202e' }), /[\u009b\u202e]/);
  });
  it('draws a sparkline and a line chart with y labels', () => {
    assert.equal(sparkline([0, 1, 2, 4], 4), '▁▃▅█');
    const chart = lineChart([0, 0.5, 1, 0.5, 0], { height: 3, format: (v) => v.toFixed(1) }).split('\n');
    assert.equal(chart.length, 4);
    assert.equal(chart[0], '1.0 ┤  ●  ');
    assert.equal(chart[1], '0.5 ┤ ●│● ');
    assert.equal(chart[2], '0.0 ┤●│││●');
  });
  it('writes JSON in pieces that join to the bytes of safeJson(value, 2), long arrays a slice at a time', () => {
    const row = (i: number) => ({
      vm: i % 7 === 0 ? `vm-${i}\u2028\u009b\u001b` : `vm-${i}`,
      rules: i % 3 === 0 ? [] : ['pin:a|b'],
      nested: { window: [i, i / 3, -0], empty: {} },
      absent: undefined,
      lastMoveMs: i % 5 === 0 ? null : i,
    });
    const long = Array.from({ length: 2 * JSON_SLICE + 17 }, (_, i) => row(i));
    const values: unknown[] = [
      { timeMs: 1, source: { kind: 'published', note: 'a\u202eb' }, vms: long },
      { first: long, then: 'x', skipped: undefined, fn: () => 1, last: long.slice(0, JSON_SLICE + 1) },
      { exactly: long.slice(0, JSON_SLICE), empty: [], sparse: [1, , 3] },
      { onlyUndefined: undefined },
      {},
      { when: new Date(0), big: long },
      new Date(0),
      long,
      'a\u0085',
      null,
    ];
    for (const value of values) {
      const pieces = [...safeJsonPieces(value)];
      assert.equal(pieces.join(''), safeJson(value, 2));
      JSON.parse(pieces.join(''));
    }
    // The 2,017 VMs went out in three slices, none of them the whole.
    const pieces = [...safeJsonPieces(values[0])];
    assert.ok(pieces.length >= 5, String(pieces.length));
    assert.ok(Math.max(...pieces.map((piece) => piece.length)) < safeJson(values[0], 2).length / 2);
  });
});
