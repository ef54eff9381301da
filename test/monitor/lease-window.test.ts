/**
 * The window kept between rounds across the lease: a monitor that lost its lease and took it straight
 * back (a round kept its event loop past the lease: a whole read of a large window) keeps reading only
 * what is new, since nobody else led in between (the fence moved by one); after another monitor led,
 * it reads the whole window again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { leaseKeys } from '../../src/monitor/lease.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { simCluster, simVm, type SimCluster } from './sim-cluster.ts';

describe('the kept window and the lease', () => {
  let server: RedisServer;
  let c: SimCluster;
  before(async () => {
    server = await startRedis();
    c = await simCluster(server.url, {
      hosts: 2,
      vms: [simVm('vm-1', 0.3), simVm('vm-2', 0.3)],
      worker: false,
      config: { 'monitor.mode': 'report', 'monitor.interval': '1m' },
    });
  });
  after(async () => {
    await c?.close();
    await server?.stop();
  });

  it('is kept when the monitor takes its own lease back, and read whole after another led', async () => {
    const [first, second] = [c.monitor(), c.monitor()];
    const leaseKey = leaseKeys(c.config.redis.prefix).lease;
    const round = async (monitor: typeof first) => {
      await c.collect();
      const record = await monitor.round();
      return { token: record.fencingToken, full: record.inputs.window?.full, reasons: record.inputs.window?.reasons };
    };
    assert.deepEqual(await round(first), { token: 1, full: true, reasons: ['start'] });
    assert.deepEqual(await round(first), { token: 1, full: false, reasons: [] });
    // The lease ran out under the monitor (its renewals did not run in time); it takes it back at once.
    await c.redis.del(leaseKey);
    assert.deepEqual(await round(first), { token: 2, full: false, reasons: [] });
    // Another monitor leads for a while, then the first takes over again: it reads the whole window.
    await c.redis.del(leaseKey);
    assert.equal((await round(second)).token, 3);
    await c.redis.del(leaseKey);
    assert.deepEqual(await round(first), { token: 4, full: true, reasons: ['took the lease'] });
  });
});
