/**
 * Fault 20: 50 migrations towards one host with a limit of 2 per destination, two `lbvm worker`
 * processes, one of them SIGKILLed while it holds a slot: never more than 2 migrations into the
 * host at once, the jobs that find no slot wait (delayed, no attempt used, none failed), and the dead
 * worker's slots expire after `migration.lockDuration`.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { eventsOf, job, MIB, peakConcurrency, until } from '../queue/support.ts';
import { faultEnvironment } from './support.ts';

describe('fault 20: 50 migrations towards one host, limit 2, a slot holder SIGKILLed', () => {
  const environment = faultEnvironment();
  const { daemons } = environment;

  it("never more than 2 at once; extra jobs delayed, not failed; the dead worker's slot expires", async () => {
    const placement = Object.fromEntries(Array.from({ length: 50 }, (_, index) => [`vm${index}`, `s${index % 10}`]));
    const hosts = ['dst', ...Array.from({ length: 10 }, (_, index) => `s${index}`)];
    const lockMs = 2000;
    const r = await environment.rig(
      hosts,
      placement,
      {
        'migration.bandwidthBytesPerSec': 640 * MIB,
        'migration.lockDuration': `${lockMs}ms`,
        'migration.slotWait': '100ms',
        'limits.migrationsPerDestinationHost': 2,
        'limits.migrationsPerSourceHost': 5,
        'limits.migrationsInCluster': 20,
        'migration.attempts': 1,
      },
      64 * MIB,
    );
    for (let index = 0; index < 50; index++)
      assert.equal((await r.queue.enqueue(job(`vm${index}`, `s${index % 10}`, 'dst'))).status, 'queued');
    const destinationKey = `${r.config.redis.prefix}:slots:destination:dst`;
    const victim = daemons.simWorker(r.config);
    const survivor = daemons.simWorker(r.config);
    const victimId = `${os.hostname()}:${victim.child.pid}`;
    // Kill the victim once it holds a slot (it may start after the survivor has taken the first jobs).
    let victimHolders: string[] = [];
    await until(
      'the victim to hold a slot on dst',
      async () => {
        const victimJobs = (await eventsOf(r, 'migration.started'))
          .filter((event) => event.detail?.worker === victimId)
          .map((event) => event.jobId!);
        victimHolders = (await r.redis.zrange(destinationKey, 0, -1)).filter((holder) =>
          victimJobs.some((jobId) => holder.startsWith(`${jobId}#`)),
        );
        return victimHolders.length > 0;
      },
      30_000,
      async () => victim.output(),
    );
    victim.child.kill('SIGKILL');
    await victim.exited;
    const killedMs = Date.now();
    // The dead worker's slots are not renewed any more: they stop counting after the lease.
    await until(
      "the dead worker's slots to expire",
      async () => {
        const [seconds, micros] = await r.redis.time();
        const nowMs = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
        const scores = await Promise.all(victimHolders.map((holder) => r.redis.zscore(destinationKey, holder)));
        return scores.every((score) => score === null || Number(score) < nowMs);
      },
      3 * lockMs + 5000,
    );
    const expiredAfterMs = Date.now() - killedMs;
    assert.ok(
      expiredAfterMs <= lockMs + 3000,
      `the dead worker's slot expired ${expiredAfterMs} ms after the kill (lease ${lockMs} ms)`,
    );

    await until(
      'all 50 to complete',
      async () => (await eventsOf(r, 'migration.finished')).length === 50,
      120_000,
      async () => `${survivor.output().slice(-3000)}\n${JSON.stringify((await eventsOf(r)).slice(-5))}`,
    );
    const events = await eventsOf(r);
    // The killed worker's migrations stopped when it died: end them there in the timeline.
    const victimJobs = events
      .filter((event) => event.type === 'migration.started' && event.detail?.worker === victimId)
      .map((event) => event.jobId!);
    assert.ok(victimJobs.length > 0, 'the killed worker had started migrations');
    const cut = events.findIndex((event) => event.timeMs > killedMs);
    const timeline = [
      ...events.slice(0, cut),
      ...victimJobs.map((jobId) => ({ type: 'migration.failed' as const, timeMs: killedMs, jobId })),
      ...events.slice(cut),
    ];
    const peak = peakConcurrency(timeline);
    assert.ok(
      peak.destination <= 2,
      `at most 2 migrations into dst at once, saw ${peak.destination}: ${events.map((event) => `${event.type.slice(10)} ${event.vm} ${event.timeMs}`).join('\n')}`,
    );
    assert.equal(peak.destination, 2, 'the limit was used');
    assert.equal(events.filter((event) => event.type === 'migration.failed').length, 0, 'delayed jobs were not failed');
    const views = await r.queue.jobs(100);
    assert.equal(views.filter((view) => view.state === 'completed').length, 50);
    // attempts: 1 — a delay that burned an attempt would have failed the job; only the dead
    // worker's jobs were re-run (by BullMQ's stalled-job recovery).
    const placementNow = await r.driver.cluster.placement();
    assert.equal(Object.values(placementNow).filter((host) => host === 'dst').length, 50);
  });
});
