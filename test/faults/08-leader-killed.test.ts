/**
 * Fault 8: three real `lbvm monitor` processes on one Redis (a leader, two standbys): exactly one
 * enqueues; SIGKILL the leader and exactly one standby takes over within two lease periods; no
 * decision is enqueued twice across the handover.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import YAML from 'yaml';
import { collectRound } from '../../collectors/collect.ts';
import { loadConfig } from '../../src/config/load.ts';
import { SimDriver } from '../../src/drivers/sim.ts';
import { createLogger } from '../../src/log.ts';
import { leaseKeys } from '../../src/monitor/lease.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { openStore, Spool } from '../../src/store/index.ts';
import { ROOT, cleanEnv } from '../helpers/cli.ts';
import { spawnTracked, waitFor, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

const GiB = 1024 ** 3;
const LEASE_MS = 2000;

describe('fault 8: leader monitor SIGKILLed, two standbys', () => {
  let server: RedisServer;
  const monitors: Tracked[] = [];
  let stopCollecting = false;
  let collector: Promise<void> | null = null;
  before(async () => {
    server = await startRedis();
  });
  after(async () => {
    stopCollecting = true;
    await collector;
    for (const monitor of monitors) await monitor.stop();
    await server.stop();
  });

  it('one standby takes over within two lease periods; no decision enqueued twice across the handover', async () => {
    const dir = tmpDir('lbvm-failover-');
    const settings = {
      redis: { url: server.url, prefix: 'fo' },
      store: { url: `files:${path.join(dir, 'samples')}`, spoolDir: path.join(dir, 'spool') },
      collect: { stateFile: path.join(dir, 'state.json') },
      monitor: { interval: '500ms', window: '30s', lease: `${LEASE_MS}ms`, listen: '127.0.0.1:0' },
      limits: {
        movesPerRound: 2,
        migrationsPerSourceHost: 8,
        migrationsPerDestinationHost: 8,
        migrationsInCluster: 16,
        cooldown: '1s',
      },
      log: { level: 'info', format: 'json' },
    };
    const configFile = path.join(dir, 'lbvm.yaml');
    fs.writeFileSync(configFile, YAML.stringify(settings));
    const { config } = loadConfig({ configPath: configFile, env: {} });
    const redis = connectRedis(server.url);
    const log = createLogger({ level: 'error', format: 'json' });
    const driver = new SimDriver({ config, redis });
    const vms = Array.from({ length: 12 }, (_, i) => ({
      name: `vm-${i}`,
      vcpus: 1,
      memBytes: 2 * GiB,
      cpuBase: 0.3,
      cpuSwing: 0,
      phase: 0,
      memUse: 0.5,
    }));
    await driver.cluster.define(
      ['h1', 'h2', 'h3', 'h4'].map((name) => ({ name, cpuCores: 4, memBytes: 16 * GiB })),
      vms,
      Object.fromEntries(vms.map((vm) => [vm.name, 'h1'])),
    );
    // Collectors for the four hosts, in this process, every 400 ms (no worker: jobs stay queued).
    const store = openStore(config.store.url, { log });
    const spool = new Spool({ dir: config.store.spoolDir, maxBytes: config.store.spoolMaxBytes, log });
    const collectAll = async () => {
      for (const node of ['h1', 'h2', 'h3', 'h4']) {
        await collectRound({
          node,
          store,
          spool,
          driver,
          stateFile: config.collect.stateFile,
          logicalCapacity: { cpuCores: 4, memBytes: 16 * GiB },
          log,
          baselineWaitMs: 0,
        });
      }
    };
    await collectAll();
    collector = (async () => {
      while (!stopCollecting) {
        await sleep(400);
        await collectAll().catch(() => {});
      }
    })();

    for (let i = 0; i < 3; i++) {
      monitors.push(
        spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'monitor', '--config', configFile], {
          env: cleanEnv(),
        }),
      );
    }
    const keys = leaseKeys('fo');
    const holder = async () => (await redis.get(keys.lease)) ?? '';
    await waitFor('a leader', async () => (await holder()) !== '', { timeoutMs: 30_000 });
    const queue = new MigrationQueue(redis, config);
    await waitFor('the leader enqueues', async () => (await queue.jobs()).length >= 4, { timeoutMs: 30_000 });

    const leaderPid = Number((await holder()).split(':').pop());
    const leader = monitors.find((m) => m.child.pid === leaderPid);
    assert.ok(leader, `the lease holder ${await holder()} is not one of the monitors`);
    const standbys = monitors.filter((m) => m !== leader);
    const firstJobs = await queue.jobs();
    const firstToken = Number(await redis.get(keys.fence));
    assert.ok(
      firstJobs.every((job) => job.data.fencingToken === firstToken),
      "every job carries the one leader's token",
    );
    for (const standby of standbys)
      assert.doesNotMatch(standby.output(), /"enqueued":\[\{/, 'a standby enqueued something');

    // The leader serves /healthz and /metrics on the address it logged.
    const listen = leader.output().match(/"listen":"([^"]+)".*serving \/healthz/)?.[1];
    assert.ok(listen, `no listen address in the leader's log:\n${leader.output().slice(-2000)}`);
    const health = (await (await fetch(`http://${listen}/healthz`)).json()) as {
      ok: boolean;
      leader: boolean;
      fencingToken: number;
    };
    assert.deepEqual([health.ok, health.leader, health.fencingToken], [true, true, firstToken]);
    const metrics = await (await fetch(`http://${listen}/metrics`)).text();
    assert.match(metrics, /^lbvm_monitor_leader 1$/m);
    assert.match(metrics, /^lbvm_moves_enqueued_total\{policy="[a-z]+"\} [1-9]/m);
    assert.match(metrics, /^lbvm_monitor_rounds_total\{outcome="enforce"\} [1-9]/m);

    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    await waitFor(
      'a standby takes over',
      async () => {
        const now = await holder();
        return now !== '' && !now.endsWith(`:${leaderPid}`);
      },
      { timeoutMs: 4 * LEASE_MS },
    );
    const takeoverMs = Date.now() - killedAt;
    const newPid = Number((await holder()).split(':').pop());
    const standby = standbys.find((m) => m.child.pid === newPid)!;
    assert.ok(standby, `the new lease holder ${await holder()} is not a standby`);
    const other = standbys.find((m) => m !== standby)!;
    assert.ok(takeoverMs <= 2 * LEASE_MS + 500, `takeover took ${takeoverMs} ms; the lease is ${LEASE_MS} ms`);
    assert.ok(Number(await redis.get(keys.fence)) > firstToken, 'the new leader has a higher fencing token');

    await waitFor('the new leader enqueues', async () => (await queue.jobs()).length > firstJobs.length, {
      timeoutMs: 20_000,
    });
    await sleep(1500);
    const jobs = await queue.jobs();
    const perVm = new Map<string, number>();
    for (const job of jobs) perVm.set(job.data.vm, (perVm.get(job.data.vm) ?? 0) + 1);
    const twice = [...perVm.entries()].filter(([, count]) => count > 1);
    assert.deepEqual(twice, [], `VMs enqueued twice across the handover: ${JSON.stringify(twice)}`);
    const newToken = Number(await redis.get(keys.fence));
    const later = jobs.filter((job) => !firstJobs.some((first) => first.jobId === job.jobId));
    assert.ok(
      later.every((job) => job.data.fencingToken === newToken),
      "every job after the handover carries the new leader's token",
    );
    assert.doesNotMatch(other.output(), /became the active monitor/, 'the second standby also took the lead');
    assert.doesNotMatch(other.output(), /"enqueued":\[\{/, 'the second standby enqueued something');

    // SIGTERM: the new leader finishes its round, releases the lease at once and exits 0; the last
    // standby takes the lease well before it could have expired.
    const stoppedAt = Date.now();
    standby.child.kill('SIGTERM');
    const exit = await standby.exited;
    assert.equal(exit.code, 0, standby.output().slice(-2000));
    assert.ok(Date.now() - stoppedAt < LEASE_MS * 2, 'a graceful stop took longer than the lease');
    assert.ok(!(await holder()).endsWith(`:${standby.child.pid}`), 'the lease was not released');
    await waitFor('the last standby takes over', async () => (await holder()).endsWith(`:${other.child.pid}`), {
      timeoutMs: 2 * LEASE_MS,
    });
    await queue.close();
    await store.close();
    redis.disconnect();
  });
});
