/**
 * Long reads that never wait for I/O (the files store reads its day files synchronously; an answer of
 * InfluxDB is decoded in one go) would hold the event loop for as long as they run, and with it every
 * timer: the monitor's lease renewals among them. A whole read of a large window (tens of seconds at
 * 3,000 hosts) then outlasted the lease, and the round lost it. `breathe()` between pieces of such work
 * lets timers and I/O run whenever the loop has been held longer than BREATHE_EVERY_MS.
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Longest stretch a reader holds the event loop before it lets timers and I/O run. */
export const BREATHE_EVERY_MS = 20;

let lastTurn = performance.now();

/** Resolves at once, or after one turn of the event loop when the loop was held longer than BREATHE_EVERY_MS. */
export async function breathe(): Promise<void> {
  if (performance.now() - lastTurn < BREATHE_EVERY_MS) return;
  await nextTurn();
  lastTurn = performance.now();
}
