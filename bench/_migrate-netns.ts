/**
 * `npm run bench -- migrate --netns [--runs N] [--rates 1gbit,10gbit] [--loads 0,10,30,60]
 * [--modes live,checkpoint] [--tls off,on] [--downtime-limit 50ms]`: migrations on shaped links.
 *
 * Two `lbvm agent` hosts, each in its own network namespace on a bridge (src/util/netns.ts, links
 * shaped by tc to each rate in turn); a TCG guest of 256 MiB holding 62% of its RAM in random bytes
 * and rewriting `load`% of its RAM each second, moved back and forth `runs` times per case by the qemu
 * driver, live and checkpoint, with TLS (the cluster's certificates from deploy/certs.sh: mutual TLS
 * control port, TLS migration stream, checkpoint copied over HTTPS) and without (plain HTTP, stream in
 * the clear). The migration's bandwidth cap is the link's rate, as an operator would set it.
 *
 * Each case reports medians of total time (the driver's, from prepare to commit), downtime (QMP's,
 * live; stop to resume, checkpoint), bytes copied and the dirty rate QEMU measured, and beside them
 * what the policies' cost model (policies/cost.ts, the settings the monitor would use with this
 * bandwidth) predicts for that guest: `model.ratio` is measured ÷ predicted, `model.within30` whether
 * it is within ±30%. Prints one JSON object.
 */
import os from 'node:os';
import path from 'node:path';
import { migrationCost } from '../policies/cost.ts';
import { DEFAULT_SETTINGS } from '../policies/settings.ts';
import { parseDurationMs } from '../src/units.ts';
import type { AgentClient } from '../src/drivers/qemu/client.ts';
import { QemuDriver } from '../src/drivers/qemu/driver.ts';
import { createLogger } from '../src/log.ts';
import type { MigrationMode } from '../src/model/index.ts';
import { makeClusterCerts } from '../src/util/certs.ts';
import { createNetnsCluster, parseRate } from '../src/util/netns.ts';
import { startAgent, testGuestSpec, waitBooted, type TestAgent } from '../test/helpers/agent.ts';
import { tmpDir } from '../test/helpers/tmp.ts';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] ? process.argv[at + 1]! : fallback;
}
const list = (name: string, fallback: string) => option(name, fallback).split(',').filter(Boolean);

const RUNS = Number(option('runs', '3'));
const RATES = list('rates', '1gbit,10gbit');
const LOADS = list('loads', '0,10,30,60').map(Number);
const MODES = list('modes', 'live,checkpoint') as MigrationMode[];
const TLS = list('tls', 'off,on').map((value) => value === 'on');
const DOWNTIME_LIMIT_MS = parseDurationMs(option('downtime-limit', '50ms'));
const GUEST_MEM_MIB = 256;
const HELD_PERCENT = 62;
const CASE_TIMEOUT_MS = 180_000;
if (!(RUNS >= 1) || DOWNTIME_LIMIT_MS === null || RATES.some((rate) => parseRate(rate) === null)) {
  process.stderr.write('usage: npm run bench -- migrate --netns [--runs N] [--rates 1gbit,10gbit] ...\n');
  process.exit(2);
}

const median = (values: number[]) => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const say = (text: string) => process.stderr.write(`${text}\n`);

const net = await createNetnsCluster({ hosts: ['a', 'b'], rate: RATES[0] });
const certs = await makeClusterCerts(path.join(tmpDir('lbvm-bench-certs-'), 'tls'), {
  agents: Object.fromEntries(net.hosts.map((host) => [host.name, [host.address]])),
  clients: ['worker'],
});
const log = createLogger({ level: 'warn', format: 'json' });
const cases: Record<string, Record<string, unknown>> = {};
/** What the cost model is given for each case, as the monitor would know it. */
const inputs: Record<
  string,
  { tls: boolean; mode: MigrationMode; bandwidthBytesPerSec: number; dirtyBytesPerSec: number }
> = {};
const startedMs = Date.now();
// The machine is shared: its load at the start and the end says how far to trust the times.
const loadAtStart = os.loadavg()[0]!;

try {
  for (const tls of TLS) {
    const [a, b] = await Promise.all(
      ['a', 'b'].map((host) => startAgent(host, tls ? { netns: net, certs } : { netns: net })),
    );
    const driver = new QemuDriver(
      new Map<string, AgentClient>([
        ['a', a!.client],
        ['b', b!.client],
      ]),
      log,
    );
    try {
      for (const load of LOADS) {
        const name = `guest-${load}`;
        await a!.client.start(
          testGuestSpec(name, { memPercent: HELD_PERCENT, dirtyPercent: load, fill: 'random' }, GUEST_MEM_MIB),
        );
        await waitBooted(a!, name);
        // Filling 62% of RAM with random bytes takes the TCG guest a few seconds.
        await new Promise((resolve) => setTimeout(resolve, 8000));
        let where: TestAgent = a!;
        // Live cases first: a guest restored from a checkpoint measures its dirty rate oddly low
        // afterwards (see bench/README.md), and the live cases need the real one.
        for (const mode of MODES) {
          for (const rate of RATES) {
            await net.shape(rate);
            const bandwidthBytesPerSec = Math.round(parseRate(rate)! / 8);
            const key = `${tls ? 'tls' : 'clear'}.${rate}.dirty${load}.${mode}`;
            const totals: number[] = [];
            const downtimes: number[] = [];
            const bytes: number[] = [];
            const dirtyRates: number[] = [];
            let error: string | null = null;
            for (let run = 0; run < RUNS && !error; run++) {
              const from = where;
              const to = from === a ? b! : a!;
              const outcome = await driver
                .migrate({
                  vm: name,
                  from: from.host,
                  to: to.host,
                  mode,
                  downtimeLimitMs: DOWNTIME_LIMIT_MS,
                  bandwidthBytesPerSec,
                  signal: AbortSignal.timeout(CASE_TIMEOUT_MS),
                })
                .catch((failure: Error) => {
                  error = `run ${run + 1}: ${failure.message}`;
                  return null;
                });
              if (!outcome) break;
              where = to;
              totals.push(outcome.totalMs);
              if (outcome.downtimeMs !== null) downtimes.push(outcome.downtimeMs);
              bytes.push(outcome.bytesCopied);
              // The dirty rate the source measured before a live migration (the model's input; the
              // monitor gets it from the samples). Checkpoint: the guest is stopped, nothing is dirtied.
              let dirty = 0;
              if (mode === 'live') {
                const status = await from.client
                  .call<{ dirtyBytesPerSec: number | null }>('/v1/migrate/status', { name })
                  .catch(() => null);
                dirty = status?.dirtyBytesPerSec ?? 0;
                dirtyRates.push(dirty);
              }
              say(
                `${key} run ${run + 1}: ${outcome.totalMs} ms, downtime ${outcome.downtimeMs} ms, ` +
                  `${outcome.bytesCopied} bytes, dirty ${Math.round(dirty / 2 ** 20)} MiB/s`,
              );
              await new Promise((resolve) => setTimeout(resolve, 500));
            }
            if (error) say(`${key}: ${error}`);
            const measured = median(totals);
            inputs[key] = { tls, mode, bandwidthBytesPerSec, dirtyBytesPerSec: median(dirtyRates) ?? 0 };
            cases[key] = {
              runs: totals.length,
              ...(error ? { error } : {}),
              totalMsMedian: measured,
              downtimeMsMedian: median(downtimes),
              bytesCopiedMedian: median(bytes),
              ...(mode === 'live' ? { dirtyBytesPerSecMedian: median(dirtyRates) } : {}),
              // Idle live: total ÷ (memory ÷ bandwidth), the 1.5× target.
              ...(load === 0 && mode === 'live' && measured !== null
                ? {
                    totalOverMemOverBandwidth: Number(
                      (measured / (((GUEST_MEM_MIB * 2 ** 20) / bandwidthBytesPerSec) * 1000)).toFixed(2),
                    ),
                  }
                : {}),
            };
          }
        }
        await where.client.stop(name).catch(() => {});
      }
    } finally {
      await Promise.all([a!.stop(), b!.stop()]);
    }
  }
} finally {
  await net.teardown();
}

// The cost model beside each case. The one thing it is told about this machine is what one migration
// stream carries here (migration.streamBytesPerSec, CPU-bound: TCG guests, 2 shared cores), taken from
// the idle live case on the 10 Gbit/s link of the same TLS setting (the calibration cases, marked), as
// an operator would from this bench on their hosts.
const streamBytesPerSec: Record<string, number> = {};
for (const tls of TLS) {
  const calibration = cases[`${tls ? 'tls' : 'clear'}.10gbit.dirty0.live`];
  const totalMs = calibration?.totalMsMedian as number | null | undefined;
  const copied = calibration?.bytesCopiedMedian as number | null | undefined;
  if (totalMs && copied && totalMs > DEFAULT_SETTINGS.cost.setupMs)
    streamBytesPerSec[tls ? 'tls' : 'clear'] = Math.round(copied / ((totalMs - DEFAULT_SETTINGS.cost.setupMs) / 1000));
}
for (const [key, input] of Object.entries(inputs)) {
  const measured = cases[key]!.totalMsMedian as number | null;
  const cost = migrationCost(GUEST_MEM_MIB * 2 ** 20, input.dirtyBytesPerSec, 0, 0, {
    ...DEFAULT_SETTINGS.cost,
    bandwidthBytesPerSec: input.bandwidthBytesPerSec,
    streamBytesPerSec: streamBytesPerSec[input.tls ? 'tls' : 'clear'] ?? 0,
    mode: input.mode,
  });
  const ratio = measured !== null ? measured / cost.durationMs : null;
  cases[key]!.model = {
    predictedMs: cost.durationMs,
    ratio: ratio === null ? null : Number(ratio.toFixed(2)),
    within30: ratio !== null && Math.abs(ratio - 1) <= 0.3,
    ...(/\.10gbit\.dirty0\.live$/.test(key) ? { calibration: true } : {}),
  };
}

const all = Object.values(cases) as unknown as { model: { within30: boolean }; error?: string }[];
process.stdout.write(
  `${JSON.stringify({
    benchmark: 'migrate',
    netns: true,
    guestMemMiB: GUEST_MEM_MIB,
    heldPercent: HELD_PERCENT,
    accel: 'tcg',
    downtimeLimitMs: DOWNTIME_LIMIT_MS,
    runsPerCase: RUNS,
    bandwidthCap: 'the link rate',
    costModel: { ...DEFAULT_SETTINGS.cost, streamBytesPerSec },
    modelWithin30: `${all.filter((entry) => entry.model.within30).length}/${all.length}`,
    failedCases: all.filter((entry) => entry.error).length,
    durationS: Math.round((Date.now() - startedMs) / 1000),
    loadAverage1m: {
      start: Number(loadAtStart.toFixed(1)),
      end: Number(os.loadavg()[0]!.toFixed(1)),
      cores: os.cpus().length,
    },
    cases,
  })}\n`,
);
process.exit(0);
