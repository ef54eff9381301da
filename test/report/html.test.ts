import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { buildReport } from '../../src/cli/report/data.ts';
import { renderHtml } from '../../src/cli/report/html.ts';
import type { LbvmEvent, Sample } from '../../src/model/index.ts';
import { renderPage } from '../helpers/chromium.ts';
import { tmpDir } from '../helpers/tmp.ts';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 24, 10, 0);
const GiB = 1024 ** 3;

function cluster(): { samples: Sample[]; events: LbvmEvent[] } {
  const samples: Sample[] = [];
  const events: LbvmEvent[] = [];
  for (let t = 0; t <= 60; t++) {
    const moved = t >= 20;
    samples.push({
      kind: 'host',
      host: 'n1',
      timeMs: T0 + t * MIN,
      cpuCores: 4,
      cpuUsedCores: moved ? 2.2 : 3.8,
      memBytes: 16 * GiB,
      memUsedBytes: 9 * GiB,
    });
    samples.push({
      kind: 'host',
      host: 'n2',
      timeMs: T0 + t * MIN,
      cpuCores: 4,
      cpuUsedCores: moved ? 2.0 : 0.4,
      memBytes: 16 * GiB,
      memUsedBytes: 5 * GiB,
    });
    events.push({
      type: 'monitor.round',
      timeMs: T0 + t * MIN + 1000,
      detail: { imbalanceBefore: moved ? 0.03 : 0.42 },
    });
  }
  events.push({
    type: 'migration.started',
    timeMs: T0 + 19 * MIN,
    vm: 'vm-<b>7</b>',
    from: 'n1',
    to: 'n2',
    jobId: 'j1',
    reason: 'n1 CPU 95% > high 80%',
    requestedBy: 'monitor',
    mode: 'live',
  });
  events.push({
    type: 'migration.finished',
    timeMs: T0 + 19 * MIN + 2500,
    vm: 'vm-<b>7</b>',
    from: 'n1',
    to: 'n2',
    jobId: 'j1',
    totalMs: 2500,
    downtimeMs: 4,
  });
  events.push({
    type: 'migration.failed',
    timeMs: T0 + 30 * MIN,
    vm: 'vm-9',
    from: 'n1',
    to: 'n2',
    jobId: 'j2',
    error: 'destination agent unreachable',
  });
  return { samples, events };
}

describe('report', () => {
  it('counts migrations, downtime, failures and overloaded periods from samples and events', () => {
    const { samples, events } = cluster();
    const data = buildReport({ fromMs: T0, toMs: T0 + 60 * MIN, samples, events, highWatermark: 0.8 });
    assert.equal(data.totals.migrations, 1);
    assert.equal(data.totals.failed, 1);
    assert.equal(data.totals.medianDowntimeMs, 4);
    assert.deepEqual(
      data.overloads.map((o) => [o.host, (o.toMs - o.fromMs) / MIN]),
      [['n1', 20]],
    );
    assert.equal(data.imbalance.length, 61);
    assert.equal(data.migrations[0]!.reason, 'n1 CPU 95% > high 80%');
  });

  it('a job that found its VM already moved is a row of its own, not a migration, and shows no time it did not take', () => {
    const { samples, events } = cluster();
    const retry = { vm: 'vm-9', from: 'n1', to: 'n2', jobId: 'j2', mode: 'live' as const };
    events.push(
      { ...retry, type: 'migration.started', timeMs: T0 + 31 * MIN },
      {
        ...retry,
        type: 'migration.finished',
        timeMs: T0 + 31 * MIN + 3,
        totalMs: 3,
        downtimeMs: null,
        detail: { attempt: 2, outcome: 'already-there' },
      },
    );
    const data = buildReport({ fromMs: T0, toMs: T0 + 60 * MIN, samples, events, highWatermark: 0.8 });
    assert.equal(data.totals.migrations, 1);
    assert.equal(data.totals.alreadyThere, 1);
    assert.equal(data.totals.failed, 1);
    const row = data.migrations.find((m) => m.outcome === 'already-there');
    assert.deepEqual([row?.vm, row?.totalMs, row?.downtimeMs], ['vm-9', null, null]);
    const html = renderHtml(data, { highWatermark: 0.8, generatedMs: T0 + 61 * MIN });
    assert.match(html, /<b>1<\/b>found already moved/);
    assert.match(html, /<tr class="already-there">.*<td>already-there<\/td><td>–<\/td>/);
  });

  it("estimates energy from a host's CPU samples and its power curve; a silent stretch counts only up to the staleness limit", () => {
    const { samples, events } = cluster();
    // n1 falls silent from minute 31 to 59: its samples at 30 and 60 are 30 minutes apart, counted as 3.
    const kept = samples.filter((s) => s.host !== 'n1' || s.timeMs <= T0 + 30 * MIN || s.timeMs === T0 + 60 * MIN);
    const data = buildReport({
      fromMs: T0,
      toMs: T0 + 60 * MIN,
      samples: kept,
      events,
      highWatermark: 0.8,
      powerCurve: (host) => (host === 'n1' ? [100, 200] : null), // 100 W idle, 200 W at full use
      maxSampleGapMs: 3 * MIN,
    });
    // 19 minutes at 95% (195 W), one from 95% to 55% (175 W), 10 at 55% (155 W), then 3 at 155 W.
    const joules = 60 * (19 * 195 + 175 + 10 * 155) + 180 * 155;
    assert.deepEqual(data.energy?.hostsWithoutCurve, ['n2']);
    const n1 = data.energy!.byHost[0]!;
    assert.equal(n1.host, 'n1');
    assert.ok(Math.abs(n1.kWh - joules / 3.6e6) < 1e-9, `${n1.kWh} kWh`);
    assert.ok(Math.abs(n1.meanWatts - joules / (33 * 60)) < 1e-9, `${n1.meanWatts} W`);
  });

  it('the HTML page renders its charts in headless Chromium without console errors (screenshot taken)', async () => {
    const { samples, events } = cluster();
    const data = buildReport({ fromMs: T0, toMs: T0 + 60 * MIN, samples, events, highWatermark: 0.8 });
    const dir = tmpDir();
    const file = path.join(dir, 'report.html');
    const html = renderHtml(data, { highWatermark: 0.8, generatedMs: T0 + 61 * MIN });
    fs.writeFileSync(file, html);
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'the page must be self-contained');
    assert.doesNotMatch(html, /vm-<b>7/, 'names are escaped');
    const page = await renderPage(file);
    assert.deepEqual(page.consoleLines, []);
    for (const id of ['chart-cpu', 'chart-mem', 'chart-imbalance'])
      assert.match(page.dom, new RegExp(`<svg id="${id}"[^>]*>[\\s\\S]*?<path d="M`), `${id} has no line`);
    assert.match(page.dom, /<table id="migrations">/);
    assert.match(page.dom, /vm-&lt;b&gt;7&lt;\/b&gt;/);
    const png = fs.readFileSync(page.screenshot);
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
    assert.ok(png.length > 20_000, `screenshot is only ${png.length} bytes`);
    if (process.env.LBVM_KEEP_SCREENSHOT) fs.copyFileSync(page.screenshot, process.env.LBVM_KEEP_SCREENSHOT);
  });

  it('the time axis of a short report reads in seconds, not one minute six times; a longer one in minutes', () => {
    const axis = (fromMs: number, toMs: number) => {
      const { samples, events } = cluster();
      const html = renderHtml(buildReport({ fromMs, toMs, samples, events, highWatermark: 0.8 }), {
        highWatermark: 0.8,
        generatedMs: toMs,
      });
      const cpu = html.slice(
        html.indexOf('<svg id="chart-cpu"'),
        html.indexOf('</svg>', html.indexOf('<svg id="chart-cpu"')),
      );
      return [...cpu.matchAll(/class="axis" text-anchor="middle">([^<]+)</g)].map((match) => match[1]!);
    };
    const oneMinute = axis(T0 + 6 * MIN, T0 + 7 * MIN);
    assert.deepEqual(oneMinute, ['10:06:00', '10:06:10', '10:06:20', '10:06:30', '10:06:40', '10:06:50', '10:07:00']);
    assert.deepEqual(axis(T0, T0 + 60 * MIN), ['10:00', '10:10', '10:20', '10:30', '10:40', '10:50', '11:00']);
  });
});
