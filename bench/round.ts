/**
 * `npm run bench -- round`: one full monitor round — read a 30-minute window, build the snapshot,
 * plan, reconcile, enqueue — for 200 hosts × 4,000 VMs (samples every 60 s: 126,000 samples in the
 * window), from the files store and from InfluxDB (a real influxd started here), against a real
 * Redis. Target (issue #6): under 2 s. Reports the median of 5 rounds per backend, with the plan
 * time and the moves enqueued. Prints one JSON object on stdout; progress on stderr.
 */
import { performance } from 'node:perf_hooks';
import { median } from 'simple-statistics';
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/log.ts';
import type { Sample } from '../src/model/index.ts';
import { Monitor } from '../src/monitor/daemon.ts';
import { queueKeys } from '../src/queue/keys.ts';
import { MigrationQueue } from '../src/queue/queue.ts';
import { connectRedis } from '../src/util/redis.ts';
import { openStore, type SampleStore } from '../src/store/index.ts';
import { startRedisServer } from '../src/util/redis-server.ts';
import { startInflux } from '../test/helpers/influx.ts';
import { tmpDir } from '../test/helpers/tmp.ts';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 200);
const VMS = Number(process.env.BENCH_VMS ?? 4000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const STEP_MS = 60_000;
const WINDOW_MS = 30 * STEP_MS;
const GiB = 2 ** 30;

/** A cluster where a tenth of the hosts run hot, so the round has real moves to plan and enqueue. */
function window(nowMs: number): Sample[] {
  const samples: Sample[] = [];
  for (let step = 29; step >= 0; step--) {
    const timeMs = nowMs - step * STEP_MS - 1000;
    for (let h = 0; h < HOSTS; h++) {
      const host = `n${String(h).padStart(3, '0')}`;
      const hot = h % 10 === 0;
      const vmsHere = Array.from({ length: VMS / HOSTS }, (_, i) => h * (VMS / HOSTS) + i);
      let used = 0;
      for (const v of vmsHere) {
        const cores = hot ? 1.6 : 0.3 + (v % 5) * 0.05;
        used += cores;
        samples.push({
          kind: 'vm',
          vm: `vm-${String(v).padStart(5, '0')}`,
          host,
          timeMs,
          vcpus: 2,
          cpuUsedCores: cores,
          memBytes: 2 * GiB,
          memUsedBytes: GiB,
          memDirtyBytesPerSec: 5e6,
          state: 'running',
        });
      }
      samples.push({
        kind: 'host',
        host,
        timeMs,
        cpuCores: 32,
        cpuUsedCores: used,
        memBytes: 128 * GiB,
        memUsedBytes: (VMS / HOSTS) * 2 * GiB + 8 * GiB,
      });
    }
  }
  return samples;
}

async function measure(name: string, storeUrl: string, redisUrl: string, prefix: string) {
  const log = createLogger({ level: 'error', format: 'json' });
  const { config } = loadConfig({
    env: {},
    cwd: tmpDir(),
    overrides: {
      'store.url': storeUrl,
      'redis.url': redisUrl,
      'redis.prefix': prefix,
      'monitor.window': '30m',
      'limits.movesPerRound': 10,
      'limits.movesPerHour': 100_000,
    },
  });
  const store: SampleStore = openStore(config.store.url, { log });
  const nowMs = Date.now();
  const samples = window(nowMs);
  process.stderr.write(`${name}: writing ${samples.length} samples...\n`);
  for (let i = 0; i < samples.length; i += 50_000) await store.writeSamples(samples.slice(i, i + 50_000));
  const redis = connectRedis(redisUrl);
  const queue = new MigrationQueue(redis, config);
  const monitor = new Monitor({ config, log, store, redis, queue, id: 'bench', clock: () => nowMs });
  const roundMs: number[] = [];
  const planMs: number[] = [];
  let enqueued = 0;
  let vmsSeen = 0;
  let hostsSeen = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Each round starts from an empty queue, as a steady-state round would find it.
    await queue.queue.obliterate({ force: true });
    await redis.del(queueKeys(prefix).vmClaims);
    const started = performance.now();
    const record = await monitor.round();
    roundMs.push(performance.now() - started);
    planMs.push(record.planMs ?? 0);
    enqueued = record.enqueued.filter((e) => e.status === 'queued').length;
    vmsSeen = record.inputs.vms;
    hostsSeen = record.inputs.hosts;
    if (round === 0 && record.enqueued.length === 0)
      process.stderr.write(
        'nothing enqueued: ' +
          JSON.stringify({
            mode: record.mode,
            notes: record.notes,
            held: record.heldBack.slice(0, 5),
            moves: record.moves.length,
            unknown: record.inputs.unknownHosts.length,
          }) +
          '\n',
      );
    process.stderr.write(
      `${name}: round ${round + 1}: ${Math.round(roundMs[round]!)} ms (plan ${Math.round(planMs[round]!)} ms), ${enqueued} enqueued\n`,
    );
  }
  await monitor.lease.release();
  await queue.close();
  await store.close();
  redis.disconnect();
  return {
    samplesInWindow: samples.length,
    hosts: hostsSeen,
    vms: vmsSeen,
    roundMsMedian: Math.round(median(roundMs)),
    planMsMedian: Math.round(median(planMs)),
    enqueuedPerRound: enqueued,
    underTarget: median(roundMs) < 2000,
  };
}

const redisServer = await startRedisServer({ dir: tmpDir('lbvm-bench-redis-') });
const influx = await startInflux();
try {
  const files = await measure('files', `files:${tmpDir('lbvm-bench-files-')}/samples`, redisServer.url, 'bench-files');
  const influxResult = await measure('influx', influx.storeUrl('lbvm_bench'), redisServer.url, 'bench-influx');
  process.stdout.write(
    JSON.stringify({
      bench: 'round',
      hosts: HOSTS,
      vms: VMS,
      windowMinutes: WINDOW_MS / STEP_MS,
      rounds: ROUNDS,
      targetMs: 2000,
      files,
      influx: influxResult,
    }) + '\n',
  );
} finally {
  await influx.stop();
  await redisServer.stop();
}
