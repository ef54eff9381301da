/**
 * Fault 5: Redis unreachable for a while, then back on the same port (real `lbvm monitor` and
 * `lbvm worker` processes). Both retry with backoff (ioredis, capped at 5 s between tries), log the
 * outage once and the recovery once — not a line per retry — and carry on without a restart: the
 * monitor leads again and a job enqueued after the outage is carried out.
 *
 * The outage is a minute; this one is 15 s, which already spans several capped retries
 * (0.4, 0.8, 1.6, 3.2, 5, 5 s): a longer outage only repeats the last step.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { leaseKeys } from '../../src/monitor/lease.ts';
import { cleanEnv } from '../helpers/cli.ts';
import { waitFor } from '../helpers/processes.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { configEnv, eventsOf, job, MIB, until } from '../queue/support.ts';
import { faultEnvironment } from './support.ts';

const OUTAGE_MS = 15_000;

/** Log lines (JSON) of a daemon whose message matches. */
function lines(output: string, message: RegExp): string[] {
  return output.split('\n').filter((line) => message.test(line));
}

describe('fault 5: Redis unreachable for a while', () => {
  const environment = faultEnvironment();
  const { daemons } = environment;

  it('monitor and worker retry with backoff, log the outage once, and recover without a restart', async () => {
    const r = await environment.rig(['h1', 'h2'], { vm1: 'h1', vm2: 'h1' }, { 'migration.bandwidthBytesPerSec': 256 * MIB, 'migration.lockDuration': '5s', 'migration.slotWait': '200ms' });
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
    await waitFor('the monitor to lead', async () => (await r.redis.get(lease)) !== null, { process: monitor, timeoutMs: 30_000 });
    await waitFor('the worker to be ready', () => worker.output().includes('worker ready'), { process: worker, timeoutMs: 30_000 });
    const first = await r.queue.enqueue(job('vm1', 'h1', 'h2', { planId: 'before' }));
    await until('the first job', async () => (await r.queue.job(first.jobId))?.state === 'completed', 30_000, async () => worker.output());

    await environment.redis.stop();
    await sleep(OUTAGE_MS);
    for (const daemon of [monitor, worker]) assert.equal(daemon.child.exitCode, null, `a daemon exited during the outage:\n${daemon.output().slice(-2000)}`);
    await environment.redis.start();

    // Recovered by itself: the monitor leads again, the worker carries out a new job.
    await waitFor('the monitor to lead again', async () => (await r.redis.get(lease)) !== null, { process: monitor, timeoutMs: 30_000 });
    const second = await r.queue.enqueue(job('vm2', 'h1', 'h2', { planId: 'after' }));
    await until('a job enqueued after the outage', async () => (await r.queue.job(second.jobId))?.state === 'completed', 40_000, async () => worker.output().slice(-3000));
    assert.equal(await r.driver.locate('vm2'), 'h2');
    assert.equal((await eventsOf(r, 'migration.finished')).length, 2);

    for (const [name, daemon] of Object.entries({ monitor, worker })) {
      const output = daemon.output();
      assert.equal(lines(output, /Redis unreachable; retrying with backoff/).length, 1, `${name}: the outage logged once\n${output.slice(-3000)}`);
      assert.equal(lines(output, /Redis reachable again/).length, 1, `${name}: the recovery logged once`);
      // Not a line per retry: the whole outage costs a handful of warnings at most.
      const warnings = output.split('\n').filter((line) => /"level":(40|50)/.test(line));
      assert.ok(warnings.length <= 4, `${name}: ${warnings.length} warnings during a ${OUTAGE_MS / 1000} s outage:\n${warnings.join('\n')}`);
    }
    assert.equal(lines(monitor.output(), /became the active monitor/).length, 2, 'the monitor led before and after the outage');
  });
});
