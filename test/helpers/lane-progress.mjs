/**
 * A test reporter for npm test's lanes (test/lanes.mjs): one line per finished top-level test or
 * suite, with its file and time, and one per failed test at any depth with the first line of its error.
 * The whole spec report is written beside it and printed when the lanes are done.
 */
import path from 'node:path';

export default async function* laneProgress(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { name, nesting, file, details } = event.data;
    const seconds = ((details?.duration_ms ?? 0) / 1000).toFixed(1);
    const where = file ? path.relative(process.cwd(), file) : '';
    if (event.type === 'test:fail') {
      const error = details?.error?.cause ?? details?.error;
      const first = String(error?.message ?? error ?? '').split('\n')[0];
      yield `✖ ${name} (${where}, ${seconds} s): ${first}\n`;
    } else if (nesting === 0) yield `✔ ${name} (${where}, ${seconds} s)\n`;
  }
}
