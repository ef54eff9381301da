/**
 * Fault 9: a deposed leader. The leading `lbvm monitor` is paused with SIGSTOP past its lease, a
 * standby takes over with a higher fencing token, then the old leader is resumed: it steps down
 * (it stops acting at 80% of its lease by its own clock, and its renewal is refused), enqueues
 * nothing more, and whatever carries its old token is refused — at enqueue (`stale-fence`) and,
 * for a job that slipped in before the takeover, by the worker (dropped, nothing moved).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { leaseKeys } from '../../src/monitor/lease.ts';
import { cleanEnv, ROOT } from '../helpers/cli.ts';
import { spawnTracked, waitFor, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { GiB, simVmOf, startLbmCluster, type LbmCluster } from '../lbm/support.ts';
import { eventsOf, job, queueRig, until, type QueueRig } from '../queue/support.ts';

const LEASE_MS = 2000;

describe('fault 9: a deposed leader resumed after SIGSTOP', () => {
  let cluster: LbmCluster | undefined;
  const monitors: Tracked[] = [];
  let collecting = true;
  let collector: Promise<void> | null = null;
  let redis: RedisServer | undefined;
  let rig: QueueRig | undefined;
  after(async () => {
    collecting = false;
    await collector;
    for (const monitor of monitors) {
      monitor.child.kill('SIGCONT');
      await monitor.stop();
    }
    await cluster?.close();
    await rig?.close();
    await redis?.stop();
  });

  it('the resumed leader steps down and enqueues nothing with its old token', async () => {
    const vms = Array.from({ length: 12 }, (_, i) => simVmOf(`vm-${i}`, 2 * GiB, 0.3));
    cluster = await startLbmCluster(
      ['h1', 'h2', 'h3', 'h4'],
      vms,
      Object.fromEntries(vms.map((vm) => [vm.name, 'h1'])),
      {
        monitor: { interval: '500ms', window: '30s', lease: `${LEASE_MS}ms`, listen: '127.0.0.1:0' },
        limits: {
          movesPerRound: 1,
          migrationsPerSourceHost: 12,
          migrationsPerDestinationHost: 12,
          migrationsInCluster: 24,
          cooldown: '1s',
        },
        log: { level: 'info', format: 'json' },
      },
    );
    const c = cluster;
    await c.collect();
    collector = (async () => {
      while (collecting) {
        await sleep(400);
        await c.collect().catch(() => {});
      }
    })();
    for (let i = 0; i < 2; i++)
      monitors.push(
        spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'monitor', '--config', c.configFile], {
          env: cleanEnv(),
        }),
      );
    const keys = leaseKeys(c.config.redis.prefix);
    const holder = async () => (await c.redis.get(keys.lease)) ?? '';
    await waitFor('a leader that enqueues', async () => (await holder()) !== '' && (await c.queue.jobs()).length >= 2, {
      timeoutMs: 30_000,
    });
    const oldToken = Number(await c.redis.get(keys.fence));
    const leaderPid = Number((await holder()).split(':').pop());
    const old = monitors.find((m) => m.child.pid === leaderPid)!;
    const standby = monitors.find((m) => m !== old)!;

    old.child.kill('SIGSTOP');
    await waitFor('the standby takes over', async () => (await holder()).endsWith(`:${standby.child.pid}`), {
      timeoutMs: 4 * LEASE_MS,
    });
    const takeoverMs = Date.now();
    const newToken = Number(await c.redis.get(keys.fence));
    assert.ok(newToken > oldToken);
    await waitFor(
      'the new leader enqueues',
      async () => (await c.queue.jobs(100)).some((view) => view.data.fencingToken === newToken),
      { timeoutMs: 20_000 },
    );

    // Paused for well past its lease; now it wakes up, as after a long GC pause or a frozen VM.
    old.child.kill('SIGCONT');
    await waitFor('the old leader to step down', () => /lost the lease: standing by/.test(old.output()), {
      timeoutMs: 10_000,
    });
    await sleep(2 * LEASE_MS);
    assert.ok((await holder()).endsWith(`:${standby.child.pid}`), 'the resumed monitor took the lease back');
    assert.equal((old.output().match(/became the active monitor/g) ?? []).length, 1, 'the resumed monitor led again');
    const late = (await c.queue.jobs(200)).filter(
      (view) => view.data.fencingToken === oldToken && view.enqueuedMs > takeoverMs,
    );
    assert.deepEqual(
      late.map((view) => view.data.vm),
      [],
      'the deposed leader enqueued after the takeover',
    );
    // What the deposed leader's code would send now is refused by the fencing token.
    const refused = await c.queue.enqueue(
      job('vm-11', 'h1', 'h2', { fencingToken: oldToken, planId: `r-late-${oldToken}` }),
    );
    assert.deepEqual(refused.status === 'stale-fence' ? [refused.fencingToken, refused.currentFence] : refused, [
      oldToken,
      newToken,
    ]);
  });

  it('a job from an older term is refused at enqueue and dropped by the worker; nothing moves', async () => {
    redis = await startRedis();
    rig = await queueRig(
      redis.url,
      ['h1', 'h2'],
      { vm1: 'h1', vm2: 'h1' },
      {
        'migration.bandwidthBytesPerSec': 256 * 1024 * 1024,
        'migration.lockDuration': '5s',
        'migration.slotWait': '100ms',
      },
    );
    const r = rig;
    const fenceKey = `${r.config.redis.prefix}:leader:fence`;
    await r.redis.set(fenceKey, 5);
    const refused = await r.queue.enqueue(job('vm1', 'h1', 'h2', { fencingToken: 4, planId: 'old-leader' }));
    assert.equal(refused.status, 'stale-fence');
    // Enqueued by the leader of term 5; a new leader (term 6) takes over before a worker runs it.
    const queued = await r.queue.enqueue(job('vm2', 'h1', 'h2', { fencingToken: 5, planId: 'term-5' }));
    assert.equal(queued.status, 'queued');
    await r.redis.incr(fenceKey);
    r.startWorker();
    await until('the job to be dropped', async () => (await r.queue.job(queued.jobId))?.state === 'failed');
    assert.equal(await r.driver.locate('vm2'), 'h1');
    assert.equal(await r.driver.locate('vm1'), 'h1');
    const dropped = await eventsOf(r, 'migration.dropped');
    assert.equal(dropped.length, 1);
    assert.match(dropped[0]!.error!, /stale fencing token 5 < leader's 6/);
    assert.equal((await eventsOf(r, 'migration.started')).length, 0);
    // A manual move (null token) is never fenced.
    const manual = await r.queue.enqueue(
      job('vm2', 'h1', 'h2', { fencingToken: null, planId: 'manual', requestedBy: 'operator:x' }),
    );
    assert.equal(manual.status, 'queued');
    await until('the manual move', async () => (await r.driver.locate('vm2')) === 'h2');
  });
});
