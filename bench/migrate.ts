/**
 * `npm run bench -- migrate [runs] [memory|disk]`: real TCG guests of 256 MiB moved between two `lbvm agent`s on
 * this machine through the qemu driver, idle and with 30% of their memory rewritten every second,
 * in live and checkpoint modes. Each case runs `runs` times (default 5, the guest going back and
 * forth) and reports medians: total time, downtime (QMP's `downtime` for live; stop-to-resume for
 * checkpoint) and bytes copied, plus the dirty rate QEMU measured before each live migration and
 * whether auto-converge was switched on. Defaults of the config: downtime limit 300 ms, 1 GiB/s.
 * Each guest holds 40% of its RAM in a tmpfs file (the guests that crashed with more, thought out of
 * memory, were QEMU 7.2's lost TCG writes: src/drivers/qemu/guest.ts, TCG_RAM_SHORTFALL_KIB); the dirty
 * guest rewrites 30% of its RAM (77 MiB) each second with random bytes.
 * `--netns`: on shaped links between network namespaces, with and without TLS (bench/_migrate-netns.ts).
 *
 * Disk cases (`disk-idle`, `disk-writing`, live only): 256 MiB guests with a 1 GiB local raw disk
 * (sparse but for what the guest writes), copied by block mirroring over NBD alongside the memory;
 * `disk-writing` writes a numbered record every few ms (O_DIRECT, fsync'd), `disk-idle` writes
 * none. Each case adds the disk bytes mirrored, and whether a write was lost: after the runs the
 * guest is shut down and booted from its image where it ended, and checks its records (no gap, no
 * repeat, and at least the last number it printed before the shutdown).
 * `memory` or `disk` runs only those cases.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config/load.ts';
import { guestId } from '../src/drivers/qemu/guest.ts';
import { AgentClient } from '../src/drivers/qemu/client.ts';
import { QemuDriver } from '../src/drivers/qemu/driver.ts';
import { createLogger } from '../src/log.ts';
import type { MigrationMode } from '../src/model/index.ts';
import type { TestGuestLoad } from '../src/drivers/qemu/guest.ts';
import {
  createImage,
  diskSeqs,
  diskVerdict,
  startAgent,
  testGuestSpec,
  waitBooted,
  type TestAgent,
} from '../test/helpers/agent.ts';
import { tmpDir } from '../test/helpers/tmp.ts';

if (process.argv.includes('--netns')) {
  await import('./_migrate-netns.ts');
  process.exit(0);
}

function readTail(file: string): string {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => !line.includes('lbvm-guest: tick'))
      .slice(-25)
      .join('\n');
  } catch {
    return '(none)';
  }
}

const RUNS = Number(process.argv[2] ?? 5);
const ONLY = process.argv[3] as 'memory' | 'disk' | undefined;
const GiB = 1024 ** 3;
const { config } = loadConfig({ env: {}, cwd: tmpDir() });
const log = createLogger({ level: 'warn', format: 'json' });
const median = (values: number[]) => {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

const [a, b] = await Promise.all([startAgent('bench-a'), startAgent('bench-b')]);
const driver = new QemuDriver(
  new Map<string, AgentClient>([
    [a.host, a.client],
    [b.host, b.client],
  ]),
  log,
);
interface BenchGuest {
  name: string;
  load: TestGuestLoad;
  disk?: boolean;
}
const guests: BenchGuest[] = [
  ...(ONLY === 'disk'
    ? []
    : [
        { name: 'idle', load: { memPercent: 40, dirtyPercent: 0 } },
        { name: 'dirty30', load: { memPercent: 40, dirtyPercent: 30 } },
      ]),
  ...(ONLY === 'memory'
    ? []
    : [
        { name: 'disk-idle', load: { diskWrite: false }, disk: true },
        { name: 'disk-writing', load: {}, disk: true },
      ]),
];
const specOf = (guest: BenchGuest) =>
  testGuestSpec(guest.name, guest.load, 256, guest.disk ? [{ storage: 'local', path: `${guest.name}.raw` }] : []);
for (const guest of guests)
  if (guest.disk) await createImage(path.join(a.stateDir, 'images', `${guest.name}.raw`), 'raw', GiB);
await Promise.all(guests.map((guest) => a.client.start(specOf(guest))));
await Promise.all(guests.map((guest) => waitBooted(a, guest.name)));
process.stderr.write('guests booted; letting them fill their memory\n');
await new Promise((resolve) => setTimeout(resolve, 5000));

const location = new Map<string, TestAgent>(guests.map((guest) => [guest.name, a]));
const cases: Record<string, unknown> = {};
for (const guest of guests) {
  for (const mode of (guest.disk ? ['live'] : ['live', 'checkpoint']) as MigrationMode[]) {
    const totals: number[] = [];
    const diskBytes: number[] = [];
    let lastPrinted = 0;
    const downtimes: number[] = [];
    const bytes: number[] = [];
    const dirtyRates: number[] = [];
    let autoConverge = 0;
    let error: string | null = null;
    for (let run = 0; run < RUNS && !error; run++) {
      const from = location.get(guest.name)!;
      const to = from === a ? b : a;
      // The source's console goes with its folder when the move completes: note what it printed.
      const watch = setInterval(
        () => (lastPrinted = Math.max(lastPrinted, ...diskSeqs(from.console(guest.name)))),
        100,
      );
      const outcome = await driver
        .migrate({
          vm: guest.name,
          from: from.host,
          to: to.host,
          mode,
          downtimeLimitMs: config.migration.downtimeLimit,
          bandwidthBytesPerSec: config.migration.bandwidthBytesPerSec,
          signal: new AbortController().signal,
        })
        .catch((failure: Error) => {
          error = `run ${run + 1}: ${failure.message}`;
          const dir = path.join(from.stateDir, 'guests', guestId(guest.name));
          process.stderr.write(
            `${error}\nQEMU log:\n${readTail(path.join(dir, 'qemu.log'))}\nconsole:\n${readTail(path.join(dir, 'serial.log'))}\n`,
          );
          return null;
        })
        .finally(() => clearInterval(watch));
      if (!outcome) break;
      location.set(guest.name, to);
      totals.push(outcome.totalMs);
      if (outcome.downtimeMs !== null) downtimes.push(outcome.downtimeMs);
      bytes.push(outcome.bytesCopied);
      if (mode === 'live') {
        const status = await from.client
          .call<{ dirtyBytesPerSec: number | null; autoConverge: boolean; diskBytesCopied: number }>(
            '/v1/migrate/status',
            { name: guest.name },
          )
          .catch(() => null);
        if (guest.disk && status) diskBytes.push(status.diskBytesCopied);
        if (status?.dirtyBytesPerSec !== null && status?.dirtyBytesPerSec !== undefined)
          dirtyRates.push(status.dirtyBytesPerSec);
        if (status?.autoConverge) autoConverge++;
      }
      process.stderr.write(
        `${guest.name} ${mode} run ${run + 1}: ${outcome.totalMs} ms, downtime ${outcome.downtimeMs} ms, ${outcome.bytesCopied} bytes\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const writes = guest.disk && !error ? await verifyDisk(guest, lastPrinted) : {};
    cases[`${guest.name}.${mode}`] = {
      runs: totals.length,
      ...writes,
      ...(guest.disk ? { diskBytesCopiedMedian: diskBytes.length ? median(diskBytes) : null } : {}),
      ...(error ? { error } : {}),
      totalMsMedian: median(totals),
      downtimeMsMedian: downtimes.length ? median(downtimes) : null,
      bytesCopiedMedian: median(bytes),
      ...(mode === 'live'
        ? {
            dirtyBytesPerSecMedian: dirtyRates.length ? Math.round(median(dirtyRates)) : null,
            autoConvergeRuns: autoConverge,
          }
        : {}),
    };
  }
}

/**
 * Shuts the guest down where it is and boots it from its image there: its check of the disk's
 * records, and whether no write was lost (no gap, no repeat, nothing it had printed missing).
 */
async function verifyDisk(guest: BenchGuest, printedBefore: number) {
  const here = location.get(guest.name)!;
  const lastPrinted = Math.max(printedBefore, ...diskSeqs(here.console(guest.name)));
  await here.client.stop(guest.name);
  await here.client.start(specOf(guest));
  const deadline = Date.now() + 180_000;
  while (!diskVerdict(here.console(guest.name)) && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 250));
  const verdict = diskVerdict(here.console(guest.name));
  return {
    recordsOnDisk: verdict?.last ?? null,
    lastRecordPrinted: lastPrinted,
    noWriteLost: Boolean(verdict?.ok && verdict.last >= lastPrinted),
    ...(verdict?.ok ? {} : { diskCheck: verdict?.line ?? 'the guest printed no disk check within 180 s' }),
  };
}

for (const guest of guests)
  await location
    .get(guest.name)!
    .client.stop(guest.name)
    .catch(() => {});
await Promise.all([a.stop(), b.stop()]);
process.stdout.write(
  `${JSON.stringify({
    benchmark: 'migrate',
    guestMemMiB: 256,
    ...(ONLY === 'memory' ? {} : { localDiskBytes: GiB }),
    accel: 'tcg',
    downtimeLimitMs: config.migration.downtimeLimit,
    bandwidthBytesPerSec: config.migration.bandwidthBytesPerSec,
    cases,
  })}\n`,
);
process.exit(0);
