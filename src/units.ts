/** Parsing and printing of durations and byte sizes, shared by the config, the CLI and reports. */

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses `500ms`, `10s`, `5m`, `1h30m`, `7d`, or a plain number of milliseconds.
 * Returns null when the text is not a duration.
 */
export function parseDurationMs(text: string | number): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : null;
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  const parts = trimmed.match(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g);
  if (!parts || parts.join('') !== trimmed) return null;
  let total = 0;
  for (const part of parts) {
    const [, value, unit] = part.match(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/)!;
    total += Number(value) * DURATION_UNITS_MS[unit!]!;
  }
  return total;
}

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/** Parses `64MiB`, `2GiB`, `1.5GB`, `512k`, or a plain number of bytes. Null when not a size. */
export function parseBytes(text: string | number): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? text : null;
  const match = text.trim().match(/^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/);
  if (!match) return null;
  const unit = match[2]!.toLowerCase() || 'b';
  const factor = SIZE_UNITS[unit];
  return factor === undefined ? null : Math.round(Number(match[1]) * factor);
}

/** 1536 MiB -> "1.5 GiB" */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let index = 0;
  while (Math.abs(value) >= 1024 && index < units.length - 1) {
    value /= 1024;
    index++;
  }
  const digits = index === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 1;
  return `${Number(value.toFixed(digits))} ${units[index]}`;
}

/** 90_000 -> "1m30s", 1500 -> "1.5s", 12 -> "12ms" */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  const totalSeconds = Math.round(ms / 1000);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  return [hours ? `${hours}h` : '', minutes ? `${minutes}m` : '', seconds ? `${seconds}s` : ''].join('') || '0s';
}

/** 0.4234 -> "42%" */
export function formatPercent(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}
