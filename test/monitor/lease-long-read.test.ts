/**
 * A round whose whole read of the window outlasts the lease keeps the lease: the renewals run from a
 * timer, and the read lets timers run (src/util/breathe.ts). Before, a files store's whole read held
 * the event loop from start to end: at 3,000 hosts (18–45 s) the lease ran out under it, the round
 * enqueued and published nothing, and with two monitors the lease would pass back and forth, each
 * losing it in its own first read. Here a 500 ms lease and a window that takes longer to read.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeHistory, MINUTE_MS } from '../../bench/_cluster.ts';
import { currentFence } from '../../src/monitor/lease.ts';
import { simClusterFixture } from './sim-cluster.ts';

const LEASE_MS = 500;

describe('a whole read longer than the lease', () => {
  const fixture = simClusterFixture();

  it('keeps the lease: the round publishes under the token it began with', async () => {
    const c = await fixture.cluster({
      hosts: 1,
      vms: [],
      worker: false,
      config: {
        'monitor.mode': 'report',
        'monitor.interval': '1m',
        'monitor.window': '10h',
        'monitor.lease': `${LEASE_MS}ms`,
      },
    });
    const nowMs = Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS;
    // 30 hosts × 20 VMs × 10 hours: 378,000 samples, read in 1.8 s on a quiet machine (3.5 leases;
    // 126,000 took 0.42 s, under the lease), and few VMs to plan (planning holds the loop too).
    await writeHistory(c.store, { hosts: 30, vmsPerHost: 20 }, nowMs - 600 * MINUTE_MS, nowMs);
    const monitor = c.monitor();
    monitor.lease.start();
    const record = await monitor.round();
    assert.equal(record.inputs.window?.full, true);
    assert.ok(
      record.readMs! > LEASE_MS,
      `the whole read took ${Math.round(record.readMs!)} ms: it must outlast the ${LEASE_MS} ms lease for this test to tell anything`,
    );
    await monitor.lease.tick();
    assert.equal(monitor.lease.token, record.fencingToken, 'the monitor holds the token the round began with');
    assert.equal(await currentFence(c.redis, c.config.redis.prefix), record.fencingToken, 'no token was taken since');
    assert.ok((record.publishedBytes ?? 0) > 0, 'the round published its snapshot (it was still the leader)');
  });
});
