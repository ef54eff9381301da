/**
 * Fault 24 (issue 18): the Redis master SIGKILLed under Sentinel while a real `lbvm monitor` leads,
 * a real `lbvm worker` runs a migration (sim driver) and other jobs wait for their slot; and while a
 * worker live-migrates a real QEMU guest between two agents with another guest's move waiting. A real
 * master, replica and three `redis-sentinel` processes. What must hold: the replica is promoted; the
 * monitor and the worker carry on without a restart (their connections follow the master); every
 * job that was waiting runs once; no VM moves twice; the running migration ends once (done, or failed
 * and re-run); the time from the kill to the monitor's first new enqueue is reported.
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
import type { LbvmEvent } from '../../src/model/index.ts';
import { leaseKeys } from '../../src/monitor/lease.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { openStore, Spool } from '../../src/store/index.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import { qemuProcessesOf, startAgent, testGuestSpec, waitBooted, type TestAgent } from '../helpers/agent.ts';
import { Daemons, qemuQueueRig, stopAgents } from './support.ts';
import { ROOT, cleanEnv, runCli } from '../helpers/cli.ts';
import { spawnTracked, waitFor, type Tracked } from '../helpers/processes.ts';
import { startSentinel, type SentinelBed } from '../helpers/sentinel.ts';
import { selfSignedCert } from '../helpers/recorded-server.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { eventsOf, job, MIB, until } from '../queue/support.ts';

const GiB = 1024 ** 3;
const HOSTS = ['src', 'h1', 'h2', 'h3', 'h4'];

describe('fault 24: the Redis master SIGKILLed under Sentinel, a monitor leading, a migration running, jobs waiting', () => {
  let bed: SentinelBed;
  const daemons: Tracked[] = [];
  let stopCollecting = false;
  let collector: Promise<void> | null = null;
  const closers: (() => Promise<unknown> | void)[] = [];
  before(async () => {
    bed = await startSentinel({ password: 'redis-Pa55' });
  });
  after(async () => {
    stopCollecting = true;
    await collector;
    for (const daemon of daemons) await daemon.stop(3000);
    for (const close of closers) await close();
    await bed?.stop();
  });

  it('the replica is promoted; monitor and worker carry on; waiting jobs run once; no VM moves twice; the running migration ends once', async (t) => {
    const dir = tmpDir('lbvm-sentinel-failover-');
    const configFile = path.join(dir, 'lbvm.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        redis: { url: bed.target.url, prefix: 'sf', sentinels: bed.target.sentinels, name: bed.target.name },
        store: { url: `files:${path.join(dir, 'samples')}`, spoolDir: path.join(dir, 'spool') },
        collect: { stateFile: path.join(dir, 'state.json'), driver: 'sim' },
        // The lease outlives the failover (a few seconds here), so the leader keeps its token.
        monitor: { interval: '500ms', window: '30s', lease: '10s', listen: '127.0.0.1:0' },
        // One migration out of a host at a time: the operator's moves out of src wait for their slot.
        limits: {
          movesPerRound: 2,
          migrationsPerSourceHost: 1,
          migrationsPerDestinationHost: 4,
          migrationsInCluster: 4,
          cooldown: '10m',
        },
        // The operator's VMs (w-*) are left to the operator: the monitor balances h1's alone.
        rules: { ignore: ['w-*'] },
        migration: { lockDuration: '10s', slotWait: '300ms', backoff: '500ms', bandwidthBytesPerSec: 1 * GiB },
        log: { level: 'info', format: 'json' },
      }),
    );
    const { config } = loadConfig({ configPath: configFile, env: {} });
    const redis = connectRedis(config.redis);
    closers.push(() => redis.disconnect());
    const log = createLogger({ level: 'error', format: 'json' });
    const driver = new SimDriver({ config, redis });
    // h1 overloaded by 16 VMs (a sim migration of 2 GiB takes 2 s at 1 GiB/s): the monitor has moves
    // to make before and after the kill. On src, 4 VMs of 3 GiB the operator moves by hand.
    const vm = (name: string, memBytes: number, cpuBase: number) => ({
      name,
      vcpus: 1,
      memBytes,
      cpuBase,
      cpuSwing: 0,
      phase: 0,
      memUse: 0.5,
    });
    const balanced = Array.from({ length: 16 }, (_, i) => vm(`vm-${i}`, 2 * GiB, 0.35));
    const manual = Array.from({ length: 4 }, (_, i) => vm(`w-${i + 1}`, 3 * GiB, 0.1));
    await driver.cluster.define(
      HOSTS.map((name) => ({ name, cpuCores: 4, memBytes: 64 * GiB })),
      [...balanced, ...manual],
      Object.fromEntries([
        ...balanced.map((entry) => [entry.name, 'h1']),
        ...manual.map((entry) => [entry.name, 'src']),
      ]),
    );
    const store = openStore(config.store.url, { log });
    closers.push(() => store.close());
    const spool = new Spool({ dir: config.store.spoolDir, maxBytes: config.store.spoolMaxBytes, log });
    const collectAll = async () => {
      for (const node of HOSTS)
        await collectRound({
          node,
          store,
          spool,
          driver,
          stateFile: config.collect.stateFile,
          logicalCapacity: { cpuCores: 4, memBytes: 64 * GiB },
          log,
          baselineWaitMs: 0,
        });
    };
    await collectAll();
    collector = (async () => {
      while (!stopCollecting) {
        await sleep(400);
        await collectAll().catch(() => {});
      }
    })();

    const spawn = (command: string, ...args: string[]) => {
      const daemon = spawnTracked(
        process.execPath,
        [path.join(ROOT, 'bin/lbvm.js'), command, '--config', configFile, ...args],
        { env: cleanEnv() },
      );
      daemons.push(daemon);
      return daemon;
    };
    const monitor = spawn('monitor');
    const worker = spawn('worker');
    const queue = new MigrationQueue(redis, config);
    closers.unshift(() => queue.close());
    const events = async (type?: LbvmEvent['type']) =>
      (await queue.events.read({ count: 100_000 }))
        .map((stored) => stored.event)
        .filter((event) => !type || event.type === type);
    await waitFor('the monitor to lead', async () => (await redis.get(leaseKeys('sf').lease)) !== null, {
      process: monitor,
      timeoutMs: 30_000,
    });
    const running = async () => {
      const ended = new Set(
        (await events())
          .filter((event) => event.type === 'migration.finished' || event.type === 'migration.failed')
          .map((event) => event.jobId),
      );
      return (await events('migration.started')).filter((event) => !ended.has(event.jobId));
    };
    for (const [index, entry] of manual.entries()) {
      const result = await queue.enqueue({
        vm: entry.name,
        from: 'src',
        to: `h${2 + (index % 3)}`,
        reason: 'operator',
        planId: 'by-hand',
        requestedBy: 'test',
        fencingToken: null,
        mode: 'live',
      });
      assert.equal(result.status, 'queued');
    }
    await until(
      "an operator's migration running, others waiting, and the monitor moving VMs",
      async () =>
        (await running()).some((event) => event.vm?.startsWith('w-')) &&
        (await queue.inFlight()).some((job) => job.state !== 'active' && job.vm.startsWith('w-')) &&
        (await events('migration.queued')).some((event) => event.vm?.startsWith('vm-')),
      60_000,
      async () => `monitor:\n${monitor.output().slice(-3000)}\nworker:\n${worker.output().slice(-2000)}`,
    );

    // What was in flight, made sure to be on the replica (WAIT: its offset passed a write made after).
    const inFlight = await queue.inFlight();
    const runningJob = (await running()).find((event) => event.vm?.startsWith('w-'))!.jobId!;
    const tokenBefore = Number(await redis.get(leaseKeys('sf').fence));
    await redis.set('sf:barrier', String(Date.now()));
    assert.equal(await redis.call('WAIT', '1', '5000'), 1, 'the replica acknowledged what was in flight');

    const killedAt = Date.now();
    const old = await bed.killMaster();
    const promoted = await bed.waitForPromotion(old);
    const promotedMs = Date.now() - killedAt;
    await until(
      'a job enqueued by the monitor after the kill',
      async () => (await events('migration.queued')).some((event) => event.timeMs > killedAt),
      60_000,
      async () => monitor.output().slice(-3000),
    );
    const firstEnqueueMs =
      Math.min(
        ...(await events('migration.queued')).filter((event) => event.timeMs > killedAt).map((event) => event.timeMs),
      ) - killedAt;
    t.diagnostic(`kill -> replica promoted: ${promotedMs} ms; kill -> first new enqueue: ${firstEnqueueMs} ms`);

    const ids = inFlight.map((job) => job.jobId);
    await until(
      'every job in flight at the kill to end',
      async () => {
        const states = await Promise.all(ids.map(async (id) => (await queue.job(id))?.state));
        return states.every((state) => state === 'completed' || state === 'failed');
      },
      90_000,
      async () => worker.output().slice(-3000),
    );
    stopCollecting = true;
    await collector;

    // lbm too asks the sentinels: after the failover it reads the new master.
    const status = await runCli('lbm', ['jobs', '--json', '--config', configFile], { cwd: dir, env: cleanEnv() });
    assert.equal(status.code, 0, status.stderr);
    const listed = (JSON.parse(status.stdout) as { jobs: { jobId: string }[] }).jobs.map((entry) => entry.jobId);
    for (const id of ids) assert.ok(listed.includes(id), `lbm jobs lists ${id}`);

    for (const [name, daemon] of Object.entries({ monitor, worker })) {
      assert.equal(daemon.child.exitCode, null, `${name} exited:\n${daemon.output().slice(-2000)}`);
      const output = daemon.output();
      assert.match(
        output,
        new RegExp(`following the Redis master to 127\\.0\\.0\\.1:${promoted.port} \\(failover\\)`),
        `${name} followed the master`,
      );
      assert.ok(
        output.split('\n').filter((line) => /Redis unreachable; retrying/.test(line)).length <= 1,
        `${name}: the outage logged at most once`,
      );
      assert.ok(!output.includes('redis-Pa55'), `${name} logged the Redis password`);
    }
    const all = await events();
    // Every job waiting at the kill ran once, to its destination.
    for (const job of inFlight) {
      const view = (await queue.job(job.jobId))!;
      assert.equal(view.state, 'completed', `${job.jobId} (${job.vm}) ended ${view.state}: ${view.failedReason}`);
      assert.equal(await driver.locate(job.vm), job.to);
      assert.equal(
        all.filter((event) => event.type === 'migration.finished' && event.jobId === job.jobId).length,
        1,
        `${job.vm}: one finished event`,
      );
    }
    assert.deepEqual(
      all.filter((event) => event.type === 'migration.dropped'),
      [],
      'no job dropped: the leader kept its token across the failover',
    );
    const migrated = all.filter((event) => event.type === 'migration.finished' && event.detail?.outcome === 'migrated');
    assert.equal(
      new Set(migrated.map((event) => event.vm)).size,
      migrated.length,
      `no VM moved twice: ${migrated.map((event) => event.vm).join(', ')}`,
    );
    // The migration running at the kill ended once: finished, every earlier attempt ended by a failure.
    const attempts = all
      .filter((event) => event.jobId === runningJob && /started|finished|failed/.test(event.type))
      .map((event) => event.type);
    assert.equal(attempts.at(-1), 'migration.finished', attempts.join(','));
    assert.equal(
      attempts.filter((type) => type === 'migration.failed').length,
      attempts.filter((type) => type === 'migration.started').length - 1,
      attempts.join(','),
    );
    // Jobs enqueued after the kill carry a token no older than the leader's before it.
    const after = (await queue.jobs()).filter((job) => job.enqueuedMs > killedAt);
    assert.ok(
      after.length > 0 && after.every((job) => (job.data.fencingToken ?? 0) >= tokenBefore),
      "new jobs carry the leader's token",
    );
  });
});

describe('fault 24 (QEMU): the Redis master SIGKILLed under Sentinel while a worker live-migrates a real guest and another waits', () => {
  let bed: SentinelBed;
  let a: TestAgent;
  let b: TestAgent;
  const daemons = new Daemons();
  const closers: (() => Promise<unknown>)[] = [];
  before(async () => {
    [bed, a, b] = await Promise.all([startSentinel(), startAgent('host-a'), startAgent('host-b')]);
    await Promise.all(
      ['db-1', 'db-2'].map((name) => a.client.start(testGuestSpec(name, { memPercent: 40, dirtyPercent: 2 }))),
    );
    await Promise.all(['db-1', 'db-2'].map((name) => waitBooted(a, name)));
  });
  after(async () => {
    await daemons.stopAll();
    for (const close of closers) await close();
    await stopAgents(a, b);
    await bed?.stop();
  });

  it('the worker follows the master; the running migration ends once, the waiting one runs once, each guest runs in one place', async () => {
    // 12 MiB/s: the first guest's copy spans the failover; one migration out of host-a at a time.
    const rig = qemuQueueRig(bed.target, daemons, a, b, 12 * MIB, 3, {
      'migration.lockDuration': '10s',
      'limits.migrationsPerSourceHost': 1,
    });
    closers.push(() => rig.close());
    const worker = rig.spawnWorker();
    const first = await rig.queue.enqueue(job('db-1', a.host, b.host, { planId: 'qemu-failover' }));
    await until(
      'the live migration to be under way',
      async () => ((await rig.queue.job(first.jobId))?.progress?.bytesCopied ?? 0) > 0,
      90_000,
      async () => worker.output().slice(-3000),
    );
    const second = await rig.queue.enqueue(job('db-2', a.host, b.host, { planId: 'qemu-failover' }));
    assert.equal(second.status, 'queued');
    const barrier = connectRedis(bed.target);
    closers.push(async () => barrier.disconnect());
    await barrier.set(`${rig.config.redis.prefix}:barrier`, '1');
    assert.equal(await barrier.call('WAIT', '1', '5000'), 1);
    const old = await bed.killMaster();
    await bed.waitForPromotion(old);
    await until(
      'both jobs to end',
      async () => {
        const states = await Promise.all(
          [first.jobId, second.jobId].map(async (id) => (await rig.queue.job(id))?.state),
        );
        return states.every((state) => state === 'completed' || state === 'failed');
      },
      180_000,
      async () => worker.output().slice(-3000),
    );
    assert.equal(worker.child.exitCode, null, 'the worker carried on without a restart');
    const driver = new QemuDriver(
      new Map([
        [a.host, a.client],
        [b.host, b.client],
      ]),
      createLogger({ level: 'warn', format: 'json' }),
    );
    for (const [name, queued] of [
      ['db-1', first],
      ['db-2', second],
    ] as const) {
      const view = (await rig.queue.job(queued.jobId))!;
      assert.equal(view.state, 'completed', `${name}: ${view.failedReason}`);
      assert.ok(['migrated', 'already-there'].includes(view.result?.outcome ?? ''), `${name}: ${view.result?.outcome}`);
      assert.equal(await driver.locate(name), b.host);
      assert.equal(qemuProcessesOf(name).length, 1, `${name} runs in exactly one place`);
    }
    const all = await eventsOf(rig);
    assert.equal(
      all.filter((event) => event.type === 'migration.finished' && event.jobId === second.jobId).length,
      1,
      'the waiting job ran once',
    );
    const attempts = all
      .filter((event) => event.jobId === first.jobId && /started|finished|failed/.test(event.type))
      .map((event) => event.type);
    assert.equal(attempts.at(-1), 'migration.finished', attempts.join(','));
    assert.equal(
      attempts.filter((type) => type === 'migration.failed').length,
      attempts.filter((type) => type === 'migration.started').length - 1,
      attempts.join(','),
    );
    assert.match(worker.output(), /following the Redis master to/);
  });
});

describe('fault 24 (TLS): sentinels and servers on TLS alone, with passwords', () => {
  let bed: SentinelBed;
  let caFile = '';
  before(async () => {
    const cert = await selfSignedCert();
    caFile = cert.certFile;
    bed = await startSentinel({
      tls: { certFile: cert.certFile, keyFile: cert.keyFile, caFile: cert.certFile },
      password: 'tls-Redis-pw',
      sentinelPassword: 'tls-Sentinel-pw',
    });
  });
  after(async () => {
    await bed?.stop();
  });

  it('rediss:// reaches the sentinels and the master over TLS, before and after a failover; tokens keep their order; an untrusted certificate is refused cleanly', async () => {
    const dir = tmpDir();
    const env = (extra: Record<string, string> = {}) =>
      cleanEnv({
        LBVM_REDIS_URL: bed.target.url,
        LBVM_REDIS_SENTINELS: bed.target.sentinels.join(','),
        LBVM_REDIS_NAME: bed.target.name,
        LBVM_REDIS_SENTINEL_PASSWORD: bed.target.sentinelPassword,
        LBVM_REDIS_PREFIX: 'tls',
        LBVM_STORE_URL: `files:${path.join(dir, 'samples')}`,
        LBVM_MONITOR_LISTEN: '127.0.0.1:0',
        ...extra,
      });
    assert.match(bed.target.url, /^rediss:/);
    const outputs: string[] = [];
    /** `lbvm monitor --once` until it leads (the sentinels may still be agreeing): its token. */
    const tokenOfOneRound = async (): Promise<number> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const result = await runCli('lbvm', ['monitor', '--once', '--json'], {
          cwd: dir,
          env: env({ NODE_EXTRA_CA_CERTS: caFile }),
        });
        outputs.push(result.stdout, result.stderr);
        assert.equal(result.code, 0, result.stderr);
        const token = (JSON.parse(result.stdout) as { fencingToken: number | null }).fencingToken;
        if (token !== null) return token;
        if (Date.now() > deadline) throw new Error(`no token within 30 s:\n${result.stdout}\n${result.stderr}`);
        await sleep(500);
      }
    };
    const before = await tokenOfOneRound();
    assert.equal(before, 1);
    const old = await bed.killMaster();
    await bed.waitForPromotion(old);
    const afterFailover = await tokenOfOneRound();
    assert.equal(afterFailover, 1_000_000_001, 'the first token of epoch 1, above every token of epoch 0');
    const jobs = await runCli('lbm', ['jobs', '--json'], { cwd: dir, env: env({ NODE_EXTRA_CA_CERTS: caFile }) });
    outputs.push(jobs.stdout, jobs.stderr);
    assert.equal(jobs.code, 0, jobs.stderr);
    // Without the CA the certificate is not trusted: exit 3, the sentinels named, no stack, no secret.
    const refused = await runCli('lbm', ['jobs', '--json'], { cwd: dir, env: env() });
    outputs.push(refused.stdout, refused.stderr);
    assert.equal(refused.code, 3, refused.stderr);
    assert.match(refused.stderr, /Redis master "lbvm" of sentinels 127\.0\.0\.1:\d+/);
    assert.doesNotMatch(refused.stderr, /    at /);
    for (const text of outputs)
      assert.ok(!/tls-Redis-pw|tls-Sentinel-pw/.test(text), `a password was printed:\n${text}`);
  });
});
