/** Choosing a destination: the first candidate (in the policy's order) that every filter accepts. */
import type { SkipReason } from '../src/model/index.ts';
import type { Cluster, HostLoad, VmLoad } from './cluster.ts';
import { destRefusal, softDelta, type DestFilter, type DestOptions } from './constraints.ts';

export interface Found {
  dest: HostLoad | null;
  /** Why candidates were refused, counted by reason (for the NO_DESTINATION skip). */
  refused: Map<SkipReason, number>;
}

/**
 * Walks `candidates` in order; returns the first that passes DEST_FILTERS and the policy's own `lines`
 * (constraints.ts), preferring one that breaks no more soft rules than staying (softDelta ≤ 0).
 */
export function findDestination(
  cluster: Cluster,
  vm: VmLoad,
  candidates: readonly HostLoad[],
  lines: readonly DestFilter[] = [],
  options: DestOptions = {},
): Found {
  const refused = new Map<SkipReason, number>();
  let fallback: HostLoad | null = null;
  for (const dest of candidates) {
    if (dest.index === vm.host) continue;
    const refusal = destRefusal(cluster, vm, dest, options, lines);
    if (refusal) {
      refused.set(refusal.reason, (refused.get(refusal.reason) ?? 0) + 1);
      continue;
    }
    if (softDelta(cluster, vm, dest) <= 0) return { dest, refused };
    fallback ??= dest;
  }
  return { dest: fallback, refused };
}

/** "12 DEST_MEM_FULL, 3 ANTI_AFFINITY" */
export function describeRefusals(refused: Map<SkipReason, number>): string {
  if (refused.size === 0) return 'no other usable host';
  return [...refused.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason, count]) => `${count} ${reason}`)
    .join(', ');
}

/** Sort helper: by key, then by name, so plans are the same for the same snapshot. */
export function byKeyThenName<T extends { name: string }>(key: (item: T) => number): (a: T, b: T) => number {
  return (a, b) => key(a) - key(b) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * `items` sorted by key, then name, with each key computed once (a key may be costly: a host's
 * overload risk; byKeyThenName would compute it twice per comparison).
 */
export function sortedByKey<T extends { name: string }>(items: readonly T[], key: (item: T) => number): T[] {
  const keyed = items.map((item) => ({ item, key: key(item) }));
  keyed.sort((a, b) => a.key - b.key || (a.item.name < b.item.name ? -1 : a.item.name > b.item.name ? 1 : 0));
  return keyed.map((entry) => entry.item);
}

/**
 * Keeps `order` sorted after `host`'s key changed (one host per move): remove it, binary-insert it.
 * O(hosts) instead of re-sorting all hosts after every move.
 */
export function reposition<T extends { name: string }>(order: T[], item: T, key: (item: T) => number): void {
  const at = order.indexOf(item);
  if (at >= 0) order.splice(at, 1);
  const compare = byKeyThenName(key);
  let low = 0;
  let high = order.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (compare(order[mid]!, item) < 0) low = mid + 1;
    else high = mid;
  }
  order.splice(low, 0, item);
}
