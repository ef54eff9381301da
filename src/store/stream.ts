/**
 * The one way a backend hands out a window of samples: it produces batches, and the stream gives
 * them as batches (cheap: one promise per batch) or one sample at a time, and when the reading ends,
 * however it ends, fills in `skips` and logs one warning for everything skipped.
 */
import type { Logger } from '../log.ts';
import type { Sample } from '../model/index.ts';
import type { SampleStream, SkipReport } from './types.ts';
import type { SkipCounter } from './validate.ts';

export function sampleStream(
  counter: SkipCounter,
  warn: { log: Logger | undefined; store: string },
  produce: () => AsyncGenerator<Sample[]>,
): SampleStream {
  const stream: {
    skips: SkipReport;
    batches: () => AsyncGenerator<Sample[]>;
    [Symbol.asyncIterator]: () => AsyncGenerator<Sample>;
  } = {
    skips: counter.report(),
    async *batches() {
      try {
        yield* produce();
      } finally {
        stream.skips = counter.report();
        warnSkips(warn.log, counter, warn.store);
      }
    },
    async *[Symbol.asyncIterator]() {
      for await (const batch of stream.batches()) yield* batch;
    },
  };
  return stream;
}

/** One warning per read: how many were skipped, why, and the first places (file:line). */
export function warnSkips(log: Logger | undefined, counter: SkipCounter, store: string, what = 'samples'): void {
  if (!log || counter.skipped === 0) return;
  log.warn(
    { store, skipped: counter.skipped, byReason: counter.byReason, examples: counter.examples },
    `skipped ${counter.skipped} bad ${what} while reading ${store}: ${counter.examples.slice(0, 3).join('; ')}${counter.skipped > 3 ? '; ...' : ''}`,
  );
}
