/**
 * `npm run bench -- round`: the monitor's round — read the window, build the snapshot, plan, reconcile,
 * enqueue — on the synthetic cluster of `_cluster.ts` (30 VMs a host, a sample a minute) at 200, 1,000
 * and 3,000 hosts (`BENCH_SIZES`, `BENCH_VMS_PER_HOST`), from the files store and from InfluxDB (a real
 * influxd started here), against a real Redis. For each size and store it writes the window's history
 * (`BENCH_WINDOW`, default 30m), then starts one monitor process (`_round-child.ts`) that runs the first
 * round (a whole read of the window) and `BENCH_ROUNDS` more (default 5), each after one new minute of
 * samples was stored. Targets (issue #16): the median round under 1 s at 1,000 × 30,000 on both stores,
 * and that process's RSS under 1 GiB. Prints one JSON object on stdout; progress on stderr.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { median } from 'simple-statistics';
import { MONITOR_NODE_FLAGS } from '../src/monitor/node-flags.ts';
import { parseDurationMs } from '../src/units.ts';
import { openStore } from '../src/store/index.ts';
import { startRedisServer } from '../src/util/redis-server.ts';
import { startInflux } from '../test/helpers/influx.ts';
import { tmpDir } from '../test/helpers/tmp.ts';
import { MINUTE_MS, writeHistory } from './_cluster.ts';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
// The monitor runs as deployed: bundled by esbuild (as deploy/build.sh bundles lbvm), not through tsx,
// whose keepNames wraps every closure in a naming call (8-10% of a plan at 1,000 hosts).
const childScript = path.join(here, '..', 'dist', 'bench', '_round-child.mjs');
await build({
  entryPoints: [path.join(here, '_round-child.ts')],
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  outfile: childScript,
  logLevel: 'warning',
});
const SIZES = (process.env.BENCH_SIZES ?? '200,1000,3000').split(',').map(Number);
const VMS_PER_HOST = Number(process.env.BENCH_VMS_PER_HOST ?? 30);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WINDOW = process.env.BENCH_WINDOW ?? '30m';
const WINDOW_MS = parseDurationMs(WINDOW) ?? NaN;
if (Number.isNaN(WINDOW_MS)) throw new Error(`BENCH_WINDOW=${WINDOW}: expected a duration such as 30m or 2h`);
const STORES = (process.env.BENCH_STORES ?? 'files,influx').split(',');
const TARGET_MS = 1000;
// The node options the monitor runs with (its systemd unit, the demo); BENCH_MONITOR_FLAGS=0 leaves them out.
const MONITOR_FLAGS = process.env.BENCH_MONITOR_FLAGS === '0' ? [] : [...MONITOR_NODE_FLAGS];
const TARGET_RSS_MIB = 1024;
const TARGET_HOSTS = 1000;

interface ChildRecord {
  /** round() from call to return: the round, publishing and recording it. */
  wallMs: number;
  /** CPU time of the monitor process during that call, ms. */
  cpuMs: number;
  /** The longest the round held the event loop (its lease renewals wait that long), ms. */
  loopHeldMs: number;
  /** The monitor still held the lease under the round's token after the round. */
  leaseKept: boolean;
  /** The round alone: read + snapshot + plan + enqueue (the monitor's roundMs). */
  roundMs: number;
  publishMs: number;
  publishedBytes: number;
  readMs: number;
  snapshotMs: number;
  planMs: number;
  enqueueMs: number;
  full: boolean;
  items: number;
  hosts: number;
  vms: number;
  queued: number;
}

async function measure(store: 'files' | 'influx', hosts: number, storeUrl: string, redisUrl: string) {
  const nowMs = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
  // History is loaded in bulk: it is not late news for a monitor that has not started yet.
  const writer = openStore(storeUrl, { announceLate: false, requestTimeoutMs: 120_000 });
  const cluster = { hosts, vmsPerHost: VMS_PER_HOST };
  process.stderr.write(`${store} ${hosts} hosts: writing ${WINDOW} of history...`);
  let shown = 0;
  const samplesInWindow = await writeHistory(writer, cluster, nowMs - WINDOW_MS, nowMs, (done, of) => {
    if (done / of >= shown + 0.25) process.stderr.write(` ${Math.round((shown += 0.25) * 100)}%`);
  });
  await writer.close();
  process.stderr.write(` ${samplesInWindow} samples\n`);
  // The monitor's node options as deployed, and BENCH_CHILD_NODE_ARGS (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
  const nodeArgs = [...MONITOR_FLAGS, ...(process.env.BENCH_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  const { stdout, stderr } = await run(process.execPath, [...nodeArgs, childScript], {
    env: {
      ...process.env,
      BENCH_HOSTS: String(hosts),
      BENCH_VMS_PER_HOST: String(VMS_PER_HOST),
      BENCH_ROUNDS: String(ROUNDS),
      BENCH_STORE_URL: storeUrl,
      BENCH_REDIS_URL: redisUrl,
      BENCH_PREFIX: `bench-${store}-${hosts}`,
      BENCH_WINDOW: WINDOW,
      BENCH_NOW_MS: String(nowMs),
    },
    maxBuffer: 64 * 2 ** 20,
  });
  process.stderr.write(stderr);
  const child = JSON.parse(stdout) as { records: ChildRecord[]; rssMaxMiB: number; peakRssMiB: number };
  const [first, ...rest] = child.records;
  const med = (pick: (r: ChildRecord) => number) => Math.round(median(rest.map(pick)));
  return {
    samplesInWindow,
    hosts: first!.hosts,
    vms: first!.vms,
    firstRound: {
      ms: Math.round(first!.roundMs),
      readMs: Math.round(first!.readMs),
      snapshotMs: Math.round(first!.snapshotMs),
      planMs: Math.round(first!.planMs),
      full: first!.full,
      loopHeldMs: Math.round(first!.loopHeldMs),
      leaseKept: first!.leaseKept,
    },
    roundMsMedian: med((r) => r.roundMs),
    publishMsMedian: med((r) => r.publishMs),
    publishedBytes: rest[rest.length - 1]?.publishedBytes ?? 0,
    wallMsMedian: med((r) => r.wallMs),
    // The monitor process's own CPU during the round call (publish included), without the store server's:
    // steadier than wall time on a shared machine.
    monitorCpuMsMedian: med((r) => r.cpuMs),
    readMsMedian: med((r) => r.readMs),
    snapshotMsMedian: med((r) => r.snapshotMs),
    planMsMedian: med((r) => r.planMs),
    enqueueMsMedian: med((r) => r.enqueueMs),
    itemsReadMedian: med((r) => r.items),
    loopHeldMsMedian: med((r) => r.loopHeldMs),
    roundsLostLease: child.records.filter((r) => !r.leaseKept).length,
    roundsAllIncremental: rest.every((r) => !r.full),
    enqueuedPerRound: med((r) => r.queued),
    roundMs: rest.map((r) => Math.round(r.roundMs)),
    monitorRssMiB: child.rssMaxMiB,
    monitorPeakRssMiB: child.peakRssMiB,
  };
}

const redisServer = await startRedisServer({ dir: tmpDir('lbvm-bench-redis-') });
const influx = await startInflux();
try {
  type Result = Awaited<ReturnType<typeof measure>> | null;
  const sizes: Record<string, { files: Result; influx: Result }> = {};
  for (const hosts of SIZES) {
    const files = STORES.includes('files')
      ? await measure('files', hosts, `files:${tmpDir('lbvm-bench-files-')}/samples`, redisServer.url)
      : null;
    const influxResult = STORES.includes('influx')
      ? await measure('influx', hosts, influx.storeUrl(`lbvm_bench_${hosts}`), redisServer.url)
      : null;
    sizes[String(hosts)] = { files, influx: influxResult };
  }
  const atTarget = sizes[String(TARGET_HOSTS)];
  process.stdout.write(
    JSON.stringify({
      bench: 'round',
      vmsPerHost: VMS_PER_HOST,
      windowMinutes: WINDOW_MS / MINUTE_MS,
      rounds: ROUNDS,
      monitorNodeFlags: MONITOR_FLAGS,
      targetMs: TARGET_MS,
      targetRssMiB: TARGET_RSS_MIB,
      sizes,
      meetsTarget: atTarget
        ? {
            files:
              atTarget.files &&
              atTarget.files.roundMsMedian < TARGET_MS &&
              atTarget.files.monitorRssMiB < TARGET_RSS_MIB,
            influx:
              atTarget.influx &&
              atTarget.influx.roundMsMedian < TARGET_MS &&
              atTarget.influx.monitorRssMiB < TARGET_RSS_MIB,
          }
        : null,
    }) + '\n',
  );
} finally {
  await influx.stop();
  await redisServer.stop();
}
