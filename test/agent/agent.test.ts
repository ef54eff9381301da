/**
 * `lbvm agent` and the qemu driver with real QEMU guests under TCG: two agents on this machine are
 * two hosts. A running guest (its tick counter going) moves live and by checkpoint through the
 * queue and a worker; it ends on one host only, its counter never goes backwards, and the source
 * keeps no QEMU. (Calls without the token: test/faults/18-agent-no-credential.test.ts.) Hostile VM names stay plain data; an agent
 * restart re-adopts running guests; a cancelled migration leaves the guest on its source; the source
 * says a live migration completed only once its copy is gone.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import { guestId } from '../../src/drivers/qemu/guest.ts';
import { createLogger } from '../../src/log.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/util/redis.ts';
import { startMigrationWorker, type MigrationWorker } from '../../src/queue/worker.ts';
import {
  qemuPids,
  qemuProcessesOf,
  startAgent,
  testGuestSpec,
  ticks,
  waitBooted,
  waitTicks,
  type TestAgent,
} from '../helpers/agent.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { eventsOf, job, testConfig, until } from '../queue/support.ts';

const GUEST = 'web-1';

describe('lbvm agent and the qemu driver (real QEMU guests)', () => {
  let redis: RedisServer;
  let a: TestAgent;
  let b: TestAgent;
  let driver: QemuDriver;
  const closers: (() => Promise<unknown>)[] = [];
  const log = createLogger({ level: 'warn', format: 'json' });

  before(async () => {
    [redis, a, b] = await Promise.all([startRedis(), startAgent('host-a'), startAgent('host-b')]);
    driver = new QemuDriver(
      new Map([
        [a.host, a.client],
        [b.host, b.client],
      ]),
      log,
    );
    // 40% of RAM held and 2% rewritten each second: there is real memory to copy.
    await a.client.start(testGuestSpec(GUEST, { cpuPercent: 10, memPercent: 40, dirtyPercent: 2 }));
    await waitBooted(a, GUEST);
  });
  after(async () => {
    for (const close of closers) await close().catch(() => {});
    for (const agent of [a, b]) {
      if (!agent) continue;
      for (const guest of (await agent.client.list().catch(() => ({ guests: [] }))).guests)
        await agent.client.stop(guest.name).catch(() => {});
      await agent.stop();
    }
    await redis?.stop();
  });

  /** Queue, worker and driver wired as `lbvm worker` wires them. */
  function rig(overrides: Record<string, unknown> = {}) {
    const config = testConfig(redis.url, {
      'migration.lockDuration': '10s',
      'migration.slotWait': '200ms',
      ...overrides,
    });
    const connection = connectRedis(redis.url, { blocking: true });
    const queue = new MigrationQueue(connection, config);
    const worker: MigrationWorker = startMigrationWorker({ config, driver, log, connection });
    closers.push(
      () => worker.close(true),
      () => queue.close(),
      async () => connection.disconnect(),
    );
    return { config, queue, events: queue.events };
  }

  it('passes hostile VM names as plain data: nothing runs, no file is written outside the state folder', async () => {
    const marker = path.join(tmpDir(), 'pwned');
    const names: string[] = [
      `x; rm -rf ${path.dirname(marker)}; touch ${marker}`,
      `$(touch ${marker})`,
      '../../etc',
      `\`touch ${marker}\`,id=evil`,
    ];
    for (const name of names) {
      const started = await a.client.start(testGuestSpec(name));
      assert.equal(started.name, name);
    }
    const listed = (await a.client.list()).guests.map((guest) => guest.name);
    for (const name of names) {
      assert.ok(listed.includes(name), `${name} listed as it was given`);
      const pids = qemuProcessesOf(name);
      assert.equal(pids.length, 1);
      assert.ok(
        !fs.readFileSync(`/proc/${pids[0]}/cmdline`, 'utf8').includes(name),
        "the name never reaches QEMU's command line",
      );
    }
    assert.ok(fs.existsSync(path.dirname(marker)), 'the folder named in the VM name is still there');
    assert.ok(!fs.existsSync(marker), 'no command in a VM name ran');
    assert.deepEqual(
      fs.readdirSync(path.join(a.stateDir, 'guests')).filter((entry) => !/^[0-9a-f]{20}$/.test(entry)),
      [],
    );
    assert.equal(await driver.locate(names[0]!), a.host);
    for (const name of names) await a.client.stop(name);
    for (const name of names) assert.deepEqual(qemuProcessesOf(name), []);
    assert.deepEqual(
      (await a.client.list()).guests.map((guest) => guest.name),
      [GUEST],
    );
  });

  it('moves a running guest live from A to B through the queue: it runs on B only, its counter never went backwards', async () => {
    const { queue, events } = rig();
    const ticksOnA = await waitTicks(a, GUEST, (seen) => seen.length >= 2, 'the guest counting on A');
    const queued = await queue.enqueue(job(GUEST, a.host, b.host, { planId: 'live-1' }));
    assert.equal(queued.status, 'queued');
    await until(
      'the live migration to finish',
      async () => ['completed', 'failed'].includes((await queue.job(queued.jobId))?.state ?? ''),
      120_000,
    );
    const view = await queue.job(queued.jobId);
    assert.equal(view?.state, 'completed', view?.failedReason ?? '');
    assert.equal(view?.result?.outcome, 'migrated');
    assert.ok((view?.result?.bytesCopied ?? 0) > 40 * 1024 * 1024, `copied ${view?.result?.bytesCopied} bytes`);
    assert.ok(view?.result?.downtimeMs !== null && view!.result!.downtimeMs! >= 0, 'downtime reported by QMP');
    // On B only; A has no QEMU left for it.
    assert.equal(await driver.locate(GUEST), b.host);
    assert.deepEqual(
      (await a.client.list()).guests.map((guest) => guest.name),
      [],
    );
    assert.deepEqual(qemuPids(a.stateDir), []);
    const processes = qemuProcessesOf(GUEST);
    assert.equal(processes.length, 1, `one QEMU for ${GUEST} on this machine, found ${processes.length}`);
    assert.deepEqual(qemuPids(b.stateDir), processes);
    // The counter continues on B from where it was on A.
    const ticksOnB = await waitTicks(b, GUEST, (seen) => seen.length >= 2, 'the guest to keep counting on B');
    assert.ok(
      ticksOnB[0]! >= ticksOnA[ticksOnA.length - 1]!,
      `counter went backwards: A ended at ${ticksOnA.at(-1)}, B began at ${ticksOnB[0]}`,
    );
    for (let index = 1; index < ticksOnB.length; index++)
      assert.ok(ticksOnB[index]! > ticksOnB[index - 1]!, `the counter on B did not go up: ${ticksOnB.join(', ')}`);
    const types = (await eventsOf({ events })).map((event) => event.type);
    assert.deepEqual(types, ['migration.queued', 'migration.started', 'migration.finished']);
    const inventory = await driver.inventory(b.host);
    const vm = inventory.vms.find((entry) => entry.name === GUEST)!;
    assert.equal(vm.state, 'running');
    assert.equal(vm.memBytes, 128 * 1024 * 1024);
    assert.match(vm.instanceId ?? '', /^\d+:\d+$/);
    assert.ok(
      (vm.cpuTimeMs ?? 0) > 0 && vm.memUsedBytes > 0,
      `cpuTimeMs ${vm.cpuTimeMs}, memUsedBytes ${vm.memUsedBytes}`,
    );
  });

  it('re-adopts a running guest when its agent restarts (same QEMU, counter going)', async () => {
    const pidBefore = qemuPids(b.stateDir);
    await b.stop();
    await sleep(1500);
    assert.deepEqual(qemuPids(b.stateDir), pidBefore, 'the guest survived its agent');
    await b.start();
    const listed = (await b.client.list()).guests;
    assert.equal(listed.length, 1);
    assert.equal(listed[0]!.role, 'running');
    assert.equal(listed[0]!.pid, pidBefore[0]);
    const tick = ticks(b.console(GUEST)).at(-1)!;
    await waitTicks(b, GUEST, (seen) => seen.at(-1)! > tick, 'the re-adopted guest to keep counting');
  });

  it('cancelling a live migration leaves the guest running on its source and nothing on the destination', async () => {
    const controller = new AbortController();
    const progress: number[] = [];
    // 128 KiB/s: the guest's 50 MiB of held memory cannot be copied before we cancel (and the guest
    // dirties memory faster than that: QEMU measures it).
    const moving = driver.migrate({
      vm: GUEST,
      from: b.host,
      to: a.host,
      mode: 'live',
      downtimeLimitMs: 300,
      bandwidthBytesPerSec: 128 * 1024,
      signal: controller.signal,
      attemptId: 'cancel-test',
      onProgress: (p) => progress.push(p.bytesCopied),
    });
    await until('the migration to be under way', async () => progress.some((bytes) => bytes > 0), 30_000);
    controller.abort(new Error('cancelled by the test'));
    await assert.rejects(moving, /cancelled by the test/);
    const status = await b.client.call<{ status: string; autoConverge: boolean; dirtyBytesPerSec: number | null }>(
      '/v1/migrate/status',
      { name: GUEST },
    );
    assert.equal(status.status, 'cancelled');
    assert.ok((status.dirtyBytesPerSec ?? 0) > 128 * 1024, `measured dirty rate ${status.dirtyBytesPerSec} B/s`);
    assert.equal(
      status.autoConverge,
      true,
      'auto-converge on (QEMU throttles the guest only if it would not converge)',
    );
    await until(
      'the destination to be clean',
      async () => (await a.client.list()).guests.length === 0 && qemuPids(a.stateDir).length === 0,
      15_000,
    );
    assert.equal(await driver.locate(GUEST), b.host);
    const guest = (await b.client.list()).guests[0]!;
    assert.equal(guest.status, 'running');
    const tick = ticks(b.console(GUEST)).at(-1)!;
    await waitTicks(b, GUEST, (seen) => seen.at(-1)! > tick, 'the guest to keep counting on its source');
  });

  it('moves the guest back by checkpoint (stop, save, copy, restore): one place, counter not backwards', async () => {
    const { queue } = rig();
    const ticksOnB = ticks(b.console(GUEST));
    const queued = await queue.enqueue(job(GUEST, b.host, a.host, { planId: 'checkpoint-1', mode: 'checkpoint' }));
    await until(
      'the checkpoint migration to finish',
      async () => ['completed', 'failed'].includes((await queue.job(queued.jobId))?.state ?? ''),
      120_000,
    );
    const view = await queue.job(queued.jobId);
    assert.equal(view?.state, 'completed', view?.failedReason ?? '');
    assert.ok((view?.result?.bytesCopied ?? 0) > 40 * 1024 * 1024, `copied ${view?.result?.bytesCopied} bytes`);
    assert.equal(await driver.locate(GUEST), a.host);
    assert.deepEqual(qemuPids(b.stateDir), []);
    assert.equal(qemuProcessesOf(GUEST).length, 1);
    const ticksOnA = await waitTicks(
      a,
      GUEST,
      (seen) => seen.length >= 2,
      'the guest to keep counting after the restore',
    );
    assert.ok(ticksOnA[0]! >= ticksOnB.at(-1)!, `counter went backwards: ${ticksOnB.at(-1)} then ${ticksOnA[0]}`);
  });

  it("the source says a live migration completed only when its copy is gone (the driver's word that the move is done)", async () => {
    // The source's status asked as often as it answers while the guest moves from A to B: the first
    // 'completed' must find A listing no guest and running no QEMU of it. (The agent once said
    // 'completed' and then quit QEMU, which takes a while: the driver reported the move done meanwhile.)
    const moving = driver.migrate({
      vm: GUEST,
      from: a.host,
      to: b.host,
      mode: 'live',
      downtimeLimitMs: 300,
      bandwidthBytesPerSec: 125e6,
      signal: AbortSignal.timeout(120_000),
      attemptId: 'completed-means-gone',
    });
    let settled = false;
    void moving.finally(() => (settled = true)).catch(() => {});
    let asked = 0;
    for (;;) {
      const status = await a.client
        .call<{ status: string; sourceRole: string; attemptId: string }>('/v1/migrate/status', { name: GUEST })
        .catch(() => null);
      asked++;
      // Until the driver has started this attempt, the status is the last one's (the move by checkpoint).
      if (status?.attemptId !== 'completed-means-gone') {
        assert.ok(!settled, 'the move ended before the source reported its attempt');
        continue;
      }
      if (status.status === 'completed') {
        assert.equal(status.sourceRole, 'departed');
        assert.deepEqual((await a.client.list()).guests, []);
        assert.deepEqual(qemuPids(a.stateDir), []);
        break;
      }
      assert.ok(!settled, `the move ended while the source says ${status.status}`);
    }
    await moving;
    assert.ok(asked > 5, `the status was asked ${asked} times`);
    assert.equal(await driver.locate(GUEST), b.host);
    assert.equal(qemuProcessesOf(GUEST).length, 1);
  });
});
