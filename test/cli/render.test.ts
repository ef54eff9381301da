import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bar, lineChart, sparkline, table } from '../../src/cli/render.ts';

describe('terminal rendering', () => {
  it('draws usage bars, marking overflow', () => {
    assert.equal(bar(0.5, 10), '█████░░░░░');
    assert.equal(bar(0, 4), '░░░░');
    assert.equal(bar(1.4, 5), '████▶');
  });
  it('aligns table columns, numbers to the right', () => {
    assert.equal(table(['host', 'vms'], [['n1', '3'], ['n10', '12']]), 'host  vms\nn1      3\nn10    12');
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
