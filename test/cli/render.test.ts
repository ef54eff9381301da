import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bar, lineChart, safeJson, safeOutput, sparkline, table } from '../../src/cli/render.ts';

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
});
