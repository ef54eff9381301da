/**
 * Fencing tokens across a Redis Sentinel failover that loses the old master's last writes (a real
 * master, replica and three sentinels). The replica is starved first (its link cut, the master asking
 * for a password it lacks), so the token taken just before the SIGKILL is provably missing on the
 * promoted replica; a plain "fence + 1" there would hand that same token out again. With the term
 * (Sentinel's config epoch) the next token is above it, and tokens never go backward or repeat.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { currentFence, LeaderLease, leaseKeys, TERM_SPAN } from '../../src/monitor/lease.ts';
import { connectRedis, masterTerm } from '../../src/util/redis.ts';
import { startSentinel, type SentinelBed } from '../helpers/sentinel.ts';

describe('fencing tokens across a Sentinel failover (real redis-server and redis-sentinel)', () => {
  let bed: SentinelBed;
  const clients: Redis[] = [];
  const leases: LeaderLease[] = [];
  before(async () => {
    bed = await startSentinel({ password: 'master-pw', sentinelPassword: 'sentinel-pw' });
  });
  after(async () => {
    for (const lease of leases) await lease.release().catch(() => {});
    for (const client of clients) client.disconnect();
    await bed?.stop();
  });

  const monitor = (id: string) => {
    const client = connectRedis(bed.target);
    clients.push(client);
    const lease = new LeaderLease(client, 'fo', id, 20_000, { term: () => masterTerm(bed.target) });
    leases.push(lease);
    return { client, lease };
  };
  /** Ticks until the lease is held (the sentinels may still be agreeing after a failover). */
  const lead = async (lease: LeaderLease, timeoutMs = 30_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await lease.tick();
      if (lease.isLeader()) return lease.token!;
      await sleep(200);
    }
    throw new Error(`monitor ${lease.id} did not get the lease within ${timeoutMs} ms\n${bed.logs()}`);
  };

  it('the token taken on the old master and lost with it is never handed out again: the next one is higher', async () => {
    const used: number[] = [];
    const a = monitor('a');
    used.push(await lead(a.lease));
    assert.equal(used[0], 1, 'the first token of epoch 0');
    await a.lease.release();
    // Everything so far is on the replica (WAIT: its offset passed this connection's last write).
    assert.equal(await a.client.call('WAIT', '1', '5000'), 1);

    // From here the master's writes reach no replica; then b (connected before) takes a token on the master alone.
    const b = monitor('b');
    await b.client.ping();
    await bed.starveReplicas();
    used.push(await lead(b.lease));
    assert.equal(used[1], 2);
    const replica = bed.servers.find((server) => server !== bed.servers[0])!;
    const onReplica = new Redis({
      port: replica.port,
      host: '127.0.0.1',
      password: 'master-pw',
      maxRetriesPerRequest: 1,
    });
    clients.push(onReplica);
    assert.equal(await onReplica.get(leaseKeys('fo').fence), '1', "the replica missed the old master's last token");

    const old = await bed.killMaster();
    const promoted = await bed.waitForPromotion(old);
    assert.equal(promoted.port, replica.port);
    // The trap: the promoted replica's fence is 1, so "fence + 1" would be 2 again — b's token.
    assert.equal(Number(await onReplica.get(leaseKeys('fo').fence)) + 1, used[1]);

    const c = monitor('c');
    used.push(await lead(c.lease));
    assert.ok(used[2]! > used[1]!, `the token after the failover (${used[2]}) is above the lost one (${used[1]})`);
    assert.equal(used[2], 1 * TERM_SPAN + 1, 'the first token of epoch 1');
    assert.equal(await currentFence(c.client, 'fo'), used[2]);

    // b, deposed, followed the master with its connection: it cannot renew, and a job carrying its
    // token is older than the fence (workers drop it).
    await b.lease.tick();
    assert.equal(b.lease.isLeader(), false);
    assert.ok((await currentFence(b.client, 'fo')) > used[1]!);

    // The old master comes back as a replica of the new one and gives up its lost write.
    await old.start();
    const back = new Redis({ port: old.port, host: '127.0.0.1', password: 'master-pw', maxRetriesPerRequest: 1 });
    clients.push(back);
    const deadline = Date.now() + 30_000;
    while ((await back.get(leaseKeys('fo').fence).catch(() => null)) !== String(used[2]) && Date.now() < deadline)
      await sleep(200);
    assert.equal(await back.get(leaseKeys('fo').fence), String(used[2]), 'the old master resynced from the new one');

    // Handovers in the new epoch go on from there.
    await c.lease.release();
    const d = monitor('d');
    used.push(await lead(d.lease));
    assert.equal(used[3], used[2]! + 1);
    for (let index = 1; index < used.length; index++)
      assert.ok(used[index]! > used[index - 1]!, `tokens only grow: ${used.join(', ')}`);
  });
});
