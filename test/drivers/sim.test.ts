/**
 * The sim driver on a real Redis: the seeded cluster is the same in every process, its placement
 * is shared through Redis, CPU use follows the seeded pattern, and a cancelled migration leaves the
 * VM where it was. createDriver builds it from the config.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createDriver } from '../../src/drivers/index.ts';
import { generateSimCluster, SimDriver } from '../../src/drivers/sim.ts';
import { createLogger } from '../../src/log.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { testConfig } from '../queue/support.ts';

describe('sim driver', () => {
  let redis: RedisServer;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  it('builds the same seeded cluster everywhere, sized by config.sim, and shares it through Redis', async () => {
    const config = testConfig(redis.url, {
      'sim.hosts': 5,
      'sim.vms': 40,
      'sim.seed': 42,
      'sim.hostMem': '32GiB',
      'sim.hostCpuCores': 8,
    });
    assert.deepEqual(generateSimCluster(config.sim), generateSimCluster(config.sim));
    assert.notDeepEqual(
      generateSimCluster(config.sim).placement,
      generateSimCluster({ ...config.sim, seed: 43 }).placement,
    );
    const log = createLogger({ level: 'error', format: 'json' });
    // Two drivers with their own connections stand for two processes (a collector and a worker).
    const first = (await createDriver('sim', { config, log })) as SimDriver;
    const second = (await createDriver('sim', { config, log })) as SimDriver;
    const hosts = await first.cluster.hosts();
    assert.equal(hosts.length, 5);
    assert.deepEqual(hosts[0], { name: 'sim-h001', cpuCores: 8, memBytes: 32 * 1024 ** 3 });
    const inventories = await Promise.all(hosts.map((host) => second.inventory(host.name)));
    assert.equal(
      inventories.reduce((sum, inventory) => sum + inventory.vms.length, 0),
      40,
    );
    for (const inventory of inventories) {
      assert.equal(inventory.cpuCores, 8);
      for (const vm of inventory.vms) {
        assert.ok(
          vm.cpuUsedCores! >= 0 && vm.cpuUsedCores! <= vm.vcpus,
          `${vm.name} uses ${vm.cpuUsedCores} of ${vm.vcpus} cores`,
        );
        assert.ok(vm.memUsedBytes > 0 && vm.memUsedBytes <= vm.memBytes);
      }
    }
    // A move made through one is seen by the other.
    const vm = inventories[0]!.vms[0]!;
    const target = hosts.find((host) => host.name !== vm.host)!.name;
    await first.migrate({
      vm: vm.name,
      from: vm.host,
      to: target,
      mode: 'live',
      downtimeLimitMs: 300,
      bandwidthBytesPerSec: 1024 ** 4,
      signal: new AbortController().signal,
    });
    assert.equal(await second.locate(vm.name), target);
    await Promise.all([first.close(), second.close()]);
  });

  it('follows its seeded pattern: same time, same numbers; the load swings over the period', async () => {
    const config = testConfig(redis.url, { 'sim.hosts': 2, 'sim.vms': 10, 'sim.period': '1h' });
    const client = connectRedis(redis.url);
    let nowMs = 1_700_000_000_000;
    const driver = new SimDriver({ config, redis: client, now: () => nowMs });
    await driver.cluster.ensure(config.sim);
    const at = async () => (await driver.inventory('sim-h001')).vms.map((vm) => vm.cpuUsedCores!);
    assert.deepEqual(await at(), await at());
    const samples: number[][] = [];
    for (let step = 0; step < 4; step++) {
      samples.push(await at());
      nowMs += 15 * 60_000;
    }
    assert.ok(
      samples.some(
        (sample, index) => index > 0 && sample.some((value, vm) => Math.abs(value - samples[0]![vm]!) > 0.01),
      ),
      'CPU use changes over the period',
    );
    client.disconnect();
  });

  it('a cancelled migration leaves the VM on its source; a migration takes memory ÷ bandwidth', async () => {
    const config = testConfig(redis.url);
    const client = connectRedis(redis.url);
    const driver = new SimDriver({ config, redis: client });
    await driver.cluster.define(
      [
        { name: 'a', cpuCores: 4, memBytes: 8 * 1024 ** 3 },
        { name: 'b', cpuCores: 4, memBytes: 8 * 1024 ** 3 },
      ],
      [{ name: 'vm', vcpus: 1, memBytes: 100 * 1024 * 1024, cpuBase: 0.1, cpuSwing: 0, phase: 0, memUse: 0.5 }],
      { vm: 'a' },
    );
    const controller = new AbortController();
    const moving = driver.migrate({
      vm: 'vm',
      from: 'a',
      to: 'b',
      mode: 'live',
      downtimeLimitMs: 300,
      bandwidthBytesPerSec: 50 * 1024 * 1024,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(new Error('stop')), 300);
    await assert.rejects(moving, /stop/);
    assert.equal(await driver.locate('vm'), 'a');
    const progress: number[] = [];
    const outcome = await driver.migrate({
      vm: 'vm',
      from: 'a',
      to: 'b',
      mode: 'live',
      downtimeLimitMs: 300,
      // 2 s, reported every 200 ms: several reports even when a busy machine stalls this process a while
      // (at 200 MiB/s, 0.5 s in 50 ms ticks, a stall left 2 reports once).
      bandwidthBytesPerSec: 50 * 1024 * 1024,
      signal: new AbortController().signal,
      onProgress: (p) => progress.push(p.fraction),
    });
    assert.ok(outcome.totalMs >= 1800, `100 MiB at 50 MiB/s took ${outcome.totalMs} ms`);
    assert.equal(outcome.bytesCopied, 100 * 1024 * 1024);
    assert.ok(progress.length >= 3 && progress.at(-1) === 1);
    assert.equal(await driver.locate('vm'), 'b');
    client.disconnect();
  });
});
