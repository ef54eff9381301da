/**
 * The libvirt driver on two libvirtd daemons of the test's own (session mode as `nobody`, temp
 * folders, own sockets; test/helpers/libvirt.ts) running a real QEMU TCG guest named
 * `$(touch pwned); x`: its stats reach the store through `lbvm collect --driver libvirt`, and a live
 * migration aborted mid-copy, after progress from `virsh domjobinfo`, is cancelled with `virsh
 * domjobabort` (the guest stays on its source). No file `pwned` appears anywhere.
 * The whole path through `lbm migrate` and a worker is libvirt-worker.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import type { MigrationProgress, Sample, VmSample } from '../../src/model/index.ts';
import { openStore } from '../../src/store/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { assertReachableByNobody, startLibvirtd, type LibvirtDaemon } from '../helpers/libvirt.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { libvirtDriver, migrationRequest, MIB } from '../helpers/drivers.ts';

describe('libvirt driver on two real libvirtd daemons with a QEMU TCG guest', () => {
  const NAME = '$(touch pwned); x';
  let h1: LibvirtDaemon;
  let h2: LibvirtDaemon;
  let cwd: string;
  before(async () => {
    cwd = tmpDir();
    [h1, h2] = await Promise.all([startLibvirtd(), startLibvirtd()]);
    fs.writeFileSync(
      path.join(cwd, 'lbvm.yaml'),
      YAML.stringify({
        store: { url: 'files:./samples' },
        // Logical hosts (use = the sum of their guests): both daemons share this one busy machine.
        collect: { driver: 'libvirt', hostUse: 'guests' },
        hosts: { h1: { cpuCores: 4, memBytes: '8GiB' }, h2: { cpuCores: 4, memBytes: '8GiB' } },
        drivers: { libvirt: { hosts: { h1: h1.uri, h2: h2.uri }, pollInterval: '250ms' } },
      }),
    );
    await h1.startGuest(NAME, { cpuPercent: 50 });
  });
  after(async () => {
    await Promise.all([h1?.stop(), h2?.stop()]);
  });

  it("the guest's stats reach the files store through lbvm collect --driver libvirt", async () => {
    const result = await runCli('lbvm', ['collect', '--json', '--node', 'h1'], { cwd, env: cleanEnv() });
    assert.equal(result.code, 0, result.stderr);
    const samples: Sample[] = [];
    for await (const sample of openStore(`files:${path.join(cwd, 'samples')}`).readSamples({
      fromMs: Date.now() - 600_000,
      toMs: Date.now() + 1000,
    }))
      samples.push(sample);
    const vm = samples.find((sample): sample is VmSample => sample.kind === 'vm');
    assert.ok(vm, `a VM sample in ${JSON.stringify(samples)}; lbvm collect said ${result.stdout} ${result.stderr}`);
    assert.equal(vm.vm, NAME);
    assert.equal(vm.host, 'h1');
    assert.equal(vm.vcpus, 1);
    assert.equal(vm.memBytes, 128 * MIB);
    assert.ok(vm.memUsedBytes > 0 && vm.memUsedBytes <= 128 * MIB, `memUsedBytes ${vm.memUsedBytes}`);
    // The guest burns half a vCPU; TCG on a shared 2-core machine adds its own, so only a wide band.
    assert.ok(vm.cpuUsedCores > 0.1 && vm.cpuUsedCores < 1.6, `cpuUsedCores ${vm.cpuUsedCores}`);
    assert.equal(vm.state, 'running');
    assert.ok(
      samples.some((sample) => sample.kind === 'host' && sample.host === 'h1' && sample.vmCount === 1),
      `no host sample of h1 counting its one VM: ${JSON.stringify(samples.filter((sample) => sample.kind === 'host'))}`,
    );
  });

  it('an aborted migration is cancelled with domjobabort: the guest stays running on its source', async () => {
    const driver = libvirtDriver({ h1: h1.uri, h2: h2.uri });
    const controller = new AbortController();
    const progress: MigrationProgress[] = [];
    // 1 MiB/s: 128 MiB would take minutes; abort once the copy is under way.
    const migration = driver.migrate(
      migrationRequest(NAME, 'h1', 'h2', {
        bandwidthBytesPerSec: MIB,
        signal: controller.signal,
        onProgress: (p) => {
          progress.push(p);
          if (p.bytesCopied > 0) controller.abort(new Error('operator cancelled'));
        },
      }),
    );
    await assert.rejects(migration, /operator cancelled/);
    assert.ok(
      progress.some((p) => p.bytesCopied > 0 && p.fraction > 0 && p.fraction < 1),
      `progress during the copy: ${JSON.stringify(progress)}`,
    );
    assert.equal(await driver.locate(NAME), 'h1');
    assert.match(await h1.virsh(['domstate', '--domain', NAME]), /running/);
    assert.equal((await h2.virsh(['list', '--all', '--name'])).trim(), '', 'nothing left half-arrived on h2');
  });

  it('no injected command ran: no file named pwned anywhere it could have been made', () => {
    for (const dir of [cwd, h1.dir, h2.dir, process.cwd()]) assert.ok(!fs.existsSync(path.join(dir, 'pwned')), dir);
  });
});

describe('the test libvirtd in a private folder', () => {
  it('fails at once on a folder nobody cannot enter, naming it and its mode', () => {
    const privateDir = path.join(tmpDir(), 'private');
    fs.mkdirSync(privateDir, { mode: 0o700 });
    const inside = path.join(privateDir, 'x');
    fs.mkdirSync(inside);
    assert.throws(
      () => assertReachableByNobody(inside),
      new RegExp(`^Error: ${privateDir} \\(mode 0700, owner uid \\d+\\) cannot be entered by nobody`),
    );
    const open = tmpDir(); // mkdtemp makes it 0700, as startLibvirtd's own folder before it opens it
    fs.chmodSync(open, 0o755);
    assert.doesNotThrow(() => assertReachableByNobody(open));
  });
});
