/**
 * `npm test`'s runner (test/run.sh calls it): the test files in two lanes at once, each lane one file
 * at a time. The QEMU lane takes every file that boots real guests (it imports test/helpers/agent.ts,
 * libvirt.ts or qemu.ts, or says `@lane qemu`); the other lane takes the rest. On a 2-core machine one file at
 * a time used under half of it (most tests wait on servers, guests and timers), and two guest-booting
 * files at once would starve each other's guests.
 *
 * While the lanes run, each prints a line per finished file group; when both are done, each lane's
 * whole spec report follows (failures at its end; a failing lane's report last, where a CI log's tail
 * shows it), then one line of totals. The exit code is non-zero when either lane failed.
 *
 *   node test/lanes.mjs [FILE...]     (no FILE: every test/**\/*.test.ts)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
process.chdir(root);

function testFiles(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : testFiles(file);
      return entry.name.endsWith('.test.ts') ? [file] : [];
    })
    .sort();
}

const files = process.argv.length > 2 ? process.argv.slice(2) : testFiles('test');
const bootsGuests = (file) => /helpers\/(agent|libvirt|qemu)\.ts'|@lane qemu/.test(fs.readFileSync(file, 'utf8'));
const lanes = [
  { name: 'qemu', files: files.filter(bootsGuests) },
  { name: 'other', files: files.filter((file) => !bootsGuests(file)) },
].filter((lane) => lane.files.length > 0);

const started = Date.now();
const elapsed = () => {
  const s = Math.round((Date.now() - started) / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
};

const children = [];
for (const signal of ['SIGINT', 'SIGTERM'])
  process.on(signal, () => {
    for (const child of children) child.kill(signal);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });

console.log(
  `npm test: ${files.length} files in ${lanes.length} lanes (${lanes.map((l) => `${l.name}: ${l.files.length}`).join(', ')})`,
);
const results = await Promise.all(
  lanes.map(
    (lane) =>
      new Promise((resolve) => {
        const child = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            '--test',
            '--test-concurrency=1',
            // A file whose before() failed can leave a server handle open (its after() never reached
            // it); its process still ends once its tests are done, and the servers it started die with
            // it (setpriv --pdeathsig, src/util/processes.ts) instead of holding npm test for ever.
            '--test-force-exit',
            // Through pipes, which Node writes synchronously: a file destination is cut short when
            // --test-force-exit ends the runner.
            '--test-reporter=spec',
            '--test-reporter-destination=stdout',
            '--test-reporter=./test/helpers/lane-progress.mjs',
            '--test-reporter-destination=stderr',
            ...lane.files,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        children.push(child);
        const report = [];
        child.stdout.on('data', (chunk) => report.push(chunk));
        let pending = '';
        child.stderr.on('data', (chunk) => {
          const lines = (pending + chunk.toString()).split('\n');
          pending = lines.pop();
          for (const line of lines) console.log(`[${elapsed()} ${lane.name}] ${line}`);
        });
        child.on('close', (code, signal) => {
          if (pending) console.log(`[${elapsed()} ${lane.name}] ${pending}`);
          resolve({ lane, report: Buffer.concat(report).toString(), code: code ?? (signal ? 1 : 0) });
        });
      }),
  ),
);

const totals = { tests: 0, pass: 0, fail: 0, cancelled: 0, skipped: 0, todo: 0 };
// A failing lane's report comes last, its failures at the very end: what a CI log's tail shows.
for (const { lane, report, code } of [...results].sort((x, y) => Number(x.code !== 0) - Number(y.code !== 0))) {
  console.log(`\n===== lane ${lane.name} (${lane.files.length} files), exit ${code} =====`);
  process.stdout.write(report);
  for (const key of Object.keys(totals)) {
    const match = new RegExp(`^ℹ ${key} (\\d+)$`, 'm').exec(report);
    if (match) totals[key] += Number(match[1]);
  }
}
const failed = results.filter((result) => result.code !== 0);
console.log(
  `\nnpm test: ${totals.tests} tests, ${totals.pass} passed, ${totals.fail} failed, ${totals.cancelled} cancelled` +
    `, ${totals.skipped} skipped in ${elapsed()}` +
    (failed.length ? `; lane ${failed.map((f) => f.lane.name).join(' and ')} failed` : ''),
);
process.exit(failed.length ? 1 : 0);
