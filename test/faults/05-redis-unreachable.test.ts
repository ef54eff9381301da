/**
 * Fault 5: long outages. Redis unreachable for a while, then back on the same port (real `lbvm
 * monitor` and `lbvm worker` processes), and meanwhile InfluxDB away for 10 rounds of a long-running
 * `lbvm collect --every 1s`. The daemons retry with backoff (ioredis, capped at 5 s between tries),
 * each logs the outage once and the recovery once — not a line per retry or per round — and all
 * carry on without a restart: the monitor leads again, a job enqueued after the outage is carried
 * out, and every round the collector took during the InfluxDB outage is stored once, in order.
 *
 * The outage lengths are parameters: FAULT05_REDIS_OUTAGE (default 30s in `npm test`, past the
 * capped backoff six times over) and FAULT05_INFLUX_ROUNDS (default 10). `npm run -s bench --
 * outage` runs this file with Redis away 2 minutes (issue 18's figure) and prints the result.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { leaseKeys } from '../../src/monitor/lease.ts';
import { parseDurationMs } from '../../src/units.ts';
import { cleanEnv, ROOT } from '../helpers/cli.ts';
import { influxQuery, startInflux } from '../helpers/influx.ts';
import { spawnTracked, waitFor } from '../helpers/processes.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { configEnv, eventsOf, job, MIB, until } from '../queue/support.ts';
import { faultEnvironment } from './support.ts';

const OUTAGE_MS = parseDurationMs(process.env.FAULT05_REDIS_OUTAGE ?? '30s') ?? Number.NaN;
const INFLUX_ROUNDS = Number(process.env.FAULT05_INFLUX_ROUNDS ?? 10);
if (!(OUTAGE_MS > 0) || !(Number.isInteger(INFLUX_ROUNDS) && INFLUX_ROUNDS > 0))
  throw new Error(
    'FAULT05_REDIS_OUTAGE: expected a duration like 30s or 2m; FAULT05_INFLUX_ROUNDS: a whole number > 0',
  );

/** Log lines (JSON) of a daemon whose message matches. */
function lines(output: string, message: RegExp): string[] {
  return output.split('\n').filter((line) => message.test(line));
}

describe(`fault 5: Redis unreachable for ${OUTAGE_MS / 1000} s, InfluxDB for ${INFLUX_ROUNDS} collect rounds`, () => {
  const environment = faultEnvironment();
  const { daemons } = environment;

  it('monitor, worker and collector retry, log each outage once, lose nothing and recover without a restart', async (t) => {
    const influx = await startInflux();
    t.after(() => influx.stop());
    const r = await environment.rig(
      ['h1', 'h2'],
      { vm1: 'h1', vm2: 'h1' },
      { 'migration.bandwidthBytesPerSec': 256 * MIB, 'migration.lockDuration': '5s', 'migration.slotWait': '200ms' },
    );
    const dir = tmpDir('lbvm-outage-');
    const env = cleanEnv({
      ...configEnv(r.config),
      LBVM_STORE_URL: `files:${path.join(dir, 'samples')}`,
      LBVM_STORE_SPOOL_DIR: path.join(dir, 'spool'),
      LBVM_MONITOR_INTERVAL: '500ms',
      LBVM_MONITOR_LEASE: '3s',
      LBVM_MONITOR_LISTEN: '127.0.0.1:0',
    });
    const monitor = daemons.spawn('monitor', env);
    const worker = daemons.spawn('worker', env, ['--driver', 'sim']);
    const lease = leaseKeys(r.config.redis.prefix).lease;
    await waitFor('the monitor to lead', async () => (await r.redis.get(lease)) !== null, {
      process: monitor,
      timeoutMs: 30_000,
    });
    await waitFor('the worker to be ready', () => worker.output().includes('worker ready'), {
      process: worker,
      timeoutMs: 30_000,
    });
    // A collector loop writing to InfluxDB (host samples: it needs no Redis).
    const collector = spawnTracked(
      process.execPath,
      [path.join(ROOT, 'bin/lbvm.js'), 'collect', '--host-only', '--node', 'n1', '--every', '1s', '--json'],
      {
        cwd: dir,
        env: cleanEnv({
          LBVM_STORE_URL: influx.storeUrl('outage'),
          LBVM_STORE_SPOOL_DIR: path.join(dir, 'collector-spool'),
          LBVM_COLLECT_STATE_FILE: path.join(dir, 'collect-state.json'),
          LBVM_LOG_FORMAT: 'json',
          LBVM_LOG_LEVEL: 'info',
        }),
      },
    );
    daemons.started.push(collector);
    type Round = {
      timeMs: number;
      delivery: { written: number; spooled: number; replayed: number; storeError?: string };
    };
    const rounds = () =>
      collector
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{"node"'))
        .map((line) => JSON.parse(line) as Round);
    await waitFor('a first round stored in InfluxDB', () => rounds().some((round) => round.delivery.written > 0), {
      process: collector,
      timeoutMs: 30_000,
    });
    const first = await r.queue.enqueue(job('vm1', 'h1', 'h2', { planId: 'before' }));
    await until(
      'the first job',
      async () => (await r.queue.job(first.jobId))?.state === 'completed',
      30_000,
      async () => worker.output(),
    );

    // Both away at once: InfluxDB for INFLUX_ROUNDS rounds, Redis for OUTAGE_MS.
    const redisBackAt = Date.now() + OUTAGE_MS;
    await environment.redis.stop();
    await influx.stop();
    const spooledBefore = rounds().filter((round) => round.delivery.storeError).length;
    await waitFor(
      `${INFLUX_ROUNDS} rounds spooled`,
      () => rounds().filter((round) => round.delivery.storeError).length >= spooledBefore + INFLUX_ROUNDS,
      { process: collector, timeoutMs: INFLUX_ROUNDS * 1000 + 30_000 },
    );
    await influx.start();
    await sleep(Math.max(0, redisBackAt - Date.now()));
    for (const daemon of [monitor, worker, collector])
      assert.equal(daemon.child.exitCode, null, `a daemon exited during the outage:\n${daemon.output().slice(-2000)}`);
    await environment.redis.start();

    // Recovered by itself: the monitor leads again, the worker carries out a new job.
    await waitFor('the monitor to lead again', async () => (await r.redis.get(lease)) !== null, {
      process: monitor,
      timeoutMs: 30_000,
    });
    const second = await r.queue.enqueue(job('vm2', 'h1', 'h2', { planId: 'after' }));
    await until(
      'a job enqueued after the outage',
      async () => (await r.queue.job(second.jobId))?.state === 'completed',
      40_000,
      async () => worker.output().slice(-3000),
    );
    assert.equal(await r.driver.locate('vm2'), 'h2');
    assert.equal((await eventsOf(r, 'migration.finished')).length, 2);

    for (const [name, daemon] of Object.entries({ monitor, worker })) {
      const output = daemon.output();
      assert.equal(
        lines(output, /Redis unreachable; retrying with backoff/).length,
        1,
        `${name}: the outage logged once\n${output.slice(-3000)}`,
      );
      assert.equal(lines(output, /Redis reachable again/).length, 1, `${name}: the recovery logged once`);
      // Not a line per retry: the whole outage costs a handful of warnings at most.
      const warnings = output.split('\n').filter((line) => /"level":(40|50)/.test(line));
      assert.ok(
        warnings.length <= 4,
        `${name}: ${warnings.length} warnings during a ${OUTAGE_MS / 1000} s outage:\n${warnings.join('\n')}`,
      );
    }
    assert.equal(
      lines(monitor.output(), /became the active monitor/).length,
      2,
      'the monitor led before and after the outage',
    );

    // The collector: every round taken, stored once, in order; the outage warned about once.
    await waitFor('a round that replays the spool', () => rounds().some((round) => round.delivery.replayed > 0), {
      process: collector,
      timeoutMs: 30_000,
    });
    await collector.stop();
    const taken = rounds();
    const missed = taken.filter((round) => round.delivery.storeError);
    assert.ok(missed.length >= INFLUX_ROUNDS, `${missed.length} rounds missed`);
    assert.equal(
      taken.reduce((sum, round) => sum + round.delivery.replayed, 0),
      missed.reduce((sum, round) => sum + round.delivery.spooled, 0),
      'every spooled sample replayed',
    );
    const answer = await influxQuery(influx, 'outage', 'SELECT "cpuUsedCores" FROM "lbvm_raw"."host_sample"');
    assert.deepEqual(
      answer.results[0]!.series![0]!.values.map((row) => row[0] as number),
      taken.map((round) => round.timeMs),
      'every round stored once, in the order taken',
    );
    assert.equal(
      lines(collector.output(), /did not take this round/).filter((line) => /"level":40/.test(line)).length,
      1,
      'the collector warned once for the outage',
    );
    assert.equal(lines(collector.output(), /takes rounds again/).length, 1, 'and said once that it was over');
  });
});
