/**
 * `npm run bench -- soak [--minutes N] [--sentinel]` (or SOAK_MINUTES, SOAK_SENTINEL=1): the sim
 * cluster of 100 hosts × 2,000 VMs run by real `lbvm` processes — a monitor, 3 workers and one `lbvm
 * collect --every` per host — on a private Redis (AOF on) and a files store, for 10 minutes by
 * default, while a chaos script SIGKILLs a worker every 60 s (and starts it again) and restarts Redis
 * once, half-way. With --sentinel, Redis is a master, a replica and three sentinels, every process
 * connects through the sentinels, and half-way the master is SIGKILLed (the replica is promoted; the
 * old master comes back as its replica) in place of the restart. The stack is the demo's
 * (`DemoStack`: temporary folder, redis-server, daemons with their logs).
 *
 * Reports (one JSON object on stdout; progress on stderr):
 * - migrations: finished moves (outcome `migrated`), failed attempts, jobs re-run (started more than
 *   once: the killed workers' migrations), jobs by final state;
 * - duplicates: moves carried out twice for one job (one decision): must be 0;
 * - samples: taken by the collectors (their `--json` round results: 1 host + N VM samples a
 *   round) against those in the store (distinct host/VM/time lines); lost must be 0;
 * - peak RSS (VmHWM) of every process: the monitor, each worker slot (over its restarts), the
 *   collectors (max and median), redis-server, and this script.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { median } from 'simple-statistics';
import { DemoStack, type StackProcess } from '../src/cli/demo/stack.ts';
import { loadConfig } from '../src/config/load.ts';
import { generateSimCluster, SimDriver } from '../src/drivers/sim.ts';
import type { LbvmEvent } from '../src/model/index.ts';
import { RedisEventLog } from '../src/queue/events.ts';
import { MigrationQueue } from '../src/queue/queue.ts';
import { connectRedis } from '../src/util/redis.ts';
import { startSentinelBed, type SentinelBed } from '../src/util/redis-sentinel.ts';
import type { RedisServer } from '../src/util/redis-server.ts';

const minutesArg = process.argv.indexOf('--minutes');
const MINUTES = Number(minutesArg > 0 ? process.argv[minutesArg + 1] : (process.env.SOAK_MINUTES ?? 10));
if (!(MINUTES > 0)) {
  process.stderr.write('soak: --minutes N: expected a number of minutes > 0\n');
  process.exit(2);
}
const SENTINEL = process.argv.includes('--sentinel') || process.env.SOAK_SENTINEL === '1';
const HOSTS = 100;
const VMS = 2000;
const WORKERS = 3;
const COLLECT_EVERY = '20s';
const KILL_EVERY_MS = 60_000;
const say = (message: string) => process.stderr.write(`soak: ${message}\n`);

const stack = new DemoStack();
let bed: SentinelBed | null = null;
let server: RedisServer;
if (SENTINEL) {
  bed = await startSentinelBed({ dir: path.join(stack.dir, 'sentinel') });
  server = await bed.master();
} else {
  server = await stack.startRedis();
}
const redisConfig = bed
  ? { url: bed.target.url, prefix: 'soak', sentinels: bed.target.sentinels, name: bed.target.name }
  : { url: server.url, prefix: 'soak' };
const simSettings = { hosts: HOSTS, vms: VMS, hostCpuCores: 32, hostMem: '256GiB', speedup: 4, seed: 11, period: '4m' };
const cluster = generateSimCluster(loadConfig({ env: {}, cwd: stack.dir, overrides: { sim: simSettings } }).config.sim);
stack.writeConfig({
  // Each sim host is a logical host: its collector reports the sum of its VMs against this capacity.
  hosts: Object.fromEntries(
    cluster.hosts.map((host) => [host.name, { cpuCores: host.cpuCores, memBytes: host.memBytes }]),
  ),
  redis: redisConfig,
  store: { url: `files:${path.join(stack.dir, 'samples')}`, spoolDir: path.join(stack.dir, 'spool') },
  collect: { driver: 'sim' },
  monitor: { interval: '15s', window: '5m', lease: '15s', listen: '127.0.0.1:0' },
  limits: {
    movesPerRound: 20,
    movesPerHour: 100_000,
    migrationsPerSourceHost: 2,
    migrationsPerDestinationHost: 2,
    migrationsInCluster: 30,
    cooldown: '2m',
  },
  migration: { lockDuration: '10s', slotWait: '1s', attempts: 3, backoff: '2s' },
  sim: simSettings,
  log: { level: 'info', format: 'json' },
});
const { config } = loadConfig({ configPath: stack.configFile, env: {} });
const redis = connectRedis(config.redis);
const sim = new SimDriver({ config, redis });
await sim.cluster.define(cluster.hosts, cluster.vms, cluster.placement);
say(`stack in ${stack.dir}: ${HOSTS} hosts, ${VMS} VMs, ${MINUTES} min`);

/** Peak RSS (kB) per process name, read from /proc/PID/status (VmHWM) while they run. */
const peakRssKb = new Map<string, number>();
const watched = new Map<string, StackProcess>();
const readPeak = (name: string, pid: number | undefined) => {
  if (!pid) return;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(status.match(/^VmHWM:\s+(\d+)/m)?.[1] ?? 0);
    peakRssKb.set(name, Math.max(peakRssKb.get(name) ?? 0, kb));
  } catch {
    /* exited */
  }
};
const sampleRss = () => {
  for (const [name, entry] of watched) readPeak(name, entry.tracked.child.pid);
  readPeak('redis-server', server.process.child.pid);
  readPeak('bench', process.pid);
};
const start = (name: string, args: string[], env: Record<string, string> = {}) => {
  const entry = stack.spawnLbvm(name, args, env);
  watched.set(name, entry);
  return entry;
};

const collectors: string[] = [];
for (const host of cluster.hosts) {
  const name = `collect-${host.name}`;
  collectors.push(name);
  start(name, ['collect', '--every', COLLECT_EVERY, '--node', host.name, '--json'], {
    LBVM_COLLECT_STATE_FILE: path.join(stack.dir, 'state', `${host.name}.json`),
    LBVM_STORE_SPOOL_DIR: path.join(stack.dir, 'spool', host.name),
  });
  await sleep(150); // spread the start-up cost (and the rounds) over the interval
}
start('monitor', ['monitor']);
const workerGeneration = Array.from({ length: WORKERS }, () => 0);
const workerName = (slot: number) => `worker-${slot + 1}.${workerGeneration[slot]}`;
for (let slot = 0; slot < WORKERS; slot++) start(workerName(slot), ['worker']);

// Chaos: a worker SIGKILLed every 60 s (round robin) and started again; Redis restarted once.
const startedMs = Date.now();
const endMs = startedMs + MINUTES * 60_000;
const redisRestartAtMs = startedMs + (MINUTES * 60_000) / 2 + 10_000;
let nextKillMs = startedMs + KILL_EVERY_MS;
let kills = 0;
let redisRestarts = 0;
let failover: { promotedMs: number; firstEnqueueMs: number | null; killedAtMs: number } | null = null;
while (Date.now() < endMs) {
  await sleep(5000);
  sampleRss();
  if (Date.now() >= nextKillMs) {
    const slot = kills % WORKERS;
    const victim = watched.get(workerName(slot))!;
    readPeak(workerName(slot), victim.tracked.child.pid);
    victim.tracked.child.kill('SIGKILL');
    await victim.tracked.exited;
    watched.delete(workerName(slot));
    peakRssKb.set(
      `worker-${slot + 1}`,
      Math.max(peakRssKb.get(`worker-${slot + 1}`) ?? 0, peakRssKb.get(workerName(slot)) ?? 0),
    );
    peakRssKb.delete(workerName(slot));
    workerGeneration[slot]!++;
    start(workerName(slot), ['worker']);
    kills++;
    nextKillMs += KILL_EVERY_MS;
    say(`${Math.round((Date.now() - startedMs) / 1000)} s: killed and restarted worker ${slot + 1} (${kills} kills)`);
  }
  if (redisRestarts === 0 && failover === null && Date.now() >= redisRestartAtMs) {
    readPeak('redis-server', server.process.child.pid);
    if (bed) {
      say(`${Math.round((Date.now() - startedMs) / 1000)} s: SIGKILL of the Redis master (Sentinel failover)`);
      const killedAtMs = Date.now();
      const old = await bed.killMaster();
      server = await bed.waitForPromotion(old);
      failover = { promotedMs: Date.now() - killedAtMs, firstEnqueueMs: null, killedAtMs };
      say(
        `replica on port ${server.port} promoted after ${failover.promotedMs} ms; the old master comes back as its replica`,
      );
      await old.start();
    } else {
      say(`${Math.round((Date.now() - startedMs) / 1000)} s: restarting Redis`);
      await server.restart();
      redisRestarts++;
    }
  }
}

// Stop the collectors (each finishes its round), let the migrations in flight end, then count.
say('stopping the collectors');
sampleRss();
await Promise.all(collectors.map((name) => watched.get(name)!.tracked.stop(15_000)));
const queue = new MigrationQueue(redis, config);
const drainUntil = Date.now() + 90_000;
while ((await queue.inFlight()).some((job) => job.state === 'active') && Date.now() < drainUntil) await sleep(2000);
sampleRss();
for (let slot = 0; slot < WORKERS; slot++) {
  peakRssKb.set(
    `worker-${slot + 1}`,
    Math.max(peakRssKb.get(`worker-${slot + 1}`) ?? 0, peakRssKb.get(workerName(slot)) ?? 0),
  );
  peakRssKb.delete(workerName(slot));
}

// Migrations and duplicates, from the event stream.
const events: LbvmEvent[] = (await new RedisEventLog(redis, 'soak').read({ count: 1_000_000 })).map(
  (stored) => stored.event,
);
const migratedByJob = new Map<string, number>();
for (const event of events) {
  if (event.type === 'migration.finished' && event.detail?.outcome === 'migrated')
    migratedByJob.set(event.jobId!, (migratedByJob.get(event.jobId!) ?? 0) + 1);
}
const duplicates = [...migratedByJob.values()].reduce((sum, count) => sum + count - 1, 0);
// Jobs started more than once: attempts cut short by a killed worker (or Redis away) and re-run.
const startsByJob = new Map<string, number>();
for (const event of events)
  if (event.type === 'migration.started') startsByJob.set(event.jobId!, (startsByJob.get(event.jobId!) ?? 0) + 1);
const rerunJobs = [...startsByJob.values()].filter((starts) => starts > 1).length;
const count = (type: LbvmEvent['type']) => events.filter((event) => event.type === type).length;
if (failover) {
  const after = events
    .filter((event) => event.type === 'migration.queued' && event.timeMs > failover!.killedAtMs)
    .map((event) => event.timeMs);
  failover.firstEnqueueMs = after.length > 0 ? Math.min(...after) - failover.killedAtMs : null;
}
const jobCounts = await queue.queue.getJobCounts('waiting', 'delayed', 'active', 'completed', 'failed');

// Samples: taken (collectors' round results) against stored (distinct lines in the files store).
let taken = 0;
let rounds = 0;
let spoolBytesAtEnd = 0;
let rejected = 0;
let droppedFromSpool = 0;
for (const name of collectors) {
  let lastSpoolBytes = 0;
  for (const line of stack.logOf(name).split('\n')) {
    if (!line.startsWith('{"node"')) continue;
    const result = JSON.parse(line) as {
      vmSamples: number;
      delivery: { spoolBytes: number; rejected: number; dropped: number };
    };
    rounds++;
    taken += 1 + result.vmSamples;
    rejected += result.delivery.rejected;
    droppedFromSpool += result.delivery.dropped;
    lastSpoolBytes = result.delivery.spoolBytes;
  }
  spoolBytesAtEnd += lastSpoolBytes;
}
const stored = new Set<string>();
let storedLines = 0;
const walk = (dir: string) => {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'events') walk(full);
    } else if (entry.name.endsWith('.jsonl')) {
      for (const line of fs.readFileSync(full, 'utf8').split('\n')) {
        if (!line) continue;
        const sample = JSON.parse(line.slice(line.indexOf('{'))) as {
          kind: string;
          host: string;
          vm?: string;
          timeMs: number;
        };
        storedLines++;
        stored.add(`${sample.kind}\0${sample.host}\0${sample.vm ?? ''}\0${sample.timeMs}`);
      }
    }
  }
};
walk(path.join(stack.dir, 'samples'));

const mib = (kb: number | undefined) => Math.round(((kb ?? 0) / 1024) * 10) / 10;
const collectorPeaks = collectors.map((name) => peakRssKb.get(name) ?? 0);
const monitorLog = stack.logOf('monitor');
const result = {
  benchmark: 'soak',
  minutes: MINUTES,
  hosts: HOSTS,
  vms: VMS,
  workers: WORKERS,
  redis: SENTINEL ? 'sentinel' : 'single',
  chaos: {
    workerKills: kills,
    redisRestarts,
    failover: failover && { promotedMs: failover.promotedMs, killToFirstEnqueueMs: failover.firstEnqueueMs },
  },
  migrations: {
    done: [...migratedByJob.keys()].length,
    alreadyThere: events.filter(
      (event) => event.type === 'migration.finished' && event.detail?.outcome === 'already-there',
    ).length,
    failedAttempts: count('migration.failed'),
    lockLostAttempts: events.filter((event) => event.type === 'migration.failed' && event.detail?.lockLost === true)
      .length,
    dropped: count('migration.dropped'),
    rerunJobs,
    queued: count('migration.queued'),
    jobs: jobCounts,
  },
  duplicates,
  monitorRounds: (monitorLog.match(/"msg":"round (enforce|report|paused|halted)/g) ?? []).length,
  samples: {
    rounds,
    taken,
    stored: stored.size,
    lost: Math.max(0, taken - stored.size),
    duplicateLines: storedLines - stored.size,
    rejected,
    droppedFromSpool,
    spoolBytesAtEnd,
  },
  peakRssMiB: {
    monitor: mib(peakRssKb.get('monitor')),
    ...Object.fromEntries(
      Array.from({ length: WORKERS }, (_, slot) => [`worker-${slot + 1}`, mib(peakRssKb.get(`worker-${slot + 1}`))]),
    ),
    collectorMax: mib(Math.max(...collectorPeaks)),
    collectorMedian: mib(median(collectorPeaks)),
    redisServer: mib(peakRssKb.get('redis-server')),
    bench: mib(peakRssKb.get('bench')),
  },
  leftoverProcesses: 0,
};
await queue.close();
redis.disconnect();
// The daemons first, while Redis is there for their goodbyes; then the Sentinel set-up (its files
// are in the stack's folder, so teardown would count its servers as leftovers).
for (const entry of watched.values()) await entry.tracked.stop(8000);
result.leftoverProcesses = await stack.teardown(async () => {
  await bed?.stop();
});
if (process.env.SOAK_KEEP) say(`kept ${stack.dir}`);
else stack.removeFolder();
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
