/** How plans write numbers: shares as percents, sizes in GiB. */

/** 0.923 -> "92%" */
export function pct(share: number): string {
  return `${Math.round(share * 100)}%`;
}

export function gib(bytes: number): string {
  const value = bytes / 1024 ** 3;
  return `${value >= 10 ? value.toFixed(0) : Number(value.toFixed(1))} GiB`;
}
