/**
 * `npm run bench -- cli`: how fast `lbm` answers on a 200-host, 4,000-VM cluster (30 minutes of
 * samples every 60 s in a files store: 126,000 samples; a real Redis). Each command runs as an
 * operator runs it — a fresh `node bin/lbm.js` process — 5 times; medians of wall time. Target
 * (issue #7): under 1 s. Prints one JSON object on stdout; progress on stderr.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { median } from 'simple-statistics';
import YAML from 'yaml';
import type { Sample } from '../src/model/index.ts';
import { openStore } from '../src/store/index.ts';
import { startRedisServer } from '../src/util/redis-server.ts';
import { ROOT, cleanEnv } from '../test/helpers/cli.ts';
import { tmpDir } from '../test/helpers/tmp.ts';

const run = promisify(execFile);
const HOSTS = 200;
const VMS = 4000;
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const GiB = 2 ** 30;

const dir = tmpDir('lbvm-bench-cli-');
const redis = await startRedisServer({ dir: path.join(dir, 'redis') });
try {
  const storeUrl = `files:${path.join(dir, 'samples')}`;
  const configFile = path.join(dir, 'lbvm.yaml');
  fs.writeFileSync(
    configFile,
    YAML.stringify({ redis: { url: redis.url }, store: { url: storeUrl }, monitor: { window: '30m' } }),
  );
  const store = openStore(storeUrl);
  const nowMs = Date.now();
  const samples: Sample[] = [];
  for (let step = 29; step >= 0; step--) {
    const timeMs = nowMs - step * 60_000 - 1000;
    for (let h = 0; h < HOSTS; h++) {
      const host = `n${String(h).padStart(3, '0')}`;
      let used = 0;
      for (let i = 0; i < VMS / HOSTS; i++) {
        const v = h * (VMS / HOSTS) + i;
        const cores = h % 10 === 0 ? 1.4 : 0.3 + (v % 5) * 0.05;
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
        memUsedBytes: 48 * GiB,
      });
    }
  }
  process.stderr.write(`writing ${samples.length} samples...\n`);
  for (let i = 0; i < samples.length; i += 50_000) await store.writeSamples(samples.slice(i, i + 50_000));
  await store.close();

  const commands: string[][] = [
    ['--version'],
    ['status', '--json'],
    ['hosts', '--json'],
    ['vms', '--json'],
    ['plan', '--json'],
    ['jobs', '--json'],
  ];
  const results: Record<string, { medianMs: number; runs: number[] }> = {};
  for (const args of commands) {
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = performance.now();
      await run(
        process.execPath,
        [path.join(ROOT, 'bin/lbm.js'), ...args, ...(args[0] === '--version' ? [] : ['--config', configFile])],
        { env: cleanEnv(), maxBuffer: 256 * 1024 * 1024 },
      );
      times.push(Math.round(performance.now() - started));
    }
    results[args.join(' ')] = { medianMs: Math.round(median(times)), runs: times };
    process.stderr.write(`lbm ${args.join(' ')}: median ${Math.round(median(times))} ms\n`);
  }
  const compiled = fs.existsSync(path.join(ROOT, 'dist', '.build-stamp'));
  process.stdout.write(
    JSON.stringify({
      bench: 'cli',
      hosts: HOSTS,
      vms: VMS,
      samplesInWindow: samples.length,
      runs: RUNS,
      compiledDist: compiled,
      targetMs: 1000,
      results,
      allUnderTarget: Object.entries(results).every(([, r]) => r.medianMs < 1000),
    }) + '\n',
  );
} finally {
  await redis.stop();
}
