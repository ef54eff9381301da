/**
 * The openvz driver against recorded-output stand-ins for ssh, vzlist, vzmigrate, prlctl and
 * /proc/vz/vestat (test/helpers/remote-tools.ts): the stand-in ssh runs the command it is given
 * through `sh -c` as a real remote shell would, so the tests assert both the exact argv each tool
 * received and that a hostile container name ran nothing. The quoting function itself is checked
 * against real `dash` and `bash` with fixed and random strings.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import { OpenvzDriver, parseVestat } from '../../src/drivers/openvz/driver.ts';
import { remoteCommand, shellQuote, sshArgv } from '../../src/drivers/openvz/remote.ts';
import type { Sample, VmSample } from '../../src/model/index.ts';
import { openStore } from '../../src/store/index.ts';
import { runFile } from '../../src/util/processes.ts';
import { prng } from '../../src/util/prng.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { MIB, migrationRequest, silentLog as log } from '../helpers/drivers.ts';
import { installRemoteTools, type RemoteTools } from '../helpers/remote-tools.ts';
import { tmpDir } from '../helpers/tmp.ts';

const HOSTILE = ['x; rm -rf /', '$(touch pwned)', '`touch pwned`', "it's; touch pwned", 'a\\b "c" $HOME * ?', 'two\nlines; touch pwned'];
const SSH_OPTIONS = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];
const UNLIMITED = 9223372036854775807;

// Recorded in the shape of `vzlist -j -a` (vzctl) and `/proc/vz/vestat` (Version 2.2).
const VZLIST_OVZ1 = [
  { ctid: 101, private: '/vz/private/101', root: '/vz/root/101', hostname: 'web1.example.com', name: 'web-1', ostemplate: 'centos-7-x86_64', ip: ['10.0.0.101'], status: 'running', laverage: [0.1, 0.05, 0.01], uptime: 3600.5, cpulimit: 0, cpuunits: 1000, cpus: 2, onboot: true, layout: 5, vswap: true, disabled: false, numproc: { held: 20, maxheld: 35, barrier: UNLIMITED, limit: UNLIMITED, failcnt: 0 }, physpages: { held: 25600, maxheld: 30000, barrier: 0, limit: 262144, failcnt: 0 }, diskspace: { usage: 1048576, softlimit: 10485760, hardlimit: 11534336 } },
  { ctid: 102, private: '/vz/private/102', hostname: 'h102', name: 'x; rm -rf /', status: 'running', cpus: 1, physpages: { held: 1024, maxheld: 2048, barrier: 0, limit: 131072, failcnt: 0 } },
  { ctid: 103, private: '/vz/private/103', hostname: 'h103', name: '$(touch pwned)', status: 'stopped', cpus: null, physpages: null },
  { ctid: 104, private: '/vz/private/104', hostname: 'h104', name: null, status: 'running', cpus: 4, physpages: { held: 10, maxheld: 10, barrier: 0, limit: UNLIMITED, failcnt: 0 } },
];
const VESTAT_OVZ1 = `Version: 2.2
      VEID                 user                 nice               system               uptime                 idle   strv   uptime     used   maxlat   totlat   numsched
       101                 1500                   20                  480              3600500        1234567890        0  3600500  9876543        0        0         0
       102                  300                    0                  100               600000         123456789        0   600000   123456        0        0         0
       104                    7                    0                    3                 1000            100000        0     1000      100        0        0         0
`;
// Recorded in the shape of `prlctl list -j -i -a` (Virtuozzo 7).
const PRLCTL_VZ1 = [
  { ID: '5f2b8c1e-7d4a-4c55-9a0e-8b3f1d2c4e6a', EnvID: '5f2b8c1e-7d4a-4c55-9a0e-8b3f1d2c4e6a', Name: 'db-1', Description: '', Type: 'CT', State: 'running', OS: 'centos7', Uptime: '7200', Home: '/vz/private/5f2b8c1e', Hardware: { cpu: { cpus: 4, 'VT-x': true, hotplug: false, accl: 'high', mode: '64', cpuunits: 1000 }, memory: { size: '2048Mb', hotplug: false }, hdd0: { enabled: true, port: 'scsi:0', image: '/vz/private/5f2b8c1e/root.hdd', type: 'expanded', size: '10240Mb' } } },
  { ID: '0a1b2c3d-0000-4000-8000-000000000001', EnvID: '0a1b2c3d-0000-4000-8000-000000000001', Name: '$(reboot)', Type: 'VM', State: 'stopped', Hardware: { cpu: { cpus: 1 }, memory: { size: '1Gb' } } },
];

function driver(tools: RemoteTools, flavour: 'vzctl' | 'prlctl' = 'vzctl'): OpenvzDriver {
  return new OpenvzDriver({ targets: { ovz1: 'root@ovz1', ovz2: 'root@ovz2' }, flavour, sshOptions: SSH_OPTIONS, ssh: 'ssh', log, env: tools.env });
}

function assertNothingInjected(tools: RemoteTools, ...more: string[]): void {
  for (const dir of [tools.remoteDir, tools.dir, process.cwd(), ...more]) {
    for (const name of ['pwned', 'lines']) assert.ok(!fs.existsSync(path.join(dir, name)), `${path.join(dir, name)} was created by an injected command`);
  }
}

describe('remote shell quoting', () => {
  it('every string comes back unchanged through real dash and bash, as one word each', async () => {
    const random = prng(9);
    const alphabet = ` \t\n'"\\$\`;&|<>(){}[]*?!#~=%^-_.,:@/aZ09é€\u0001`;
    const strings = [...HOSTILE, '', "'", "''", "'\\''", '-rf', '--', ...Array.from({ length: 200 }, () => Array.from({ length: Math.floor(random() * 24) }, () => alphabet[Math.floor(random() * alphabet.length)]).join(''))];
    for (const shell of ['/bin/dash', '/bin/bash']) {
      const cwd = tmpDir();
      const { stdout } = await runFile(shell, ['-c', `printf '%s\\0' ${remoteCommand(strings)}`], { cwd });
      assert.deepEqual(stdout.split('\0').slice(0, -1), strings, shell);
      assert.deepEqual(fs.readdirSync(cwd), [], `${shell}: nothing was created`);
    }
    assert.equal(shellQuote("it's"), `'it'\\''s'`);
    assert.throws(() => shellQuote('a\0b'), /NUL byte/);
  });

  it('ssh gets its options, the target, "--" and one quoted command; a target that is an option is refused', () => {
    assert.deepEqual(sshArgv(['-o', 'BatchMode=yes'], 'root@h1', ['vzmigrate', '--online', 'root@h2', 'x; rm -rf /']), ['-o', 'BatchMode=yes', 'root@h1', '--', `'vzmigrate' '--online' 'root@h2' 'x; rm -rf /'`]);
    assert.throws(() => sshArgv([], '-oProxyCommand=touch pwned', ['true']), /must not start with "-"/);
    assert.throws(() => sshArgv([], 'root@h1 touch', ['true']), /expected \[user@\]host/);
  });
});

describe('openvz driver (vzctl flavour) against recorded vzlist, vestat and vzmigrate', () => {
  it('lists containers with one ssh call: names, sizes from physpages, CPU time from vestat', async () => {
    const tools = installRemoteTools();
    tools.record('root@ovz1', { vzlist: VZLIST_OVZ1, vestat: VESTAT_OVZ1 });
    const { host, vms } = await driver(tools).inventory('ovz1');
    assert.equal(host, 'ovz1');
    assert.deepEqual(vms, [
      { name: 'web-1', host: 'ovz1', vcpus: 2, memBytes: 1024 * MIB, memUsedBytes: 100 * MIB, state: 'running', cpuTimeMs: 20_000 },
      { name: 'x; rm -rf /', host: 'ovz1', vcpus: 1, memBytes: 512 * MIB, memUsedBytes: 4 * MIB, state: 'running', cpuTimeMs: 4000 },
      { name: '$(touch pwned)', host: 'ovz1', vcpus: 1, memBytes: 0, memUsedBytes: 0, state: 'stopped' },
      { name: '104', host: 'ovz1', vcpus: 4, memBytes: 0, memUsedBytes: 40960, state: 'running', cpuTimeMs: 100 },
    ]);
    const calls = tools.calls();
    assert.deepEqual(calls.map((call) => call.tool), ['ssh', 'vzlist', 'cat']);
    assert.deepEqual(calls[0]!.argv, [...SSH_OPTIONS, 'root@ovz1', '--', `'sh' '-c' 'vzlist -j -a && echo --lbvm-vestat-- && (cat /proc/vz/vestat 2>/dev/null || true)'`]);
    assert.deepEqual(calls[1], { tool: 'vzlist', host: 'root@ovz1', argv: ['-j', '-a'] });
    assertNothingInjected(tools);
  });

  it('migrates with vzmigrate --online on the source; hostile names arrive as one argument and run nothing', async () => {
    const tools = installRemoteTools();
    const ovz = driver(tools);
    for (const name of HOSTILE.filter((name) => !name.includes('\n'))) {
      const outcome = await ovz.migrate(migrationRequest(name, 'ovz1', 'ovz2'));
      assert.equal(outcome.downtimeMs, null);
      const calls = tools.calls().slice(-2);
      assert.deepEqual(calls[0]!.argv, [...SSH_OPTIONS, 'root@ovz1', '--', `'vzmigrate' '--online' 'root@ovz2' ${shellQuote(name)}`]);
      assert.deepEqual(calls[1], { tool: 'vzmigrate', host: 'root@ovz1', argv: ['--online', 'root@ovz2', name] }, name);
    }
    assertNothingInjected(tools);
    await assert.rejects(ovz.migrate(migrationRequest('two\nlines; touch pwned', 'ovz1', 'ovz2')), /holds a control character/);
    await assert.rejects(ovz.migrate(migrationRequest('--help', 'ovz1', 'ovz2')), /starts with "-"/);
    await assert.rejects(ovz.migrate({ ...migrationRequest('web-1', 'ovz1', 'ovz2'), mode: 'checkpoint' }), /migrates live only/);
    assert.equal(tools.calls().filter((call) => call.tool === 'vzmigrate').length, 5, 'refused names never reached the host');
  });

  it('a failing vzmigrate is reported with the host and what it said', async () => {
    const tools = installRemoteTools();
    tools.record('root@ovz1', { migrateFails: 'Error: Destination node root@ovz2: CT 101 is already present' });
    await assert.rejects(
      driver(tools).migrate(migrationRequest('web-1', 'ovz1', 'ovz2')),
      /live migration of "web-1" from ovz1 to ovz2 failed: vzmigrate on ovz1 \(ssh root@ovz1\) failed: ssh: exit 1: Error: Destination node root@ovz2: CT 101 is already present/,
    );
  });

  it('locates a container where it runs; an unreachable host makes the answer unknown', async () => {
    const tools = installRemoteTools();
    tools.record('root@ovz1', { vzlist: VZLIST_OVZ1, vestat: VESTAT_OVZ1 });
    tools.record('root@ovz2', { vzlist: [{ ctid: 201, name: 'db-2', status: 'running', cpus: 1, physpages: { held: 1, limit: 1024 } }] });
    const ovz = driver(tools);
    assert.equal(await ovz.locate('x; rm -rf /'), 'ovz1');
    assert.equal(await ovz.locate('db-2'), 'ovz2');
    assert.equal(await ovz.locate('nobody'), null);
    tools.record('root@ovz2', {});
    await assert.rejects(ovz.locate('nobody'), /cannot tell where "nobody" is: vzlist on ovz2 \(ssh root@ovz2\) failed/);
    assertNothingInjected(tools);
  });

  it('lbvm collect --driver openvz writes the containers to the store; a bad ssh target is refused at start', async () => {
    const tools = installRemoteTools();
    tools.record('root@ovz1', { vzlist: VZLIST_OVZ1, vestat: VESTAT_OVZ1 });
    const cwd = tmpDir();
    fs.writeFileSync(path.join(cwd, 'lbvm.yaml'), 'node: ovz1\ncollect: { driver: openvz, hostUse: proc }\nstore: { url: "files:./samples" }\ndrivers:\n  openvz:\n    hosts: { ovz1: root@ovz1 }\n');
    const result = await runCli('lbvm', ['collect'], { cwd, env: cleanEnv({ PATH: tools.env.PATH!, STANDIN_DIR: tools.dir }) });
    assert.equal(result.code, 0, result.stderr);
    const samples: Sample[] = [];
    for await (const sample of openStore(`files:${path.join(cwd, 'samples')}`).readSamples({ fromMs: Date.now() - 600_000, toMs: Date.now() + 1000 })) samples.push(sample);
    const vms = samples.filter((sample): sample is VmSample => sample.kind === 'vm');
    assert.deepEqual(vms.map((vm) => vm.vm).sort(), ['$(touch pwned)', '104', 'web-1', 'x; rm -rf /']);
    assertNothingInjected(tools, cwd);

    fs.writeFileSync(path.join(cwd, 'lbvm.yaml'), 'node: ovz1\ncollect: { driver: openvz }\ndrivers:\n  openvz:\n    hosts: { ovz1: "-oProxyCommand=touch pwned" }\n');
    const refused = await runCli('lbvm', ['collect', '--store', 'files:./samples2'], { cwd, env: cleanEnv({ PATH: tools.env.PATH!, STANDIN_DIR: tools.dir }) });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /drivers\.openvz\.hosts\.ovz1: "-oProxyCommand=touch pwned": must not start with "-"/);
    assert.doesNotMatch(refused.stderr, /\bat .*\.(ts|js):\d+/);
  });
});

describe('openvz driver (prlctl flavour)', () => {
  it('lists with prlctl list -j -i -a and migrates with prlctl migrate CT DEST', async () => {
    const tools = installRemoteTools();
    tools.record('root@ovz1', { prlctl: PRLCTL_VZ1 });
    const ovz = driver(tools, 'prlctl');
    const { vms } = await ovz.inventory('ovz1');
    assert.deepEqual(vms, [
      { name: 'db-1', host: 'ovz1', vcpus: 4, memBytes: 2048 * MIB, memUsedBytes: 0, state: 'running' },
      { name: '$(reboot)', host: 'ovz1', vcpus: 1, memBytes: 1024 * MIB, memUsedBytes: 0, state: 'stopped' },
    ]);
    assert.deepEqual(tools.calls()[1], { tool: 'prlctl', host: 'root@ovz1', argv: ['list', '-j', '-i', '-a'] });
    await ovz.migrate(migrationRequest('$(reboot)', 'ovz1', 'ovz2'));
    assert.deepEqual(tools.calls().at(-1), { tool: 'prlctl', host: 'root@ovz1', argv: ['migrate', '$(reboot)', 'root@ovz2'] });
    assertNothingInjected(tools);
  });

  it('reads vestat lines, skipping its headers', () => {
    assert.deepEqual([...parseVestat(VESTAT_OVZ1)], [['101', 20_000], ['102', 4000], ['104', 100]]);
  });

  it('the config refuses an empty host list, naming the key', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'lbvm.yaml'), 'drivers:\n  openvz:\n    flavour: prlctl\n');
    const { config } = loadConfig({ cwd: dir, env: {} });
    assert.throws(() => OpenvzDriver.fromConfig(config, log), /drivers\.openvz\.hosts: no host has an ssh target/);
  });
});
