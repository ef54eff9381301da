/**
 * Workers as real `lbvm worker` processes, killed and paused mid-migration (sim driver, real
 * Redis): the job completes or fails cleanly, the VM ends in exactly one place, nothing runs twice,
 * a paused worker's late result does not count, and a dead worker's slots expire.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanEnv, ROOT } from '../helpers/cli.ts';
import { spawnTracked, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { configEnv, eventsOf, job, MIB, peakConcurrency, queueRig, until, type QueueRig } from './support.ts';

describe('worker processes killed or paused mid-migration', () => {
  let redis: RedisServer;
  const rigs: QueueRig[] = [];
  const workers: Tracked[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(workers.map((worker) => worker.stop(2000)));
    await Promise.all(rigs.map((made) => made.close()));
    await redis?.stop();
  });

  const spawnWorker = (r: QueueRig) => {
    const worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker', '--driver', 'sim'], { env: cleanEnv(configEnv(r.config)), cwd: tmpDir() });
    workers.push(worker);
    return worker;
  };

  // 128 MiB at 32 MiB/s: a 4 s migration; a worker that stops renewing loses the job after 2 s.
  const slow = { 'migration.bandwidthBytesPerSec': 32 * MIB, 'migration.lockDuration': '2s', 'migration.slotWait': '200ms' };

  it('a worker SIGKILLed mid-migration: after restart the job completes, the VM is in one place, moved once', async () => {
    const r = await queueRig(redis.url, ['h1', 'h2'], { vm1: 'h1' }, slow, 128 * MIB);
    rigs.push(r);
    const queued = await r.queue.enqueue(job('vm1', 'h1', 'h2'));
    const first = spawnWorker(r);
    await until('the first worker to start the migration', async () => (await eventsOf(r, 'migration.started')).length === 1, 30_000, async () => first.output());
    await sleep(1000);
    first.child.kill('SIGKILL');
    await first.exited;
    assert.equal(await r.driver.locate('vm1'), 'h1', 'a killed migration has not moved the VM');
    const second = spawnWorker(r);
    await until('the job to complete after the restart', async () => (await r.queue.job(queued.jobId))?.state === 'completed', 60_000, async () => second.output());
    assert.equal(await r.driver.locate('vm1'), 'h2');
    const finished = await eventsOf(r, 'migration.finished');
    assert.equal(finished.length, 1);
    assert.equal(finished[0]!.detail?.outcome, 'migrated');
    assert.equal((await eventsOf(r, 'migration.started')).length, 2, 'started by the dead worker, then once more after its lock expired');
    await second.stop();
  });

  it('a worker SIGSTOPped past its lock: another worker runs the job, the paused one cancels on resume and its result does not count', async () => {
    const r = await queueRig(redis.url, ['h1', 'h2'], { vm1: 'h1' }, { ...slow, 'migration.bandwidthBytesPerSec': 16 * MIB }, 128 * MIB);
    rigs.push(r);
    const queued = await r.queue.enqueue(job('vm1', 'h1', 'h2'));
    const paused = spawnWorker(r);
    await until('the first worker to start', async () => (await eventsOf(r, 'migration.started')).length === 1, 30_000, async () => paused.output());
    paused.child.kill('SIGSTOP');
    const other = spawnWorker(r);
    await until('the other worker to take the job over', async () => (await eventsOf(r, 'migration.started')).length === 2, 30_000, async () => other.output());
    paused.child.kill('SIGCONT');
    await until('the job to complete', async () => (await r.queue.job(queued.jobId))?.state === 'completed', 60_000, async () => `${paused.output()}\n${other.output()}`);
    await until('the paused worker to give up its run', async () => (await eventsOf(r, 'migration.failed')).some((event) => event.detail?.lockLost === true), 20_000, async () => paused.output());
    const finished = await eventsOf(r, 'migration.finished');
    assert.equal(finished.length, 1, JSON.stringify(finished));
    assert.equal(finished[0]!.detail?.outcome, 'migrated');
    assert.equal(await r.driver.locate('vm1'), 'h2');
    assert.match(paused.output(), /this worker lost the job; its result does not count/);
  });

  it('50 migrations towards one host with a limit of 2: a worker holding a slot is SIGKILLed, its slot expires, never more than 2 at once', async () => {
    const placement = Object.fromEntries(Array.from({ length: 50 }, (_, index) => [`vm${index}`, `s${index % 10}`]));
    const hosts = ['dst', ...Array.from({ length: 10 }, (_, index) => `s${index}`)];
    const r = await queueRig(redis.url, hosts, placement, { 'migration.bandwidthBytesPerSec': 640 * MIB, 'migration.lockDuration': '2s', 'migration.slotWait': '100ms', 'limits.migrationsPerDestinationHost': 2, 'limits.migrationsPerSourceHost': 5, 'limits.migrationsInCluster': 20, 'migration.attempts': 1 }, 64 * MIB);
    rigs.push(r);
    for (let index = 0; index < 50; index++) assert.equal((await r.queue.enqueue(job(`vm${index}`, `s${index % 10}`, 'dst'))).status, 'queued');
    const victim = spawnWorker(r);
    const survivor = spawnWorker(r);
    const victimId = `${os.hostname()}:${victim.child.pid}`;
    // Kill the victim once it holds a slot (it may start after the survivor has taken the first jobs).
    await until('the victim to start a migration', async () => (await eventsOf(r, 'migration.started')).some((event) => event.detail?.worker === victimId), 30_000, async () => victim.output());
    victim.child.kill('SIGKILL');
    await victim.exited;
    const killedMs = Date.now();
    await until('all 50 to complete', async () => (await eventsOf(r, 'migration.finished')).length === 50, 120_000, async () => `${survivor.output().slice(-3000)}\n${JSON.stringify((await eventsOf(r)).slice(-5))}`);
    const events = await eventsOf(r);
    // The killed worker's migrations stopped when it died: end them there in the timeline.
    const victimJobs = events.filter((event) => event.type === 'migration.started' && event.detail?.worker === victimId).map((event) => event.jobId!);
    assert.ok(victimJobs.length > 0, 'the killed worker had started migrations');
    const cut = events.findIndex((event) => event.timeMs > killedMs);
    const timeline = [...events.slice(0, cut), ...victimJobs.map((jobId) => ({ type: 'migration.failed' as const, timeMs: killedMs, jobId })), ...events.slice(cut)];
    const peak = peakConcurrency(timeline);
    assert.ok(peak.destination <= 2, `at most 2 migrations into dst at once, saw ${peak.destination}: ${events.map((event) => `${event.type.slice(10)} ${event.vm} ${event.timeMs}`).join('\n')}`);
    assert.equal(events.filter((event) => event.type === 'migration.failed').length, 0, 'delayed jobs were not failed');
    const placementNow = await r.driver.cluster.placement();
    assert.equal(Object.values(placementNow).filter((host) => host === 'dst').length, 50);
  });
});
