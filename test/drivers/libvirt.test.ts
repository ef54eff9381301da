/**
 * The libvirt driver against real libvirt: `virsh` with libvirt's built-in `test:///default` driver
 * (parsing, dominfo fallback, refusals), and two libvirtd daemons of the test's own (session mode,
 * temp folders, own sockets) running a real QEMU TCG guest: its stats reach the store through
 * `lbvm collect --driver libvirt`, it migrates live between the two daemons with progress from
 * `virsh domjobinfo`, and an aborted migration is cancelled with `virsh domjobabort`.
 * The guest's name is `$(touch pwned); x`: libvirt keeps it as data, and no file `pwned` appears.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LibvirtDriver } from '../../src/drivers/libvirt/driver.ts';
import { migrateArgv, parseDomstats, parseJobInfo, vmFromStats } from '../../src/drivers/libvirt/virsh.ts';
import { createLogger } from '../../src/log.ts';
import type { MigrationProgress, Sample, VmSample } from '../../src/model/index.ts';
import { openStore } from '../../src/store/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { startLibvirtd, type LibvirtDaemon } from '../helpers/libvirt.ts';
import { tmpDir } from '../helpers/tmp.ts';

const log = createLogger({ level: 'silent' });
const MIB = 1024 * 1024;
const HOSTILE = ['x; rm -rf /', '$(reboot)', '--undefinesource', "it's `id`"];

function driverFor(uris: Record<string, string>, overrides: Partial<ConstructorParameters<typeof LibvirtDriver>[0]> = {}): LibvirtDriver {
  return new LibvirtDriver({ uris, autoConverge: true, bandwidthCap: true, pollIntervalMs: 250, virsh: 'virsh', log, ...overrides });
}

const request = (vm: string, from: string, to: string, extra: { signal?: AbortSignal; bandwidthBytesPerSec?: number; onProgress?: (progress: MigrationProgress) => void } = {}) => ({
  vm,
  from,
  to,
  mode: 'live' as const,
  downtimeLimitMs: 300,
  bandwidthBytesPerSec: extra.bandwidthBytesPerSec ?? 1024 * MIB,
  signal: extra.signal ?? new AbortController().signal,
  onProgress: extra.onProgress,
});

describe('virsh output parsing', () => {
  it('reads domstats key=value records, summing block and net devices; dominfo fills what domstats lacks', () => {
    const stats = parseDomstats(
      "Domain: 'a b'\n  state.state=1\n  cpu.time=2500000000\n  balloon.current=262144\n  balloon.rss=300000\n  vcpu.current=2\n  block.count=2\n  block.0.rd.bytes=10\n  block.0.wr.bytes=20\n  block.1.rd.bytes=1\n  block.1.wr.bytes=2\n  net.count=1\n  net.0.rx.bytes=7\n  net.0.tx.bytes=8\n\nDomain: '$(reboot)'\n  state.state=5\n",
    );
    assert.deepEqual([...stats.keys()], ['a b', '$(reboot)']);
    assert.deepEqual(vmFromStats('a b', 'h1', stats.get('a b')!, undefined, '4'), {
      name: 'a b', host: 'h1', vcpus: 2, memBytes: 256 * MIB, memUsedBytes: 256 * MIB, state: 'running', instanceId: '4', cpuTimeMs: 2500,
      diskReadBytes: 11, diskWriteBytes: 22, netRxBytes: 7, netTxBytes: 8,
    });
    const stopped = vmFromStats('$(reboot)', 'h1', stats.get('$(reboot)')!, { 'CPU(s)': '1', 'Max memory': '1048576 KiB', 'Used memory': '524288 KiB' }, '-');
    assert.deepEqual(stopped, { name: '$(reboot)', host: 'h1', vcpus: 1, memBytes: 512 * MIB, memUsedBytes: 0, state: 'stopped' });
  });

  it('reads domjobinfo sizes and times', () => {
    const info = parseJobInfo('Job type:         Unbounded   \nData processed:   67.250 MiB\nData remaining:   0.000 B\nData total:       128.375 MiB\nExpected downtime: 300          ms\n');
    assert.deepEqual(info, { type: 'Unbounded', dataProcessedBytes: Math.round(67.25 * MIB), dataRemainingBytes: 0, dataTotalBytes: Math.round(128.375 * MIB), expectedDowntimeMs: 300, totalDowntimeMs: undefined, elapsedMs: undefined });
  });

  it('builds the migrate argv with every name as the value of a named option', () => {
    for (const name of HOSTILE) {
      assert.deepEqual(migrateArgv('qemu+ssh://a/system', name, 'qemu+tls://b/system', { autoConverge: true, bandwidthMiBPerSec: 100 }), [
        '-c', 'qemu+ssh://a/system', 'migrate', '--live', '--persistent', '--undefinesource', '--auto-converge', '--bandwidth', '100', '--domain', name, '--desturi', 'qemu+tls://b/system',
      ]);
    }
    const driver = driverFor({ a: 'test:///default', b: 'test:///default' }, { autoConverge: false, bandwidthCap: false });
    assert.deepEqual(driver.migrateArgv({ vm: 'v', from: 'a', to: 'b', bandwidthBytesPerSec: MIB }), ['-c', 'test:///default', 'migrate', '--live', '--persistent', '--undefinesource', '--domain', 'v', '--desturi', 'test:///default']);
  });
});

describe("libvirt driver on libvirt's test:///default", () => {
  const driver = driverFor({ t1: 'test:///default' });

  it('lists the test domain with sizes from dominfo and its id', async () => {
    const { host, vms } = await driver.inventory('t1');
    assert.equal(host, 't1');
    assert.equal(vms.length, 1);
    const [vm] = vms;
    assert.equal(vm!.name, 'test');
    assert.equal(vm!.state, 'running');
    assert.equal(vm!.vcpus, 2);
    assert.equal(vm!.memBytes, 2 * 1024 * MIB);
    assert.equal(vm!.instanceId, '1');
    assert.ok(vm!.cpuTimeMs! > 0);
  });

  it('locates by name; hostile names are only names (not found, nothing run)', async () => {
    const cwd = process.cwd();
    assert.equal(await driver.locate('test'), 't1');
    for (const name of HOSTILE) assert.equal(await driver.locate(name), null, name);
    assert.ok(!fs.existsSync(path.join(cwd, 'pwned')));
  });

  it('a migration the hypervisor refuses fails naming virsh, the hosts and that the VM stays', async () => {
    const two = driverFor({ t1: 'test:///default', t2: 'test:///default' });
    await assert.rejects(two.migrate(request('test', 't1', 't2')), /live migration of "test" from t1 to t2 failed: virsh: exit 1: .*not supported.*; it keeps running on t1/);
    await assert.rejects(two.migrate({ ...request('test', 't1', 't2'), mode: 'checkpoint' }), /migrates live only/);
    await assert.rejects(two.inventory('t9'), /no libvirt URI for host "t9"; add it to drivers\.libvirt\.hosts/);
  });

  it('lbvm collect --driver libvirt without URIs names the key to set (exit 2, no stack)', async () => {
    const cwd = tmpDir();
    const result = await runCli('lbvm', ['collect', '--driver', 'libvirt', '--store', 'files:./samples'], { cwd, env: cleanEnv() });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /drivers\.libvirt\.hosts: no host has a libvirt URI/);
    assert.doesNotMatch(result.stderr, /\bat .*\.(ts|js):\d+/);
  });
});

describe('libvirt driver on two real libvirtd daemons with a QEMU TCG guest', () => {
  const NAME = '$(touch pwned); x';
  let h1: LibvirtDaemon;
  let h2: LibvirtDaemon;
  let cwd: string;
  before(async () => {
    cwd = tmpDir();
    [h1, h2] = await Promise.all([startLibvirtd(), startLibvirtd()]);
    await h1.startGuest(NAME, { cpuPercent: 50 });
  });
  after(async () => {
    await Promise.all([h1?.stop(), h2?.stop()]);
  });

  it("the guest's stats reach the files store through lbvm collect --driver libvirt", async () => {
    fs.writeFileSync(
      path.join(cwd, 'lbvm.yaml'),
      `node: h1\ncollect: { driver: libvirt, hostUse: proc }\nstore: { url: "files:./samples" }\ndrivers:\n  libvirt:\n    hosts: { h1: ${JSON.stringify(h1.uri)}, h2: ${JSON.stringify(h2.uri)} }\n`,
    );
    const result = await runCli('lbvm', ['collect', '--json'], { cwd, env: cleanEnv() });
    assert.equal(result.code, 0, result.stderr);
    const samples: Sample[] = [];
    for await (const sample of openStore(`files:${path.join(cwd, 'samples')}`).readSamples({ fromMs: Date.now() - 600_000, toMs: Date.now() + 1000 })) samples.push(sample);
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
    assert.ok(samples.some((sample) => sample.kind === 'host' && sample.host === 'h1' && sample.vmCount === 1));
  });

  it('migrates live h1 -> h2 with progress from domjobinfo; the guest keeps running there', async () => {
    const driver = driverFor({ h1: h1.uri, h2: h2.uri });
    assert.equal(await driver.locate(NAME), 'h1');
    const progress: MigrationProgress[] = [];
    // 64 MiB/s: long enough for domjobinfo to be polled a few times.
    const outcome = await driver.migrate(request(NAME, 'h1', 'h2', { bandwidthBytesPerSec: 64 * MIB, onProgress: (p) => progress.push(p) }));
    assert.equal(await driver.locate(NAME), 'h2');
    assert.ok(progress.some((p) => p.bytesCopied > 0 && p.fraction > 0 && p.fraction < 1), `progress during the copy: ${JSON.stringify(progress)}`);
    assert.equal(progress.at(-1)!.fraction, 1);
    assert.ok(outcome.bytesCopied > 0);
    assert.ok(outcome.downtimeMs !== null && outcome.downtimeMs >= 0, `downtime ${outcome.downtimeMs}`);
    assert.equal((await h1.virsh(['list', '--all', '--name'])).trim(), '', '--undefinesource: nothing left on h1');
    assert.match(await h2.virsh(['domstate', '--domain', NAME]), /running/);
    assert.match(await h2.virsh(['dominfo', '--domain', NAME]), /Persistent:\s+yes/);
  });

  it('an aborted migration is cancelled with domjobabort: the guest stays running on its source', async () => {
    const driver = driverFor({ h1: h1.uri, h2: h2.uri });
    const controller = new AbortController();
    const progress: MigrationProgress[] = [];
    // 1 MiB/s: 128 MiB would take minutes; abort once the copy is under way.
    const migration = driver.migrate(
      request(NAME, 'h2', 'h1', {
        bandwidthBytesPerSec: MIB,
        signal: controller.signal,
        onProgress: (p) => {
          progress.push(p);
          if (p.bytesCopied > 0) controller.abort(new Error('operator cancelled'));
        },
      }),
    );
    await assert.rejects(migration, /operator cancelled/);
    assert.ok(progress.length > 0);
    assert.equal(await driver.locate(NAME), 'h2');
    assert.match(await h2.virsh(['domstate', '--domain', NAME]), /running/);
    assert.equal((await h1.virsh(['list', '--all', '--name'])).trim(), '');
  });

  it('no injected command ran: no file named pwned anywhere it could have been made', () => {
    for (const dir of [cwd, h1.dir, h2.dir, process.cwd()]) assert.ok(!fs.existsSync(path.join(dir, 'pwned')), dir);
  });
});
