/**
 * `npm run bench -- headroom`: ingest at scale, with the monitor reading at the same time. The synthetic
 * cluster of `_cluster.ts` at `BENCH_HOSTS` hosts (default 1,000) × 30 VMs; each host's collector writes
 * its own round (the host and its VMs, one `writeSamples` call, as `lbvm collect` does), `BENCH_WRITERS`
 * collectors at once (default 32), into one files folder and into one InfluxDB (a real influxd started
 * here). For `BENCH_MINUTES` minutes (default 3, on the cluster's own clock, run as fast as the store
 * takes them) every host writes once while a monitor (the real Monitor, its window kept between rounds)
 * runs rounds back to back on the same store. It reports the store's sustained rate and the headroom:
 * how many hosts that rate stores in a minute (a round is late when a minute's writes take longer), and
 * half that as the size to plan for, leaving the monitor, compactions and bursts their room.
 *
 * InfluxDB runs twice (`BENCH_INFLUX_MODES`, default `packed,series`): collectors that also write each
 * round packed in one lbvm_round row (`influx`), and collectors of before that write the series only
 * (`influxSeriesOnly`, the monitor then reading them series by series): the difference is what the
 * packed row costs the writes and saves the monitor.
 *
 * One process writes for every collector here, so the client's CPU (building line protocol) is counted
 * against the store; real collectors run on their own hosts. Prints one JSON object; progress on stderr.
 */
import { performance } from 'node:perf_hooks';
import { median } from 'simple-statistics';
import { openStore } from '../src/store/index.ts';
import { startRedisServer } from '../src/util/redis-server.ts';
import { startInflux } from '../test/helpers/influx.ts';
import { tmpDir } from '../test/helpers/tmp.ts';
import { clusterRound, MINUTE_MS, writeAll, writeHistory } from './_cluster.ts';
import { benchMonitor } from './_monitor.ts';

const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const VMS_PER_HOST = Number(process.env.BENCH_VMS_PER_HOST ?? 30);
const WRITERS = Number(process.env.BENCH_WRITERS ?? 32);
const MINUTES = Number(process.env.BENCH_MINUTES ?? 3);
const HISTORY_MINUTES = 10;

/** InfluxDB with collectors that write packed rounds (lbvm_round), and with collectors of before (series only). */
const INFLUX_MODES = (process.env.BENCH_INFLUX_MODES ?? 'packed,series').split(',');

async function measure(name: string, storeUrl: string, redisUrl: string, packRounds = true) {
  const baseMs = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
  let nowMs = baseMs;
  const clock = () => nowMs;
  const history = openStore(storeUrl, { announceLate: false, requestTimeoutMs: 120_000, packRounds });
  process.stderr.write(`${name}: writing ${HISTORY_MINUTES} minutes of history...\n`);
  await writeHistory(history, { hosts: HOSTS, vmsPerHost: VMS_PER_HOST }, baseMs - HISTORY_MINUTES * MINUTE_MS, baseMs);
  await history.close();

  const { monitor, writer, close } = benchMonitor({
    storeUrl,
    redisUrl,
    prefix: `headroom-${name}`,
    id: 'headroom',
    clock,
    overrides: { 'monitor.window': `${HISTORY_MINUTES}m`, 'monitor.mode': 'report' },
    packRounds,
  });
  await monitor.round();

  const minuteMs: number[] = [];
  const roundMs: number[] = [];
  let retries = 0;
  for (let minute = 1; minute <= MINUTES; minute++) {
    nowMs = baseMs + minute * MINUTE_MS;
    const timeMs = nowMs - 1000;
    let writing = true;
    const monitorLoop = (async () => {
      while (writing) {
        const record = await monitor.round();
        roundMs.push(record.roundMs);
      }
    })();
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (next < HOSTS) {
          const host = next++;
          retries += (await writeAll(writer, clusterRound(timeMs, VMS_PER_HOST, host, 1))) - 1;
        }
      }),
    );
    minuteMs.push(performance.now() - started);
    writing = false;
    await monitorLoop;
    process.stderr.write(
      `${name}: minute ${minute}: ${HOSTS} host rounds in ${Math.round(minuteMs[minuteMs.length - 1]!)} ms\n`,
    );
  }
  await close();
  const ingestMs = median(minuteMs);
  const hostRoundsPerSecond = (HOSTS / ingestMs) * 1000;
  return {
    minuteIngestMsMedian: Math.round(ingestMs),
    minuteIngestMs: minuteMs.map(Math.round),
    hostRoundsPerSecond: Math.round(hostRoundsPerSecond),
    samplesPerSecond: Math.round(hostRoundsPerSecond * (VMS_PER_HOST + 1)),
    monitorRoundsWhileWriting: roundMs.length,
    monitorRoundMsMedian: roundMs.length ? Math.round(median(roundMs)) : null,
    writeRetries: retries,
    hostsPerMinuteAtThisRate: Math.floor(hostRoundsPerSecond * 60),
    hostsToPlanFor: Math.floor(hostRoundsPerSecond * 30),
  };
}

const redisServer = await startRedisServer({ dir: tmpDir('lbvm-bench-redis-') });
const influx = await startInflux();
try {
  const files = await measure('files', `files:${tmpDir('lbvm-bench-headroom-')}/samples`, redisServer.url);
  const influxResult = INFLUX_MODES.includes('packed')
    ? await measure('influx', influx.storeUrl('lbvm_headroom'), redisServer.url)
    : null;
  const seriesOnly = INFLUX_MODES.includes('series')
    ? await measure('influx-series-only', influx.storeUrl('lbvm_headroom_series'), redisServer.url, false)
    : null;
  process.stdout.write(
    JSON.stringify({
      bench: 'headroom',
      hosts: HOSTS,
      vmsPerHost: VMS_PER_HOST,
      writersAtOnce: WRITERS,
      minutes: MINUTES,
      files,
      influx: influxResult,
      influxSeriesOnly: seriesOnly,
    }) + '\n',
  );
} finally {
  await influx.stop();
  await redisServer.stop();
}
