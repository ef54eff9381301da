/**
 * Guests with disks, on real QEMU under TCG (two agents on this machine are two hosts). The test
 * guest writes a numbered record to its virtio-blk disk every few ms (O_DIRECT, fsync'd) and prints
 * every tenth number once it is on the disk; at boot it reads the records back and says whether
 * any is missing or repeated (deploy/guest/disk). Each move is followed by a shutdown and a boot
 * from the image: the sequence must have no gap and no repeat, and reach at least the last number
 * the guest printed before the shutdown (no acknowledged write lost).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentCallError } from '../../src/drivers/qemu/client.ts';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import type { DiskSpec, GuestSpecInput } from '../../src/drivers/qemu/guest.ts';
import { createLogger } from '../../src/log.ts';
import { makeClusterCerts } from '../../src/util/certs.ts';
import type { MigrationProgress } from '../../src/model/index.ts';
import {
  createImage,
  diskSeqs,
  diskVerdict,
  qemuPids,
  qemuProcessesOf,
  startAgent,
  testGuestSpec,
  type TestAgent,
} from '../helpers/agent.ts';
import { stopAgents } from '../faults/support.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { until } from '../queue/support.ts';

const MiB = 1024 * 1024;
const SHARED = 'db-shared';
const LOCAL = 'db-local';

describe('guests with disks: live migration on shared storage and with a local-disk copy (real QEMU)', () => {
  let a: TestAgent;
  let b: TestAgent;
  let driver: QemuDriver;
  const shared = tmpDir('lbvm-shared-storage-');
  const log = createLogger({ level: 'warn', format: 'json' });
  const specs: Record<string, GuestSpecInput> = {};

  const disk = (storage: DiskSpec['storage'], file: string, format: DiskSpec['format']): Partial<DiskSpec> => ({
    storage,
    path: file,
    format,
    cache: 'none',
  });
  /** Waits until the guest on `agent` has written `records` more records (after its boot check, when `booting`). */
  async function writing(agent: TestAgent, name: string, records = 30, booting = false) {
    if (booting)
      await until(
        `${name} to check its disk on ${agent.host}`,
        async () => diskVerdict(agent.console(name)) !== null,
        120_000,
      );
    const start = diskSeqs(agent.console(name)).at(-1) ?? 0;
    await until(
      `${name} to write on ${agent.host}`,
      async () => (diskSeqs(agent.console(name)).at(-1) ?? 0) >= start + records,
      60_000,
    );
  }
  /**
   * The highest number the guest printed on `agent`'s console, sampled every 100 ms: a migrated
   * guest's source folder (and console) goes when the move completes.
   */
  function watchPrinted(agent: TestAgent, name: string) {
    let highest = 0;
    const sample = () => (highest = diskSeqs(agent.console(name)).reduce((max, n) => Math.max(max, n), highest));
    // unref: a test that fails before it stops the watch must not keep the file's process alive.
    const timer = setInterval(sample, 100).unref();
    return () => {
      clearInterval(timer);
      sample();
      return highest;
    };
  }
  /** A live move at 1 GiB/s (from host-a to host-b unless told). */
  function move(vm: string, onProgress?: (progress: MigrationProgress) => void, from = a, to = b) {
    const signal = new AbortController().signal;
    const request = { vm, from: from.host, to: to.host, downtimeLimitMs: 300, bandwidthBytesPerSec: 1024 * MiB };
    return driver.migrate({ ...request, mode: 'live', signal, onProgress });
  }
  /** The guest writes on `agent`, its numbers going on from the last one printed on its source. */
  async function goesOn(agent: TestAgent, name: string, lastOnSource: number) {
    await writing(agent, name);
    const first = diskSeqs(agent.console(name))[0]!;
    assert.ok(first > lastOnSource, `numbers go on after the move: ${lastOnSource} on the source, then ${first}`);
  }
  /** Shuts the guest down on `agent`, boots it again from its image there: the disk's verdict. */
  async function rebootAndVerify(agent: TestAgent, name: string) {
    const lastPrinted = diskSeqs(agent.console(name)).at(-1)!;
    await agent.client.stop(name);
    await agent.client.start(specs[name]!);
    await until(
      `${name} to check its disk after the reboot`,
      async () => diskVerdict(agent.console(name)) !== null,
      120_000,
    );
    const verdict = diskVerdict(agent.console(name))!;
    assert.ok(verdict.ok, verdict.line);
    assert.ok(
      verdict.last >= lastPrinted,
      `the disk ends at ${verdict.last}, but the guest had printed ${lastPrinted}`,
    );
    await until(
      `${name} to go on writing`,
      async () => (diskSeqs(agent.console(name)).at(-1) ?? 0) > verdict.last,
      60_000,
    );
    assert.ok(diskSeqs(agent.console(name))[0]! > verdict.last, 'no number written twice');
  }

  before(async () => {
    [a, b] = await Promise.all([startAgent('host-a'), startAgent('host-b')]);
    driver = new QemuDriver(
      new Map([
        [a.host, a.client],
        [b.host, b.client],
      ]),
      log,
    );
    await createImage(path.join(shared, 'shared.raw'), 'raw', 16 * MiB);
    await createImage(path.join(a.stateDir, 'images', 'local.qcow2'), 'qcow2', 32 * MiB);
    specs[SHARED] = testGuestSpec(SHARED, {}, 96, [disk('shared', path.join(shared, 'shared.raw'), 'raw')]);
    specs[LOCAL] = testGuestSpec(LOCAL, {}, 96, [disk('local', 'local.qcow2', 'qcow2')]);
    await Promise.all([a.client.start(specs[SHARED]!), a.client.start(specs[LOCAL]!)]);
  });
  after(() => stopAgents(a, b));

  it('refuses a shared disk without cache=none when the guest is defined, naming the option', async () => {
    const spec = testGuestSpec('bad', {}, 64, [
      { ...disk('shared', path.join(shared, 'shared.raw'), 'raw'), cache: 'writeback' },
    ]);
    const refused = await a.client.start(spec).then(
      () => null,
      (error: AgentCallError) => error,
    );
    assert.ok(refused instanceof AgentCallError, `not refused by the agent: ${String(refused)}`);
    assert.equal(refused.status, 400);
    assert.match(refused.message, /disks\.0\.cache: "writeback" on shared storage: live migration needs cache: none/);
    const missing = await a.client
      .start(testGuestSpec('bad', {}, 64, [disk('local', 'nowhere.raw', 'raw')]))
      .catch((error: Error) => error);
    assert.match(String(missing), /disks\.0\.path: "nowhere\.raw": no image at .*images\/nowhere\.raw/);
    assert.equal(qemuProcessesOf('bad').length, 0);
  });

  it('shared storage: moves live while writing; after a shutdown and a boot the sequence has no gap and no repeat', async () => {
    await writing(a, SHARED, 30, true);
    const printedOnA = watchPrinted(a, SHARED);
    const outcome = await move(SHARED);
    assert.ok(outcome.bytesCopied < 96 * MiB, `memory only: ${outcome.bytesCopied} bytes`);
    assert.equal(await driver.locate(SHARED), b.host);
    await goesOn(b, SHARED, printedOnA());
    await rebootAndVerify(b, SHARED);
  });

  it('local disk: a cancel mid-copy leaves the guest on its source with its disk, and no half copy', async () => {
    await writing(a, LOCAL, 30, true);
    const controller = new AbortController();
    let diskBytes = 0;
    // 1 MiB/s for the mirror too: the 32 MiB disk is still being copied when we cancel.
    const moving = driver.migrate({
      vm: LOCAL,
      from: a.host,
      to: b.host,
      mode: 'live',
      downtimeLimitMs: 300,
      bandwidthBytesPerSec: MiB,
      signal: controller.signal,
      attemptId: 'cancel-disk',
      onProgress: (progress) => (diskBytes = progress.bytesCopied),
    });
    const halfCopy = path.join(b.stateDir, 'images', 'local.qcow2');
    await until('the disk copy to be under way', async () => diskBytes > 0 && fs.existsSync(halfCopy), 60_000);
    const status = await a.client.call<{ status: string; diskBytesTotal: number }>('/v1/migrate/status', {
      name: LOCAL,
    });
    assert.equal(status.status, 'disk-copy');
    assert.equal(status.diskBytesTotal, 32 * MiB);
    controller.abort(new Error('cancelled by the test'));
    await assert.rejects(moving, /cancelled by the test/);
    await until(
      'the destination to be clean',
      async () =>
        !(await b.client.list()).guests.some((guest) => guest.name === LOCAL) && qemuProcessesOf(LOCAL).length === 1,
      15_000,
    );
    assert.equal(fs.existsSync(halfCopy), false, 'the half-written copy is removed');
    assert.equal(await driver.locate(LOCAL), a.host);
    assert.ok(fs.existsSync(path.join(a.stateDir, 'images', 'local.qcow2')), 'the local disk is still on A');
    await writing(a, LOCAL, 20);
  });

  it('local disk: copied alongside the memory, switched over in sync, and back; the sequence has no gap and no repeat', async () => {
    let bytesTotal = 0;
    const printedOnA = watchPrinted(a, LOCAL);
    const outcome = await move(LOCAL, (progress) => {
      bytesTotal = Math.max(bytesTotal, progress.bytesCopied + (progress.bytesRemaining ?? 0));
    });
    assert.equal(await driver.locate(LOCAL), b.host);
    assert.ok(outcome.bytesCopied >= 32 * MiB, `disk and memory counted: ${outcome.bytesCopied} bytes`);
    assert.ok(bytesTotal >= 32 * MiB, `progress counts the disk: ${bytesTotal} bytes`);
    // The source removes its copy once its QEMU has quit, a moment after the move completes.
    await until(
      "the source's copy to be removed",
      async () => !fs.existsSync(path.join(a.stateDir, 'images', 'local.qcow2')),
      30_000,
    );
    await until(`${LOCAL} to run in one QEMU`, async () => qemuProcessesOf(LOCAL).length === 1, 30_000);
    await goesOn(b, LOCAL, printedOnA());
    // And back: a guest that arrived by migration still shows that migration in QEMU ('completed').
    const printedOnB = watchPrinted(b, LOCAL);
    await move(LOCAL, undefined, b, a);
    assert.equal(await driver.locate(LOCAL), a.host);
    await until(
      "B's copy to be removed",
      async () => !fs.existsSync(path.join(b.stateDir, 'images', 'local.qcow2')),
      30_000,
    );
    await goesOn(a, LOCAL, printedOnB());
    await rebootAndVerify(a, LOCAL);
  });
});

describe('a local disk copied over TLS (agents with the cluster certificates, tls.migration on)', () => {
  let a: TestAgent;
  let b: TestAgent;
  const NAME = 'db-tls';

  before(async () => {
    const certs = await makeClusterCerts(path.join(tmpDir('lbvm-certs-'), 'cluster'), {
      agents: { 'host-a': ['127.0.0.1'], 'host-b': ['127.0.0.1'] },
      clients: ['worker'],
    });
    [a, b] = await Promise.all([startAgent('host-a', { certs }), startAgent('host-b', { certs })]);
    await createImage(path.join(a.stateDir, 'images', 'local.raw'), 'raw', 16 * MiB);
    await a.client.start(
      testGuestSpec(NAME, {}, 96, [{ storage: 'local', path: 'local.raw', format: 'raw', cache: 'none' }]),
    );
  });
  after(() => stopAgents(a, b));

  // With tls-creds on the destination's nbd-server-start, a source that mirrors without them is
  // refused ("TLS negotiation required"): checked by hand by leaving them out of startMirrors.
  it('the NBD stream takes the migration credentials: the move completes and the guest writes on', async () => {
    const driver = new QemuDriver(
      new Map([
        [a.host, a.client],
        [b.host, b.client],
      ]),
      createLogger({ level: 'warn', format: 'json' }),
    );
    await until(`${NAME} to write on ${a.host}`, async () => (diskSeqs(a.console(NAME)).at(-1) ?? 0) >= 20, 120_000);
    const outcome = await driver.migrate({
      vm: NAME,
      from: a.host,
      to: b.host,
      mode: 'live',
      downtimeLimitMs: 300,
      bandwidthBytesPerSec: 1024 * MiB,
      signal: new AbortController().signal,
    });
    assert.ok(outcome.bytesCopied >= 16 * MiB, `disk and memory counted: ${outcome.bytesCopied} bytes`);
    assert.equal(await driver.locate(NAME), b.host);
    await until(
      "the source's copy to be removed",
      async () => !fs.existsSync(path.join(a.stateDir, 'images', 'local.raw')),
      30_000,
    );
    const first = diskSeqs(b.console(NAME)).at(-1) ?? 0;
    await until(`${NAME} to write on ${b.host}`, async () => (diskSeqs(b.console(NAME)).at(-1) ?? 0) > first, 60_000);
  });
});
