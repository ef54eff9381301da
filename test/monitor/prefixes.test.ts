/**
 * Many clusters, one Redis (issue 16): two clusters with the same host and VM names, each with its
 * own `redis.prefix` and its own database on one InfluxDB server (samples carry no cluster name, so
 * each cluster needs its own database or folder), each with a monitor, a worker and the sim driver.
 * Neither sees the other's hosts, jobs, lease, published snapshot, pause, maintenance or events.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readMaintenance, readPause, setMaintenance, setPaused } from '../../src/monitor/control.ts';
import { readPublished } from '../../src/monitor/published.ts';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { settle, simCluster, simVm, type SimCluster } from './sim-cluster.ts';

describe('two clusters on one Redis and one InfluxDB, told apart by redis.prefix', () => {
  let redis: RedisServer;
  let influx: InfluxServer;
  let east: SimCluster;
  let west: SimCluster;
  const vms = Array.from({ length: 6 }, (_, i) => simVm(`vm-${i}`, 0.45));
  before(async () => {
    [redis, influx] = await Promise.all([startRedis(), startInflux()]);
    // The same names in both; east has every VM on h1 (moves to make), west every VM on h3, in report mode.
    east = await simCluster(redis.url, {
      hosts: 3,
      vms,
      placement: Object.fromEntries(vms.map((vm) => [vm.name, 'h1'])),
      storeUrl: influx.storeUrl('cluster_east'),
      config: { 'redis.prefix': 'east' },
    });
    west = await simCluster(redis.url, {
      hosts: 3,
      vms,
      placement: Object.fromEntries(vms.map((vm) => [vm.name, 'h3'])),
      storeUrl: influx.storeUrl('cluster_west'),
      config: { 'redis.prefix': 'west', 'monitor.mode': 'report' },
    });
  });
  after(async () => {
    await east?.close();
    await west?.close();
    await influx?.stop();
    await redis?.stop();
  });

  it("never sees the other's hosts, jobs, lease, snapshot, controls or events", async () => {
    for (let i = 0; i < 2; i++) {
      await east.collect();
      await west.collect();
    }
    const [eastMonitor, westMonitor] = [east.monitor(), west.monitor()];
    const eastRound = await eastMonitor.round();
    const westRound = await westMonitor.round();
    // Each holds its own lease.
    assert.equal(eastRound.fencingToken, 1);
    assert.equal(westRound.fencingToken, 1);
    assert.ok(eastRound.enqueued.length > 0, `east enqueued nothing: ${eastRound.notes.join('; ')}`);
    assert.ok(eastRound.enqueued.every((entry) => entry.from === 'h1'));
    assert.equal(westRound.mode, 'report');
    assert.ok(westRound.moves.length > 0 && westRound.moves.every((move) => move.from === 'h3'));
    assert.deepEqual(await west.queue.inFlight(), []);
    assert.deepEqual(await west.queue.jobs(), []);

    const [eastSnapshot, westSnapshot] = await Promise.all([
      readPublished(east.redis, 'east'),
      readPublished(west.redis, 'west'),
    ]);
    assert.equal(eastSnapshot?.roundId, eastRound.roundId);
    assert.equal(westSnapshot?.roundId, westRound.roundId);
    assert.deepEqual(new Set(eastSnapshot!.snapshot.vms.map((vm) => vm.host)), new Set(['h1']));
    assert.deepEqual(new Set(westSnapshot!.snapshot.vms.map((vm) => vm.host)), new Set(['h3']));

    // East's worker moves east's VMs only; west's placement and history stay as they were.
    await settle(east);
    const eastPlacement = await east.driver.cluster.placement();
    assert.ok(
      Object.values(eastPlacement).some((host) => host !== 'h1'),
      JSON.stringify(eastPlacement),
    );
    assert.deepEqual(await west.driver.cluster.placement(), Object.fromEntries(vms.map((vm) => [vm.name, 'h3'])));
    const westEvents = (await west.queue.events.latest(1000)).map((entry) => entry.event);
    assert.deepEqual(
      westEvents.map((event) => [event.type, event.planId]),
      [['monitor.round', westRound.roundId]],
    );
    const eastEvents = (await east.queue.events.latest(1000)).map((entry) => entry.event);
    assert.ok(eastEvents.some((event) => event.type === 'migration.finished'));
    assert.ok(eastEvents.every((event) => event.planId !== westRound.roundId));

    await setPaused(east.redis, 'east', true, { by: 'test', nowMs: Date.now() });
    await setMaintenance(east.redis, 'east', 'h2', true, { by: 'test', sinceMs: Date.now(), evacuate: false });
    assert.deepEqual(await readPause(west.redis, 'west'), { paused: false });
    assert.equal((await readMaintenance(west.redis, 'west')).size, 0);
    const westAgain = await westMonitor.round();
    assert.equal(westAgain.mode, 'report');
    assert.deepEqual(westAgain.inputs.maintenanceHosts, []);
    assert.equal((await eastMonitor.round()).mode, 'paused');
  });
});
