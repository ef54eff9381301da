/**
 * `npm run -s bench -- outage [--redis 2m] [--influx-rounds 10]`: fault 5 at issue 18's length — Redis
 * away 2 minutes, InfluxDB away 10 collect rounds — which is too slow for `npm test` (that runs the
 * same file with a 30 s Redis outage). Runs test/faults/05-redis-unreachable.test.ts with the outage
 * lengths as parameters and prints one JSON object: the lengths, whether every assertion held, the
 * wall time. Progress (the test's own report) goes to stderr.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const argument = (name: string, fallback: string) => {
  const index = process.argv.indexOf(name);
  return index > 0 ? process.argv[index + 1]! : fallback;
};
const redisOutage = argument('--redis', '2m');
const influxRounds = argument('--influx-rounds', '10');
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const startedMs = Date.now();
const run = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-reporter=spec', 'test/faults/05-redis-unreachable.test.ts'],
  {
    cwd: root,
    env: { ...process.env, FAULT05_REDIS_OUTAGE: redisOutage, FAULT05_INFLUX_ROUNDS: influxRounds },
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  },
);
process.stderr.write(run.stdout);
const count = (name: string) =>
  Number(
    run.stdout.match(new RegExp(`^ℹ ${name} (\\d+)`, 'm'))?.[1] ??
      run.stdout.match(new RegExp(`^# ${name} (\\d+)`, 'm'))?.[1] ??
      0,
  );
process.stdout.write(
  JSON.stringify({
    benchmark: 'outage',
    redisOutage,
    influxRounds: Number(influxRounds),
    passed: run.status === 0,
    tests: count('tests'),
    pass: count('pass'),
    fail: count('fail'),
    wallSeconds: Math.round((Date.now() - startedMs) / 1000),
  }) + '\n',
);
process.exit(run.status === 0 ? 0 : 1);
