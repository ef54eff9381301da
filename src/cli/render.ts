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

/**
 * Characters a terminal acts on instead of showing: C0 controls (ESC starts a command that can clear
 * the screen, retitle the window or rewrite what was printed), DEL, C1 controls (U+009B is a CSI on
 * its own), line and paragraph separators, bidirectional overrides (which reorder what is shown),
 * and UTF-16 halves without their partner (not text at all).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_BUT_NEWLINE =
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Printable ASCII only: nothing to escape, one column per character (the common case, tested first). */
const PLAIN = /^[\x20-\x7e]*$/;

const escapeChar = (char: string) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;

/**
 * Text from outside (VM and host names, error messages, tags) made safe to print: every character
 * in UNSAFE is shown as `\uXXXX`, newlines included, so a name stays on its line and cannot act on
 * the terminal. Names longer than `maxLength` are cut, with their length said.
 */
export function safeText(text: string, maxLength = Infinity): string {
  const escaped = PLAIN.test(text) ? text : text.replace(UNSAFE, escapeChar);
  if (escaped.length <= maxLength) return escaped;
  return `${escaped.slice(0, Math.max(1, maxLength - 16))}…(${text.length} chars)`;
}

/** The last line of defence for a whole text about to be printed: as `safeText`, newlines kept. */
export function safeOutput(text: string): string {
  return text.replace(UNSAFE_BUT_NEWLINE, escapeChar);
}

const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * JSON with every character of UNSAFE escaped: JSON.stringify already escapes C0 controls and lone
 * surrogates inside strings; this escapes the rest (only ever inside strings), so it stays valid JSON.
 */
export function safeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(UNSAFE_IN_JSON, escapeChar);
}

/** An object's arrays longer than this are stringified this many entries at a time. */
export const JSON_SLICE = 1000;

/**
 * `safeJson(value, 2)` in pieces that join to the very same bytes. An object's long arrays (`lbm vms
 * --json`: 30,000 VMs, 10 MB) are stringified a slice at a time, so no 10 MB string is built, scanned
 * and copied whole. Each piece is stringified inside a one-key object, which puts it at the depth it
 * has in the whole; the wrapper's own characters are cut off. (An entry's `toJSON(key)` sees its index
 * in the slice; no output of ours has one that reads it.)
 */
export function* safeJsonPieces(value: unknown): Generator<string> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || 'toJSON' in value) {
    yield safeJson(value, 2);
    return;
  }
  const safe = (text: string) => text.replace(UNSAFE_IN_JSON, escapeChar);
  let opened = false;
  for (const [key, inner] of Object.entries(value)) {
    const head = opened ? ',\n' : '{\n';
    if (Array.isArray(inner) && inner.length > JSON_SLICE) {
      yield `${head}  ${safeJson(key)}: [\n`;
      for (let at = 0; at < inner.length; at += JSON_SLICE) {
        // '{\n  "k": [\n' … '\n  ]\n}'
        const text = JSON.stringify({ k: inner.slice(at, at + JSON_SLICE) }, null, 2);
        yield `${at > 0 ? ',\n' : ''}${safe(text.slice(11, -6))}`;
      }
      yield '\n  ]';
    } else {
      // '{\n' … '\n}', or '{}' for a value JSON leaves out (undefined, a function)
      const text = JSON.stringify({ [key]: inner }, null, 2);
      if (text === '{}') continue;
      yield `${head}${safe(text.slice(2, -2))}`;
    }
    opened = true;
  }
  yield opened ? '\n}' : '{}';
}

/**
 * The widest a table cell gets: a 10 KB name is cut (its length said), the table stays readable. The
 * last column, where tables put free text (a reason, an error), gets more room.
 */
export const MAX_CELL = 64;
export const MAX_LAST_CELL = 200;

/**
 * Pads columns to their widest cell; numbers (and cells starting with a digit) are right-aligned.
 * Cells are made safe (`safeText`) and cut at MAX_CELL characters (MAX_LAST_CELL in the last column).
 */
export function table(header: string[], rawRows: string[][]): string {
  const last = header.length - 1;
  const rows = rawRows.map((row) =>
    row.map((cell, index) => safeText(cell, index === last ? MAX_LAST_CELL : MAX_CELL)),
  );
  // Each cell measured once (`lbm vms` at 30,000 VMs has 240,000), in plain loops.
  const lengths = rows.map((row) => row.map(visibleLength));
  const headerLengths = header.map(visibleLength);
  const widths = [...headerLengths];
  const numeric = header.map(() => rows.length > 0);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    for (let index = 0; index <= last; index++) {
      const cell = row[index] ?? '';
      if ((lengths[r]![index] ?? 0) > widths[index]!) widths[index] = lengths[r]![index]!;
      if (numeric[index] && cell !== '-' && !/^[-+]?\d/.test(cell)) numeric[index] = false;
    }
  }
  const line = (cells: string[], cellLengths: number[]) => {
    let text = '';
    for (let index = 0; index < cells.length; index++) {
      const cell = cells[index]!;
      const pad = index <= last ? ' '.repeat(Math.max(0, widths[index]! - cellLengths[index]!)) : '';
      text += (index > 0 ? '  ' : '') + (numeric[index] ? pad + cell : cell + pad);
    }
    return text.trimEnd();
  };
  const out = [line(header, headerLengths)];
  for (let r = 0; r < rows.length; r++) out.push(line(rows[r]!, lengths[r]!));
  return out.join('\n');
}

function visibleLength(text: string): number {
  if (PLAIN.test(text)) return text.length;
  // eslint-disable-next-line no-control-regex
  return [...text.replace(/\u001b\[[0-9;]*m/g, '')].length;
}

/** A sparkline of values: `▁▂▄▆█`. */
export function sparkline(values: number[], max?: number): string {
  const ticks = '▁▂▃▄▅▆▇█';
  const top = max ?? Math.max(...values, 0);
  if (values.length === 0) return '';
  return values
    .map((value) =>
      top <= 0
        ? ticks[0]
        : ticks[Math.min(ticks.length - 1, Math.max(0, Math.round((value / top) * (ticks.length - 1))))],
    )
    .join('');
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
  const labels = Array.from({ length: height }, (_, row) =>
    format(max - ((max - min) * row) / Math.max(1, height - 1)),
  );
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
