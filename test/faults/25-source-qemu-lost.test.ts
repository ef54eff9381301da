/**
 * Fault 25: the source side of a live migration goes away under the qemu driver (real agents, real
 * QEMU guests). The driver must return within a bound, never wait on a source that cannot answer,
 * never remove a destination that runs the guest, and leave no QEMU behind:
 * - the source agent frozen after the stream completed, then a cancel: the destination runs the
 *   guest, so the move is reported done (not an error, and the guest is not aborted there);
 * - the source QEMU frozen, then a cancel it cannot confirm: a clear error within the bound, the
 *   destination's incoming QEMU removed, and the guest running on at its source once it thaws;
 * - the source QEMU killed (SIGKILL) mid-migration: a clear error within seconds, no QEMU left.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import type { MigrateRequest } from '../../src/drivers/driver.ts';
import {
  driverOf,
  qemuPids,
  qemuProcessesOf,
  startAgent,
  testGuestSpec,
  ticks,
  waitBooted,
  type TestAgent,
} from '../helpers/agent.ts';
import { until } from '../queue/support.ts';
import { stopAgents } from './support.ts';

const GUEST = 'api-1';
const MIB = 1024 * 1024;

describe('fault 25: the source of a live migration lost (agent or QEMU frozen, QEMU killed)', () => {
  let a: TestAgent;
  let b: TestAgent;
  let driver: QemuDriver;

  before(async () => {
    [a, b] = await Promise.all([startAgent('host-a'), startAgent('host-b')]);
    driver = driverOf([a, b]);
    await a.client.start(testGuestSpec(GUEST, { memPercent: 20, dirtyPercent: 2 }));
    await waitBooted(a, GUEST);
  });
  after(async () => {
    for (const agent of [a, b]) if (agent) process.kill(agent.process.child.pid!, 'SIGCONT');
    await stopAgents(a, b);
  });

  /** A live migration of the guest under way (some bytes copied), and its controller. */
  async function underWay(from: TestAgent, to: TestAgent, bandwidthBytesPerSec: number) {
    const controller = new AbortController();
    let copied = 0;
    const request: MigrateRequest = {
      vm: GUEST,
      from: from.host,
      to: to.host,
      mode: 'live',
      downtimeLimitMs: 300,
      bandwidthBytesPerSec,
      signal: controller.signal,
      onProgress: (progress) => (copied = Math.max(copied, progress.bytesCopied)),
    };
    const moving = driver.migrate(request);
    // Settled either way from here, so a rejection before the test awaits it is not "unhandled".
    const settled = moving.then(
      (outcome) => ({ outcome, error: null }),
      (error: Error) => ({ outcome: null, error }),
    );
    await until('the migration to be under way', async () => copied > 0, 30_000);
    return { controller, settled };
  }

  async function noIncomingLeft(agent: TestAgent) {
    await until(
      `${agent.host} to hold no guest and no QEMU`,
      async () => (await agent.client.list()).guests.length === 0 && qemuPids(agent.stateDir).length === 0,
      15_000,
    );
  }

  it('source agent frozen after the stream completed, then cancelled: reported done, the guest kept on the destination', async () => {
    // 25 MiB held at 8 MiB/s: a few seconds, time to freeze the source agent before it sees the end.
    const { controller, settled } = await underWay(a, b, 8 * MIB);
    const agentPid = a.process.child.pid!;
    process.kill(agentPid, 'SIGSTOP');
    try {
      await until(
        'the guest to run on the destination',
        async () => (await b.client.get(GUEST)).status === 'running',
        60_000,
      );
      const cancelledMs = Date.now();
      controller.abort(new Error('cancelled by the test'));
      // Decided while the source agent is still frozen: the destination's word alone.
      const result = await Promise.race([settled, sleep(25_000).then(() => null)]);
      assert.ok(result, 'the driver returned while the source agent was frozen');
      assert.equal(result.error, null, `the move is reported done, not ${result.error?.message}`);
      assert.ok(Date.now() - cancelledMs < 25_000, `decided ${Date.now() - cancelledMs} ms after the cancel`);
    } finally {
      process.kill(agentPid, 'SIGCONT');
    }
    assert.equal((await b.client.get(GUEST)).role, 'running');
    // The thawed source sees the completed migration and quits its copy: one QEMU, on B.
    await until('the source copy to go', async () => qemuPids(a.stateDir).length === 0, 20_000);
    assert.equal(qemuProcessesOf(GUEST).length, 1);
    assert.equal(await driver.locate(GUEST), b.host);
  });

  it('source QEMU frozen, then cancelled: a clear error within the bound, the destination cleaned, the guest runs on', async () => {
    // 1 MiB/s: the copy cannot end by itself during the test.
    const { controller, settled } = await underWay(b, a, MIB);
    const [qemu] = qemuPids(b.stateDir);
    assert.ok(qemu, 'the source QEMU');
    process.kill(qemu, 'SIGSTOP');
    try {
      const cancelledMs = Date.now();
      controller.abort(new Error('cancelled by the test'));
      const result = await Promise.race([settled, sleep(40_000).then(() => null)]);
      assert.ok(result, 'the driver returned within 40 s of the cancel');
      assert.ok(Date.now() - cancelledMs < 30_000, `returned after ${Date.now() - cancelledMs} ms`);
      assert.match(result.error?.message ?? '', /cancelled by the test; host-b did not confirm the cancel within 10 s/);
      await noIncomingLeft(a);
    } finally {
      process.kill(qemu, 'SIGCONT');
    }
    await until(
      'the guest to run on its source again',
      async () => {
        const guest = await b.client.get(GUEST);
        return guest.status === 'running' && guest.migrating === null;
      },
      30_000,
    );
    const tick = ticks(b.console(GUEST)).at(-1)!;
    await until('the guest to keep counting', async () => ticks(b.console(GUEST)).at(-1)! > tick, 10_000);
  });

  it('source QEMU killed mid-migration: a clear error within seconds, no QEMU left anywhere', async () => {
    const { settled } = await underWay(b, a, MIB);
    const [qemu] = qemuPids(b.stateDir);
    assert.ok(qemu, 'the source QEMU');
    process.kill(qemu, 'SIGKILL');
    const killedMs = Date.now();
    const result = await Promise.race([settled, sleep(30_000).then(() => null)]);
    assert.ok(result, 'the driver returned within 30 s of the kill');
    assert.ok(Date.now() - killedMs < 15_000, `returned after ${Date.now() - killedMs} ms`);
    assert.match(
      result.error?.message ?? '',
      /live migration of "api-1" failed: the source QEMU exited during the migration; it is stopped on host-b/,
    );
    await noIncomingLeft(a);
    assert.deepEqual(qemuProcessesOf(GUEST), []);
    assert.equal((await b.client.get(GUEST)).role, 'stopped');
  });
});
