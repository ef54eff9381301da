/**
 * The libvirt driver's parsing of virsh output, and the driver against real `virsh` with libvirt's
 * built-in `test:///default` driver (inventory with the dominfo fallback, locate, refusals).
 * The real daemons and a real guest are in libvirt-daemons.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { migrateArgv, parseDomstats, parseJobInfo, vmFromStats } from '../../src/drivers/libvirt/virsh.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { libvirtDriver, migrationRequest, MIB } from '../helpers/drivers.ts';
import { tmpDir } from '../helpers/tmp.ts';

const HOSTILE = ['x; rm -rf /', '$(reboot)', '--undefinesource', "it's `id`"];

describe('virsh output parsing', () => {
  it('reads domstats key=value records, summing block and net devices; dominfo fills what domstats lacks', () => {
    const stats = parseDomstats(
      "Domain: 'a b'\n  state.state=1\n  cpu.time=2500000000\n  balloon.current=262144\n  balloon.rss=300000\n  vcpu.current=2\n  block.count=2\n  block.0.rd.bytes=10\n  block.0.wr.bytes=20\n  block.1.rd.bytes=1\n  block.1.wr.bytes=2\n  net.count=1\n  net.0.rx.bytes=7\n  net.0.tx.bytes=8\n\nDomain: '$(reboot)'\n  state.state=5\n",
    );
    assert.deepEqual([...stats.keys()], ['a b', '$(reboot)']);
    assert.deepEqual(vmFromStats('a b', 'h1', stats.get('a b')!, undefined, '4'), {
      name: 'a b',
      host: 'h1',
      vcpus: 2,
      memBytes: 256 * MIB,
      memUsedBytes: 256 * MIB,
      state: 'running',
      instanceId: '4',
      cpuTimeMs: 2500,
      diskReadBytes: 11,
      diskWriteBytes: 22,
      netRxBytes: 7,
      netTxBytes: 8,
    });
    const stopped = vmFromStats(
      '$(reboot)',
      'h1',
      stats.get('$(reboot)')!,
      { 'CPU(s)': '1', 'Max memory': '1048576 KiB', 'Used memory': '524288 KiB' },
      '-',
    );
    assert.deepEqual(stopped, {
      name: '$(reboot)',
      host: 'h1',
      vcpus: 1,
      memBytes: 512 * MIB,
      memUsedBytes: 0,
      state: 'stopped',
    });
  });

  it('reads domjobinfo sizes and times', () => {
    const info = parseJobInfo(
      'Job type:         Unbounded   \nData processed:   67.250 MiB\nData remaining:   0.000 B\nData total:       128.375 MiB\nExpected downtime: 300          ms\n',
    );
    assert.deepEqual(info, {
      type: 'Unbounded',
      dataProcessedBytes: Math.round(67.25 * MIB),
      dataRemainingBytes: 0,
      dataTotalBytes: Math.round(128.375 * MIB),
      expectedDowntimeMs: 300,
      totalDowntimeMs: undefined,
      elapsedMs: undefined,
    });
  });

  it('builds the migrate argv with every name as the value of a named option', () => {
    for (const name of HOSTILE) {
      assert.deepEqual(
        migrateArgv('qemu+ssh://a/system', name, 'qemu+tls://b/system', {
          autoConverge: true,
          bandwidthMiBPerSec: 100,
        }),
        [
          '-c',
          'qemu+ssh://a/system',
          'migrate',
          '--live',
          '--persistent',
          '--undefinesource',
          '--auto-converge',
          '--bandwidth',
          '100',
          '--domain',
          name,
          '--desturi',
          'qemu+tls://b/system',
        ],
      );
    }
    const driver = libvirtDriver(
      { a: 'test:///default', b: 'test:///default' },
      { autoConverge: false, bandwidthCap: false },
    );
    assert.deepEqual(driver.migrateArgv({ vm: 'v', from: 'a', to: 'b', bandwidthBytesPerSec: MIB }), [
      '-c',
      'test:///default',
      'migrate',
      '--live',
      '--persistent',
      '--undefinesource',
      '--domain',
      'v',
      '--desturi',
      'test:///default',
    ]);
    assert.equal(driver.capabilities.localDisks, false, 'without copyStorage, VMs with local disks cannot move');
    const copying = libvirtDriver({ a: 'test:///default', b: 'test:///default' }, { copyStorage: true });
    assert.equal(copying.capabilities.localDisks, true);
    const argv = copying.migrateArgv({ vm: 'v', from: 'a', to: 'b', bandwidthBytesPerSec: MIB });
    assert.deepEqual(argv.slice(3, 8), [
      '--live',
      '--persistent',
      '--undefinesource',
      '--auto-converge',
      '--copy-storage-all',
    ]);
  });
});

describe("libvirt driver on libvirt's test:///default", () => {
  const driver = libvirtDriver({ t1: 'test:///default' });

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
    // virsh 9.0 can miss a job that fails at once and wait forever (seen under load): the driver stops
    // it after stallMs without a job on the source. Either way the failure names what happened.
    const two = libvirtDriver({ t1: 'test:///default', t2: 'test:///default' }, { stallMs: 3000 });
    await assert.rejects(
      two.migrate(migrationRequest('test', 't1', 't2')),
      /live migration of "test" from t1 to t2 failed: (virsh: exit 1: .*not supported.*|virsh migrate showed no migration job on t1 for 3 s and was stopped); it (keeps running|was last seen) on t1/,
    );
    await assert.rejects(
      two.migrate({ ...migrationRequest('test', 't1', 't2'), mode: 'checkpoint' }),
      /migrates live only/,
    );
    await assert.rejects(two.inventory('t9'), /no libvirt URI for host "t9"; add it to drivers\.libvirt\.hosts/);
  });

  it('lbvm collect --driver libvirt without URIs names the key to set (exit 2, no stack)', async () => {
    const cwd = tmpDir();
    const result = await runCli('lbvm', ['collect', '--driver', 'libvirt', '--store', 'files:./samples'], {
      cwd,
      env: cleanEnv(),
    });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /drivers\.libvirt\.hosts: no host has a libvirt URI/);
    assert.doesNotMatch(result.stderr, /\bat .*\.(ts|js):\d+/);
  });
});
