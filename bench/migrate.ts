/**
 * `npm run bench -- migrate [runs]`: real TCG guests of 256 MiB moved between two `lbvm agent`s on
 * this machine through the qemu driver, idle and with 30% of their memory rewritten every second,
 * in live and checkpoint modes. Each case runs `runs` times (default 5, the guest going back and
 * forth) and reports medians: total time, downtime (QMP's `downtime` for live; stop-to-resume for
 * checkpoint) and bytes copied, plus the dirty rate QEMU measured before each live migration and
 * whether auto-converge was switched on. Defaults of the config: downtime limit 300 ms, 1 GiB/s.
 * Each guest holds 40% of its RAM in a tmpfs file (more makes the 256 MiB test guest run out of
 * memory); the dirty guest rewrites 30% of its RAM (77 MiB) each second with random bytes.
 * `--netns`: on shaped links between network namespaces, with and without TLS (bench/_migrate-netns.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config/load.ts';
import { guestId } from '../src/drivers/qemu/guest.ts';
import { AgentClient } from '../src/drivers/qemu/client.ts';
import { QemuDriver } from '../src/drivers/qemu/driver.ts';
import { createLogger } from '../src/log.ts';
import type { MigrationMode } from '../src/model/index.ts';
import { startAgent, testGuestSpec, waitBooted, type TestAgent } from '../test/helpers/agent.ts';
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
const guests = [
  { name: 'idle', load: { memPercent: 40, dirtyPercent: 0 } },
  { name: 'dirty30', load: { memPercent: 40, dirtyPercent: 30 } },
];
await Promise.all(guests.map((guest) => a.client.start(testGuestSpec(guest.name, guest.load, 256))));
await Promise.all(guests.map((guest) => waitBooted(a, guest.name)));
process.stderr.write('guests booted; letting them fill their memory\n');
await new Promise((resolve) => setTimeout(resolve, 5000));

const location = new Map<string, TestAgent>(guests.map((guest) => [guest.name, a]));
const cases: Record<string, unknown> = {};
for (const guest of guests) {
  for (const mode of ['live', 'checkpoint'] as MigrationMode[]) {
    const totals: number[] = [];
    const downtimes: number[] = [];
    const bytes: number[] = [];
    const dirtyRates: number[] = [];
    let autoConverge = 0;
    let error: string | null = null;
    for (let run = 0; run < RUNS && !error; run++) {
      const from = location.get(guest.name)!;
      const to = from === a ? b : a;
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
        });
      if (!outcome) break;
      location.set(guest.name, to);
      totals.push(outcome.totalMs);
      if (outcome.downtimeMs !== null) downtimes.push(outcome.downtimeMs);
      bytes.push(outcome.bytesCopied);
      if (mode === 'live') {
        const status = await from.client
          .call<{ dirtyBytesPerSec: number | null; autoConverge: boolean }>('/v1/migrate/status', { name: guest.name })
          .catch(() => null);
        if (status?.dirtyBytesPerSec !== null && status?.dirtyBytesPerSec !== undefined)
          dirtyRates.push(status.dirtyBytesPerSec);
        if (status?.autoConverge) autoConverge++;
      }
      process.stderr.write(
        `${guest.name} ${mode} run ${run + 1}: ${outcome.totalMs} ms, downtime ${outcome.downtimeMs} ms, ${outcome.bytesCopied} bytes\n`,
      );
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    cases[`${guest.name}.${mode}`] = {
      runs: totals.length,
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
    accel: 'tcg',
    downtimeLimitMs: config.migration.downtimeLimit,
    bandwidthBytesPerSec: config.migration.bandwidthBytesPerSec,
    cases,
  })}\n`,
);
process.exit(0);
