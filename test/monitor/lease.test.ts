import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { LeaderLease, currentFence, currentLeader } from '../../src/monitor/lease.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

describe('leader lease with fencing tokens (real Redis)', () => {
  let redis: RedisServer;
  const clients: Redis[] = [];
  const client = () => {
    const c = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    clients.push(c);
    return c;
  };
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await redis.stop();
  });

  it('lets exactly one of several monitors lead, with a token', async () => {
    const leases = ['m1', 'm2', 'm3'].map((id) => new LeaderLease(client(), 'one', id, 1000));
    await Promise.all(leases.map((lease) => lease.tick()));
    const leaders = leases.filter((lease) => lease.isLeader());
    assert.equal(leaders.length, 1);
    assert.equal(leaders[0]!.token, 1);
    assert.equal(await currentLeader(clients[0]!, 'one'), leaders[0]!.id);
    await Promise.all(leases.map((lease) => lease.release()));
  });

  it('hands over after the leader stops renewing, with a higher token; the old one knows it lost', async () => {
    let now = 0;
    const clock = () => now;
    const lost: string[] = [];
    const a = new LeaderLease(client(), 'two', 'a', 300, { onLost: (reason) => lost.push(reason) }, clock);
    const b = new LeaderLease(client(), 'two', 'b', 300, {}, clock);
    await a.tick();
    await b.tick();
    assert.ok(a.isLeader() && !b.isLeader());
    const firstToken = a.token!;
    // a stalls (no renewal); its local validity ends before Redis' TTL does.
    now = 250;
    assert.equal(a.isLeader(), false, 'a must stop acting before its lease can expire in Redis');
    await new Promise((resolve) => setTimeout(resolve, 400));
    await b.tick();
    assert.ok(b.isLeader());
    assert.ok(b.token! > firstToken);
    assert.equal(await currentFence(clients[0]!, 'two'), b.token);
    // a wakes up and tries to renew: refused, it steps down.
    await a.tick();
    assert.equal(a.isLeader(), false);
    assert.deepEqual(lost, ['another monitor holds the lease now']);
    await b.release();
  });

  it('releasing gives the lease to a standby at once', async () => {
    const a = new LeaderLease(client(), 'three', 'a', 10_000);
    const b = new LeaderLease(client(), 'three', 'b', 10_000);
    await a.tick();
    await a.release();
    await b.tick();
    assert.ok(b.isLeader());
    assert.equal(b.token, 2);
    await b.release();
  });

  it('refuses a nonsensical lease length', () => {
    assert.throws(() => new LeaderLease(client(), 'x', 'a', 0), /leaseMs must be >= 100/);
  });
});
