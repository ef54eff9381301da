/**
 * Terminal rendering shared by `lbm` and the demo: usage bars, aligned tables and small line charts.
 * Pure string functions: the same data also feeds `--json`.
 */

/** `████████░░░░ 63%`; a share above 1 fills the bar and ends in `▶`. */
export function bar(share: number, width = 20): string {
  const clamped = Math.max(0, Math.min(1, share));
  const full = Math.round(clamped * width);
  const over = share > 1;
  return `${'█'.repeat(over ? width - 1 : full)}${over ? '▶' : '░'.repeat(width - full)}`;
}

/** Pads columns to their widest cell; numbers (and cells starting with a digit) are right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, index) => Math.max(visibleLength(title), ...rows.map((row) => visibleLength(row[index] ?? ''))));
  const numeric = header.map((_, index) => rows.length > 0 && rows.every((row) => /^[-+]?\d/.test(row[index] ?? '') || (row[index] ?? '') === '-'));
  const line = (cells: string[]) =>
    cells
      .map((cell, index) => {
        const pad = ' '.repeat(Math.max(0, widths[index]! - visibleLength(cell)));
        return numeric[index] ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function visibleLength(text: string): number {
  // eslint-disable-next-line no-control-regex
  return [...text.replace(/\u001b\[[0-9;]*m/g, '')].length;
}

/** A sparkline of values: `▁▂▄▆█`. */
export function sparkline(values: number[], max?: number): string {
  const ticks = '▁▂▃▄▅▆▇█';
  const top = max ?? Math.max(...values, 0);
  if (values.length === 0) return '';
  return values.map((value) => (top <= 0 ? ticks[0] : ticks[Math.min(ticks.length - 1, Math.max(0, Math.round((value / top) * (ticks.length - 1))))])).join('');
}

export interface ChartOptions {
  height?: number;
  width?: number;
  /** Formats the y axis labels. */
  format?: (value: number) => string;
  min?: number;
  max?: number;
}

/**
 * A line chart in text: `height` rows, the series resampled to `width` columns (the mean of each
 * bucket), y labels on the left. Good for "imbalance over time" or a host's CPU log.
 */
export function lineChart(values: number[], options: ChartOptions = {}): string {
  const height = options.height ?? 8;
  const width = Math.min(options.width ?? 60, Math.max(1, values.length));
  if (values.length === 0) return '(no data)';
  const buckets: number[] = [];
  for (let column = 0; column < width; column++) {
    const from = Math.floor((column * values.length) / width);
    const to = Math.max(from + 1, Math.floor(((column + 1) * values.length) / width));
    const slice = values.slice(from, to);
    buckets.push(slice.reduce((sum, v) => sum + v, 0) / slice.length);
  }
  const min = options.min ?? Math.min(0, ...buckets);
  const max = options.max ?? Math.max(...buckets, min + 1e-9);
  const format = options.format ?? ((value: number) => value.toFixed(2));
  const labels = Array.from({ length: height }, (_, row) => format(max - ((max - min) * row) / Math.max(1, height - 1)));
  const labelWidth = Math.max(...labels.map((label) => label.length));
  const rows: string[] = [];
  for (let row = 0; row < height; row++) {
    const level = max - ((max - min) * row) / Math.max(1, height - 1);
    const half = (max - min) / Math.max(1, height - 1) / 2;
    let line = '';
    for (const value of buckets) line += Math.abs(value - level) <= half ? '●' : value > level ? '│' : ' ';
    rows.push(`${labels[row]!.padStart(labelWidth)} ┤${line}`);
  }
  rows.push(`${' '.repeat(labelWidth)} └${'─'.repeat(width)}`);
  return rows.join('\n');
}
