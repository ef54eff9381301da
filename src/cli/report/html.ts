/**
 * The HTML report: one self-contained page (inline CSS and SVG, no script, no network) with
 * per-host CPU and memory over time with migrations marked, imbalance over time, and tables of
 * migrations and overloaded periods. Pure: data in, a string out.
 */
import { formatDuration } from '../../units.ts';
import type { ReportData, SeriesPoint } from './data.ts';

const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Below this span a report's times carry seconds: its axis's 6 steps are under 2 minutes apart. */
const SECONDS_BELOW_MS = 12 * 60_000;

/** A time of day (UTC) for a report spanning `spanMs`: HH:MM, or HH:MM:SS when minutes alone would repeat. */
export function clock(timeMs: number, spanMs: number): string {
  return new Date(timeMs).toISOString().slice(11, spanMs < SECONDS_BELOW_MS ? 19 : 16);
}

interface ChartSpec {
  id: string;
  title: string;
  series: { name: string; points: SeriesPoint[] }[];
  markers: { timeMs: number; label: string; failed?: boolean }[];
  fromMs: number;
  toMs: number;
  yMax: number;
  yLabel: (value: number) => string;
  /** Horizontal reference line (e.g. the high watermark). */
  threshold?: { value: number; label: string };
}

export function lineChart(spec: ChartSpec): string {
  const width = 900;
  const height = 260;
  const left = 52;
  const right = 150;
  const top = 28;
  const bottom = 30;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const span = Math.max(1, spec.toMs - spec.fromMs);
  const x = (t: number) => left + ((t - spec.fromMs) / span) * plotW;
  const yMax = spec.yMax > 0 ? spec.yMax : 1;
  const y = (v: number) => top + plotH - (Math.min(v, yMax) / yMax) * plotH;
  const parts: string[] = [];
  parts.push(
    `<svg id="${spec.id}" class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeHtml(spec.title)}" xmlns="http://www.w3.org/2000/svg">`,
  );
  parts.push(`<text x="${left}" y="16" class="title">${escapeHtml(spec.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const value = (yMax * i) / 4;
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}" class="grid"/>`,
    );
    parts.push(
      `<text x="${left - 6}" y="${(y(value) + 4).toFixed(1)}" class="axis" text-anchor="end">${escapeHtml(spec.yLabel(value))}</text>`,
    );
  }
  for (let i = 0; i <= 6; i++) {
    const t = spec.fromMs + (span * i) / 6;
    parts.push(
      `<text x="${x(t).toFixed(1)}" y="${height - 10}" class="axis" text-anchor="middle">${clock(t, span)}</text>`,
    );
  }
  if (spec.threshold) {
    const ty = y(spec.threshold.value).toFixed(1);
    parts.push(
      `<line x1="${left}" x2="${left + plotW}" y1="${ty}" y2="${ty}" class="threshold"/><text x="${left + plotW - 4}" ` +
        `y="${Number(ty) - 4}" class="axis" text-anchor="end">${escapeHtml(spec.threshold.label)}</text>`,
    );
  }
  for (const marker of spec.markers) {
    if (marker.timeMs < spec.fromMs || marker.timeMs > spec.toMs) continue;
    const mx = x(marker.timeMs).toFixed(1);
    parts.push(
      `<line x1="${mx}" x2="${mx}" y1="${top}" y2="${top + plotH}" ` +
        `class="${marker.failed ? 'marker failed' : 'marker'}"><title>${escapeHtml(marker.label)}</title></line>`,
    );
  }
  spec.series.forEach((series, index) => {
    const color = PALETTE[index % PALETTE.length]!;
    const points = series.points.filter((p) => p.timeMs >= spec.fromMs && p.timeMs <= spec.toMs);
    if (points.length > 0) {
      const d = points
        .map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.timeMs).toFixed(1)},${y(p.value).toFixed(1)}`)
        .join(' ');
      parts.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"><title>${escapeHtml(series.name)}</title></path>`,
      );
    }
    const ly = top + 4 + index * 16;
    if (index < 14) {
      parts.push(
        `<rect x="${left + plotW + 14}" y="${ly}" width="10" height="10" fill="${color}"/><text ` +
          `x="${left + plotW + 30}" y="${ly + 9}" class="legend">${escapeHtml(series.name.slice(0, 18))}</text>`,
      );
    }
  });
  if (spec.series.length > 14)
    parts.push(
      `<text x="${left + plotW + 14}" y="${top + 4 + 14 * 16 + 9}" class="legend">+${spec.series.length - 14} more</text>`,
    );
  if (spec.series.every((s) => s.points.length === 0)) {
    parts.push(
      `<text x="${left + plotW / 2}" y="${top + plotH / 2}" class="empty" text-anchor="middle">no data in this period</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Overloaded host time in words that stay true: seconds under two minutes, then minutes rounded up. */
export function overloadedTime(totals: { overloadedHostSeconds: number; overloadedHostMinutes: number }): string {
  return totals.overloadedHostSeconds < 120
    ? `${totals.overloadedHostSeconds} s`
    : `${totals.overloadedHostMinutes} min`;
}

export function renderHtml(
  data: ReportData,
  options: { title?: string; highWatermark: number; generatedMs: number },
): string {
  const pct = (v: number) => `${Math.round(v * 100)}%`;
  const markers = data.migrations.map((m) => ({
    timeMs: m.endMs,
    failed: m.outcome === 'failed' || m.outcome === 'dropped',
    label: `${m.vm}: ${m.from} → ${m.to} (${m.outcome})${m.reason ? ` — ${m.reason}` : ''}`,
  }));
  const charts = [
    lineChart({
      id: 'chart-cpu',
      title: 'CPU use per host (share of capacity)',
      series: data.hosts.map((h) => ({ name: h.host, points: h.cpuShare })),
      markers,
      fromMs: data.fromMs,
      toMs: data.toMs,
      yMax: Math.max(1, ...data.hosts.flatMap((h) => h.cpuShare.map((p) => p.value))),
      yLabel: pct,
      threshold: { value: options.highWatermark, label: `high ${pct(options.highWatermark)}` },
    }),
    lineChart({
      id: 'chart-mem',
      title: 'Memory measured in use per host (share of capacity)',
      series: data.hosts.map((h) => ({ name: h.host, points: h.memShare })),
      markers,
      fromMs: data.fromMs,
      toMs: data.toMs,
      yMax: 1,
      yLabel: pct,
      threshold: { value: options.highWatermark, label: `high ${pct(options.highWatermark)}` },
    }),
    lineChart({
      id: 'chart-mem-committed',
      title: 'Memory committed to VMs per host (their configured sizes; what the policies judge)',
      series: data.hosts.map((h) => ({ name: h.host, points: h.memCommittedShare })),
      markers,
      fromMs: data.fromMs,
      toMs: data.toMs,
      yMax: Math.max(1, ...data.hosts.flatMap((h) => h.memCommittedShare.map((p) => p.value))),
      yLabel: pct,
      threshold: { value: options.highWatermark, label: `high ${pct(options.highWatermark)}` },
    }),
    lineChart({
      id: 'chart-imbalance',
      title: 'Cluster imbalance (lower is flatter)',
      series: [{ name: 'imbalance', points: data.imbalance }],
      markers,
      fromMs: data.fromMs,
      toMs: data.toMs,
      yMax: Math.max(0.05, ...data.imbalance.map((p) => p.value)) * 1.1,
      yLabel: (v) => v.toFixed(2),
    }),
  ];
  const span = data.toMs - data.fromMs;
  const rows = data.migrations
    .map(
      (m) =>
        `<tr class="${m.outcome}"><td>${clock(m.endMs, span)}</td><td>${escapeHtml(m.vm)}</td>` +
        `<td>${escapeHtml(m.from)} → ${escapeHtml(m.to)}</td><td>${escapeHtml(m.mode)}</td><td>${escapeHtml(m.requestedBy)}</td>` +
        `<td>${m.outcome}${m.error ? `: ${escapeHtml(m.error)}` : ''}</td>` +
        `<td>${m.totalMs === null ? '–' : formatDuration(m.totalMs)}</td>` +
        `<td>${m.downtimeMs === null ? '–' : `${Math.round(m.downtimeMs)} ms`}</td><td>${escapeHtml(m.reason)}</td></tr>`,
    )
    .join('\n');
  const overloads = data.overloads
    .map(
      (o) =>
        `<tr><td>${escapeHtml(o.host)}</td><td>${clock(o.fromMs, span)}</td><td>${clock(o.toMs, span)}</td>` +
        `<td>${formatDuration(o.toMs - o.fromMs)}</td><td>${pct(o.peakShare)} ${o.resource}</td></tr>`,
    )
    .join('\n');
  const t = data.totals;
  const table = (id: string, headings: string[], body: string) =>
    `<table id="${id}"><thead><tr>${headings.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>\n${body}\n</tbody></table>`;
  const migrationsTable = data.migrations.length
    ? table('migrations', ['time', 'VM', 'move', 'mode', 'by', 'outcome', 'took', 'downtime', 'reason'], rows)
    : '<p>No migration in this period.</p>';
  const overloadsTable = data.overloads.length
    ? table('overloads', ['host', 'from', 'to', 'for', 'peak'], overloads)
    : '<p>No host was overloaded in this period.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(options.title ?? 'LBVM report')}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.summary{display:flex;gap:24px;flex-wrap:wrap;margin:12px 0}.summary div{background:#f3f5f7;padding:8px 14px;border-radius:6px}
.summary b{display:block;font-size:20px}
svg.chart{width:100%;height:auto;background:#fff;border:1px solid #ddd;border-radius:6px;margin:8px 0}
.title{font-weight:600;font-size:13px}.axis{font-size:11px;fill:#666}.legend{font-size:11px}.empty{fill:#999;font-size:14px}
.grid{stroke:#eee}.threshold{stroke:#d62728;stroke-dasharray:4 3}.marker{stroke:#444;stroke-dasharray:2 3}.marker.failed{stroke:#d62728}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:4px 6px;text-align:left;font-size:13px;vertical-align:top}
tr.failed td,tr.dropped td{color:#b00}
</style></head><body>
<h1>${escapeHtml(options.title ?? 'LBVM report')}</h1>
<div>${new Date(data.fromMs).toISOString()} — ${new Date(data.toMs).toISOString()} · generated ${new Date(options.generatedMs).toISOString()}</div>
<div class="summary">
<div><b id="total-migrations">${t.migrations}</b>migrations</div>
${t.alreadyThere ? `<div><b>${t.alreadyThere}</b>found already moved</div>\n` : ''}<div><b>${t.failed}</b>failed</div>
<div><b>${t.dropped}</b>dropped</div>
<div><b>${t.medianDowntimeMs === null ? '–' : `${Math.round(t.medianDowntimeMs)} ms`}</b>median downtime</div>
<div><b>${overloadedTime(t)}</b>overloaded host time</div>
<div><b>${data.imbalance.length ? data.imbalance[data.imbalance.length - 1]!.value.toFixed(3) : '–'}</b>imbalance now</div>
</div>
<h2>Hosts over time</h2>
${charts[0]}
${charts[1]}
${charts[2]}
<h2>Imbalance over time</h2>
${charts[3]}
<h2>Migrations</h2>
${migrationsTable}
<h2>Overloaded hosts (CPU or memory committed above ${pct(options.highWatermark)})</h2>
${overloadsTable}
</body></html>
`;
}
