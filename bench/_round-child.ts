/**
 * One monitor process for `bench round` (round.ts starts it once per size and store, after writing the
 * window's history): the first round, which reads the whole window, then BENCH_ROUNDS rounds, each
 * after one more minute of the cluster's samples was stored, as collectors would store it. The
 * monitor runs on the cluster's own clock (a minute a round). Prints one JSON line on stdout.
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { RoundRecord } from '../src/monitor/daemon.ts';
import { queueKeys } from '../src/queue/keys.ts';
import { clusterRound, MINUTE_MS, writeAll } from './_cluster.ts';
import { benchMonitor } from './_monitor.ts';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`bench/_round-child.ts: ${name} is not set`);
  return value;
};
const hosts = Number(env('BENCH_HOSTS'));
const vmsPerHost = Number(env('BENCH_VMS_PER_HOST'));
const rounds = Number(env('BENCH_ROUNDS'));
const storeUrl = env('BENCH_STORE_URL');
const redisUrl = env('BENCH_REDIS_URL');
const prefix = env('BENCH_PREFIX');
const window = env('BENCH_WINDOW');
let nowMs = Number(env('BENCH_NOW_MS'));

const clock = () => nowMs;
const { monitor, writer, redis, queue, close } = benchMonitor({
  storeUrl,
  redisUrl,
  prefix,
  id: 'bench',
  clock,
  overrides: { 'monitor.window': window, 'limits.movesPerRound': 10, 'limits.movesPerHour': 100_000 },
});
const records: (RoundRecord & { wallMs: number; cpuMs: number; loopHeldMs: number; leaseKept: boolean })[] = [];
let rssMaxBytes = 0;
for (let round = 0; round <= rounds; round++) {
  if (round > 0) {
    nowMs += MINUTE_MS;
    const samples = clusterRound(nowMs - 1000, vmsPerHost, 0, hosts);
    await writeAll(writer, samples);
  }
  // Each round starts from an empty queue, as a steady-state round would find it.
  await queue.queue.obliterate({ force: true });
  await redis.del(queueKeys(prefix).vmClaims);
  // The longest the round held the event loop: the lease is renewed from a timer, which must run.
  const held = monitorEventLoopDelay({ resolution: 10 });
  held.enable();
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const record = await monitor.round();
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  held.disable();
  // Still the leader with the token the round began with: no other token was taken meanwhile.
  await monitor.lease.tick();
  const leaseKept = record.fencingToken !== null && monitor.lease.token === record.fencingToken;
  records.push({ ...record, wallMs, cpuMs: (cpu.user + cpu.system) / 1000, loopHeldMs: held.max / 1e6, leaseKept });
  rssMaxBytes = Math.max(rssMaxBytes, process.memoryUsage().rss);
  const queued = record.enqueued.filter((e) => e.status === 'queued').length;
  process.stderr.write(
    `  round ${round}: ${Math.round(record.roundMs)} ms, publish ${Math.round(record.publishMs ?? 0)} ms (read ${Math.round(record.readMs ?? 0)}, snapshot ` +
      `${Math.round(record.snapshotMs ?? 0)}, plan ${Math.round(record.planMs ?? 0)}, enqueue ` +
      `${Math.round(record.enqueueMs ?? 0)}; event loop held ${Math.round(held.max / 1e6)} ms at most), ` +
      `${record.inputs.window?.full ? 'whole window' : 'incremental'}, ` +
      `${queued} enqueued${leaseKept ? '' : ', LEASE LOST'}${record.inputs.window?.reasons.length ? `; ${record.inputs.window.reasons.join('; ')}` : ''}\n`,
  );
}
await close();
process.stdout.write(
  JSON.stringify({
    records: records.map((r) => ({
      wallMs: r.wallMs,
      cpuMs: r.cpuMs,
      loopHeldMs: r.loopHeldMs,
      leaseKept: r.leaseKept,
      roundMs: r.roundMs,
      publishMs: r.publishMs ?? 0,
      publishedBytes: r.publishedBytes ?? 0,
      readMs: r.readMs ?? 0,
      snapshotMs: r.snapshotMs ?? 0,
      planMs: r.planMs ?? 0,
      enqueueMs: r.enqueueMs ?? 0,
      full: r.inputs.window?.full ?? true,
      items: r.inputs.window?.items ?? 0,
      hosts: r.inputs.hosts,
      vms: r.inputs.vms,
      queued: r.enqueued.filter((e) => e.status === 'queued').length,
    })),
    rssMaxMiB: Math.round(rssMaxBytes / 2 ** 20),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  }) + '\n',
);
