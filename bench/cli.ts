/**
 * `npm run bench -- cli`: how fast `lbm` answers at scale. The synthetic cluster of `_cluster.ts` at
 * `BENCH_HOSTS` hosts (default 1,000) × `BENCH_VMS_PER_HOST` VMs (30): 30 minutes of samples in a files
 * store, a real Redis, and a monitor that has just run a round (so its snapshot is published, as on a
 * cluster with a running monitor; a round runs again before each command so the snapshot stays young).
 * Each command runs as an operator runs it — a fresh `node bin/lbm.js` process — `BENCH_RUNS` times
 * (default 5) with the code cache an untimed first run wrote (bin/code-cache.js; as every run after an
 * operator's first); medians of wall time. `coldMs`: one run with an empty cache folder, as the first
 * run after an install or a build (it writes the cache as it ends, and that counts too). Target (issue
 * #16): status, hosts, vms, plan and explain under 0.5 s at 1,000 × 30,000. `status --from-store` (one
 * run) shows what reading the window costs instead. Prints one JSON object on stdout; progress on stderr.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { median } from 'simple-statistics';
import YAML from 'yaml';
import { loadConfig } from '../src/config/load.ts';
import { createLogger } from '../src/log.ts';
import { Monitor } from '../src/monitor/daemon.ts';
import { MigrationQueue } from '../src/queue/queue.ts';
import { openStore } from '../src/store/index.ts';
import { connectRedis } from '../src/util/redis.ts';
import { startRedisServer } from '../src/util/redis-server.ts';
import { ROOT, cleanEnv } from '../test/helpers/cli.ts';
import { tmpDir } from '../test/helpers/tmp.ts';
// @ts-expect-error bin/entry.js is plain JavaScript without types
import { compiledIsFresh as entryCompiledIsFresh } from '../bin/entry.js';
import { MINUTE_MS, writeHistory } from './_cluster.ts';

const run = promisify(execFile);
const compiledIsFresh = entryCompiledIsFresh as () => boolean;
// Commands run as installed: from the bundle. Built here (quick when nothing changed), and refused when
// stale, so an edit made since the last build never has the sources measured through tsx instead.
await run('bash', [path.join(ROOT, 'deploy', 'build.sh')], { cwd: ROOT });
if (!compiledIsFresh())
  throw new Error(
    `bench cli: ${path.join(ROOT, 'dist')} is older than the sources after deploy/build.sh; not measuring tsx`,
  );
const HOSTS = Number(process.env.BENCH_HOSTS ?? 1000);
const VMS_PER_HOST = Number(process.env.BENCH_VMS_PER_HOST ?? 30);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const TARGET_MS = 500;

const dir = tmpDir('lbvm-bench-cli-');
const redisServer = await startRedisServer({ dir: path.join(dir, 'redis') });
try {
  const settings = {
    redis: { url: redisServer.url },
    store: { url: `files:${path.join(dir, 'samples')}` },
    monitor: { window: '30m', mode: 'report' },
  };
  const configFile = path.join(dir, 'lbvm.yaml');
  fs.writeFileSync(configFile, YAML.stringify(settings));
  const { config } = loadConfig({ configPath: configFile, env: {} });
  const nowMs = Date.now();
  process.stderr.write(`writing 30 minutes of ${HOSTS} hosts × ${VMS_PER_HOST} VMs...\n`);
  const writer = openStore(config.store.url);
  const samplesInWindow = await writeHistory(
    writer,
    { hosts: HOSTS, vmsPerHost: VMS_PER_HOST },
    nowMs - 30 * MINUTE_MS,
    nowMs,
  );
  await writer.close();

  const log = createLogger({ level: 'error', format: 'json' });
  const store = openStore(config.store.url);
  const redis = connectRedis(redisServer.url);
  const queue = new MigrationQueue(redis, config);
  const monitor = new Monitor({ config, log, store, redis, queue, id: 'bench' });
  monitor.lease.start();
  const first = await monitor.round();
  process.stderr.write(
    `monitor: first round ${Math.round(first.roundMs)} ms, snapshot published: ${first.publishedBytes} bytes ` +
      `(publish ${Math.round(first.publishMs ?? 0)} ms)\n`,
  );

  const commands: string[][] = [
    ['--version'],
    ['status', '--json'],
    ['hosts', '--json'],
    ['vms', '--json'],
    ['plan', '--json'],
    ['explain', 'vm-000000', '--json'],
    ['jobs', '--json'],
    ['status'],
    ['vms'],
  ];
  const cacheDir = path.join(dir, 'code-cache');
  /** Runs lbm with its code cache in `cache`; `cached`: it said it took the cache (LBVM_CODE_CACHE_DEBUG). */
  const lbm = async (args: string[], cache = cacheDir) => {
    const started = performance.now();
    const { stdout, stderr } = await run(
      process.execPath,
      [path.join(ROOT, 'bin/lbm.js'), ...args, ...(args[0] === '--version' ? [] : ['--config', configFile])],
      { env: cleanEnv({ LBVM_CACHE_DIR: cache, LBVM_CODE_CACHE_DEBUG: '1' }), maxBuffer: 512 * 2 ** 20 },
    );
    return { ms: Math.round(performance.now() - started), stdout, cached: /^code cache: accepted/m.test(stderr) };
  };
  const results: Record<string, { medianMs: number; runs: number[]; coldMs: number; source?: string }> = {};
  let warmRuns = 0;
  let warmRunsCached = 0;
  for (const args of commands) {
    await monitor.round();
    await lbm(args); // writes this command's cache
    const cold = await lbm(args, tmpDir('lbvm-bench-cold-'));
    const times: number[] = [];
    let source: string | undefined;
    for (let i = 0; i < RUNS; i++) {
      const { ms, stdout, cached } = await lbm(args);
      times.push(ms);
      warmRuns++;
      if (cached) warmRunsCached++;
      if (args.includes('--json')) source = (JSON.parse(stdout) as { source?: { kind: string } }).source?.kind;
    }
    results[args.join(' ')] = {
      medianMs: Math.round(median(times)),
      runs: times,
      coldMs: cold.ms,
      ...(source ? { source } : {}),
    };
    process.stderr.write(
      `lbm ${args.join(' ')}: median ${Math.round(median(times))} ms, cold ${cold.ms} ms${source ? ` (${source})` : ''}\n`,
    );
  }
  const cacheFiles = fs.readdirSync(cacheDir);
  const fromStore = await lbm(['status', '--json', '--from-store']);
  process.stderr.write(`lbm status --from-store: ${fromStore.ms} ms\n`);
  await monitor.lease.release();
  await queue.close();
  await store.close();
  redis.disconnect();
  // Issue 16's views: every command above but --version and jobs.
  const judged = Object.keys(results).filter((name) => name !== '--version' && name !== 'jobs --json');
  process.stdout.write(
    JSON.stringify({
      bench: 'cli',
      hosts: HOSTS,
      vms: HOSTS * VMS_PER_HOST,
      samplesInWindow,
      publishedSnapshotBytes: first.publishedBytes,
      publishMs: Math.round(first.publishMs ?? 0),
      runs: RUNS,
      // Checked again: a source edited while the bench ran makes lbm run the sources through tsx.
      compiledDist: compiledIsFresh(),
      targetMs: TARGET_MS,
      // Medians are of runs with the code cache; coldMs of one run without (bin/code-cache.js).
      codeCache: {
        warmRunsCached: `${warmRunsCached}/${warmRuns}`,
        files: cacheFiles.length,
        bytes: cacheFiles.reduce((sum, file) => sum + fs.statSync(path.join(cacheDir, file)).size, 0),
      },
      results,
      statusFromStoreMs: fromStore.ms,
      allUnderTarget: judged.every((name) => results[name]!.medianMs < TARGET_MS && results[name]!.source !== 'store'),
      allColdUnderTarget: judged.every((name) => results[name]!.coldMs < TARGET_MS),
    }) + '\n',
  );
} finally {
  await redisServer.stop();
}
