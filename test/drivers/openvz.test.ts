/**
 * The openvz driver against recorded-output stand-ins for ssh, vzlist, vzmigrate, vzctl, prlctl,
 * nproc and /proc/vz/vestat (test/helpers/remote-tools.ts), which answer as the real tools do: vzlist
 * prints vzctl's unescaped JSON, vzmigrate prepends `root@` to its destination as OpenVZ 6's does and
 * refuses a live migration of a stopped container. The stand-in ssh runs the command it is given
 * through `sh -c` as a real remote shell would, so the tests assert both the exact argv each tool
 * received and that a hostile container name ran nothing. The quoting function itself is checked
 * against real `dash` and `bash` with fixed and random strings.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import { containerCpus, OpenvzDriver, parseVestat, parseVzlist, stateOf } from '../../src/drivers/openvz/driver.ts';
import { remoteCommand, shellQuote, sshArgv } from '../../src/drivers/openvz/remote.ts';
import type { Logger } from '../../src/log.ts';
import type { Sample, VmSample } from '../../src/model/index.ts';
import { openStore } from '../../src/store/index.ts';
import { runFile } from '../../src/util/processes.ts';
import { prng } from '../../src/util/prng.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { capturingLog, MIB, migrationRequest, silentLog } from '../helpers/drivers.ts';
import { installRemoteTools, type RemoteTools, type VzlistRecord } from '../helpers/remote-tools.ts';
import { tmpDir } from '../helpers/tmp.ts';

const HOSTILE = [
  'x; rm -rf /',
  '$(touch pwned)',
  '`touch pwned`',
  "it's; touch pwned",
  'a\\b "c" $HOME * ?',
  'two\nlines; touch pwned',
];
const SSH_OPTIONS = ['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10'];
const OPENVZ6 = 'vzctl version 4.9.4';
const OPENVZ7 = 'vzctl version 7.0.229';
const LISTED = ['-j', '-a', '-o', 'ctid,name,status,cpus,cpulimit,physpages'];

// An OpenVZ 6 host's containers, as vzctl 4.x's vzlist knows them (src/vzlist.c): `cpus` is 0 without a
// CPU count (`p->cpunum < 0 ? 0 : p->cpunum`), `cpulimit` is a percent of one CPU, an unlimited
// `physpages` limit is LONG_MAX or INT_MAX, `suspended` is a stopped container with a dump file, and a
// description is free text printed unescaped.
const OVZ6: VzlistRecord[] = [
  {
    ctid: 302,
    private: '/vz/private/302',
    hostname: 'web1.example.com',
    name: 'web-1',
    description: 'front "web" C:\\srv',
    status: 'running',
    cpulimit: 0,
    cpuunits: 1000,
    cpus: 2,
    physpages: { held: 25600, maxheld: 30000, barrier: 0, limit: 262144, failcnt: 0 },
  },
  {
    ctid: 301,
    private: '/vz/private/301',
    hostname: 'h301',
    name: 'x; rm -rf /',
    status: 'running',
    cpulimit: 0,
    cpuunits: 1000,
    cpus: 0,
    physpages: { held: 1024, maxheld: 2048, barrier: '9223372036854775807', limit: '9223372036854775807', failcnt: 0 },
  },
  {
    ctid: 303,
    private: '/vz/private/303',
    hostname: 'h303',
    name: '$(touch pwned)',
    status: 'suspended',
    cpulimit: 150,
    cpuunits: 1000,
    cpus: 0,
    physpages: { held: 0, maxheld: 0, barrier: 0, limit: 2147483647, failcnt: 0 },
  },
  {
    ctid: 104,
    private: '/vz/private/104',
    hostname: 'h104',
    name: null,
    status: 'running',
    cpulimit: 0,
    cpuunits: 1000,
    cpus: 4,
    physpages: { held: 10, maxheld: 10, barrier: 0, limit: 131072, failcnt: 0 },
  },
];
// /proc/vz/vestat of that host: the lines of CTs 302 and 301 as pasted in dstat's vz-cpu plugin
// (dstat plugins/dstat_vz_cpu.py), in the kernel's layout (vzkernel kernel/ve/vecalls.c
// VESTAT_LINE_FMT): user, nice and system in jiffies at CONFIG_HZ (1000), the first uptime in jiffies,
// the second in cycles.
const VESTAT_OVZ6 = `Version: 2.2
                VEID                 user                 nice               system               uptime                 idle                 strv               uptime                 used               maxlat               totlat             numsched
                 302               142926                    0                10252            152896388      852779112954062                    0      427034187248480        1048603937010                    0                    0                    0
                 301                27188                    0                 7896            152899846      853267000490282                    0      427043845492614         701812592320                    0                    0                    0
                 104                   70                    0                   30                 1000         100000000000                    0         2800000000           2800000000                    0                    0                    0
`;
// An OpenVZ 7 host: vzlist prints `-` for a container without a name (OpenVZ/vzctl src/vzlist.c print_name:
// `char *str = "-"`), `paused` and `unknown` among its statuses (ve_status).
const OVZ7: VzlistRecord[] = [
  {
    ctid: 701,
    name: '-',
    status: 'running',
    cpulimit: 0,
    cpus: 1,
    physpages: { held: 100, maxheld: 100, barrier: 0, limit: 131072, failcnt: 0 },
  },
  {
    ctid: 702,
    name: '-',
    status: 'paused',
    cpulimit: 0,
    cpus: 1,
    physpages: { held: 100, maxheld: 100, barrier: 0, limit: 131072, failcnt: 0 },
  },
  {
    ctid: 703,
    name: 'db-2',
    status: 'unknown',
    cpulimit: 0,
    cpus: 2,
    physpages: { held: 0, maxheld: 0, barrier: 0, limit: 262144, failcnt: 0 },
  },
];

function driver(tools: RemoteTools, flavour: 'vzctl' | 'prlctl' = 'vzctl', log: Logger = silentLog): OpenvzDriver {
  return new OpenvzDriver({
    targets: { ovz1: 'root@ovz1', ovz2: 'root@ovz2' },
    flavour,
    sshOptions: SSH_OPTIONS,
    ssh: 'ssh',
    kernelHz: 1000,
    log,
    env: tools.env,
  });
}

function assertNothingInjected(tools: RemoteTools, ...more: string[]): void {
  for (const dir of [tools.remoteDir, tools.dir, process.cwd(), ...more]) {
    for (const name of ['pwned', 'lines'])
      assert.ok(!fs.existsSync(path.join(dir, name)), `${path.join(dir, name)} was created by an injected command`);
  }
}

/** Two hosts: ovz1 on OpenVZ 6 with 8 cores, ovz2 on OpenVZ 7. */
function twoHosts(): RemoteTools {
  const tools = installRemoteTools();
  tools.record('root@ovz1', { vzlist: OVZ6, vestat: VESTAT_OVZ6, vzctlVersion: OPENVZ6, cores: 8 });
  tools.record('root@ovz2', { vzlist: OVZ7, vzctlVersion: OPENVZ7, cores: 4 });
  return tools;
}

describe('remote shell quoting', () => {
  it('every string comes back unchanged through real dash and bash, as one word each', async () => {
    const random = prng(9);
    const alphabet = ` \t\n'"\\$\`;&|<>(){}[]*?!#~=%^-_.,:@/aZ09é€\u0001`;
    const strings = [
      ...HOSTILE,
      '',
      "'",
      "''",
      "'\\''",
      '-rf',
      '--',
      ...Array.from({ length: 200 }, () =>
        Array.from({ length: Math.floor(random() * 24) }, () => alphabet[Math.floor(random() * alphabet.length)]).join(
          '',
        ),
      ),
    ];
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
    assert.deepEqual(sshArgv(['-o', 'BatchMode=yes'], 'root@h1', ['vzmigrate', '--online', 'h2', '101']), [
      '-o',
      'BatchMode=yes',
      'root@h1',
      '--',
      `'vzmigrate' '--online' 'h2' '101'`,
    ]);
    assert.throws(() => sshArgv([], '-oProxyCommand=touch pwned', ['true']), /must not start with "-"/);
    assert.throws(() => sshArgv([], 'root@h1 touch', ['true']), /expected \[user@\]host/);
  });
});

describe('openvz driver (vzctl flavour) against recorded vzlist, vestat, vzctl and vzmigrate', () => {
  it(
    'lists containers with one ssh call: CPU time in jiffies at CONFIG_HZ, ' +
      'cpus 0 as the limit or the host, unlimited memory, suspended as stopped',
    async () => {
      const tools = twoHosts();
      const { host, vms } = await driver(tools).inventory('ovz1');
      assert.equal(host, 'ovz1');
      assert.deepEqual(vms, [
        {
          name: 'web-1',
          host: 'ovz1',
          vcpus: 2,
          memBytes: 1024 * MIB,
          memUsedBytes: 100 * MIB,
          state: 'running',
          cpuTimeMs: 153_178,
        },
        // cpus 0 and no cpulimit: it may use the host's 8 cores; LONG_MAX pages: no memory limit.
        {
          name: 'x; rm -rf /',
          host: 'ovz1',
          vcpus: 8,
          memBytes: 0,
          memUsedBytes: 4 * MIB,
          state: 'running',
          cpuTimeMs: 35_084,
        },
        // suspended: stopped with a dump; cpulimit 150 %: 2 vCPUs; INT_MAX pages: unlimited.
        { name: '$(touch pwned)', host: 'ovz1', vcpus: 2, memBytes: 0, memUsedBytes: 0, state: 'stopped' },
        {
          name: '104',
          host: 'ovz1',
          vcpus: 4,
          memBytes: 512 * MIB,
          memUsedBytes: 40960,
          state: 'running',
          cpuTimeMs: 100,
        },
      ]);
      const calls = tools.calls();
      assert.deepEqual(
        calls.map((call) => call.tool),
        ['ssh', 'vzlist', 'cat', 'vzctl', 'nproc'],
      );
      assert.deepEqual(calls[0]!.argv, [
        ...SSH_OPTIONS,
        'root@ovz1',
        '--',
        `'sh' '-c' 'vzlist ${LISTED.join(' ')} && echo --lbvm-vestat-- && (cat /proc/vz/vestat 2>/dev/null || true) && echo --lbvm-host-- && (vzctl --version 2>/dev/null || true) && (nproc 2>/dev/null || true)'`,
      ]);
      assert.deepEqual(calls[1], { tool: 'vzlist', host: 'root@ovz1', argv: LISTED });
      assertNothingInjected(tools);
    },
  );

  it('names OpenVZ 7 containers printed as "-" by their ctid; paused is paused, unknown is busy', async () => {
    const tools = twoHosts();
    const ovz = driver(tools);
    assert.deepEqual(
      (await ovz.inventory('ovz2')).vms.map((vm) => [vm.name, vm.state, vm.busy ?? null]),
      [
        ['701', 'running', null],
        ['702', 'paused', null],
        ['db-2', 'unknown', 'state: unknown'],
      ],
    );
    assert.equal(await ovz.locate('701'), 'ovz2', 'two unnamed containers no longer share the name "-"');
    assert.equal(await ovz.locate('702'), 'ovz2');
  });

  it('reads a listing container by container: one unescaped description costs that container only, and is not even listed by the driver', async () => {
    const tools = twoHosts();
    // All fields, as `vzlist -j -a` prints them: web-1's description breaks its entry.
    const { stdout } = await runFile(path.join(tools.binDir, 'vzlist'), ['-j', '-a'], {
      env: { ...tools.env, STANDIN_HOST: 'root@ovz1' },
    });
    assert.match(stdout, /"description": "front "web" C:\\srv"/);
    assert.throws(() => JSON.parse(stdout));
    const listing = parseVzlist(stdout, 'ovz1', new Map(), 8);
    assert.deepEqual(
      listing.containers.map((entry) => entry.vm.name),
      ['x; rm -rf /', '$(touch pwned)', '104'],
    );
    assert.deepEqual(listing.unreadable, ['302']);
    // The driver lists only the fields it reads, so web-1 is there, and a warning would name any left out.
    const { log, text } = capturingLog();
    assert.deepEqual(
      (await driver(tools, 'vzctl', log).inventory('ovz1')).vms.map((vm) => vm.name),
      ['web-1', 'x; rm -rf /', '$(touch pwned)', '104'],
    );
    assert.equal(text(), '');
  });

  it('OpenVZ 6: vzmigrate --online BAREHOST CTID for a running container, without --online for a stopped one; names never reach the host', async () => {
    const tools = twoHosts();
    const ovz = driver(tools);
    await ovz.migrate(migrationRequest('web-1', 'ovz1', 'ovz2'));
    assert.deepEqual(tools.calls().at(-1), { tool: 'vzmigrate', host: 'root@ovz1', argv: ['--online', 'ovz2', '302'] });
    await ovz.migrate(migrationRequest('x; rm -rf /', 'ovz1', 'ovz2'));
    assert.deepEqual(tools.calls().at(-1), { tool: 'vzmigrate', host: 'root@ovz1', argv: ['--online', 'ovz2', '301'] });
    // Suspended (stopped with a dump): `vzmigrate --online` would fail "Can't perform live migration of a stopped container".
    await ovz.migrate(migrationRequest('$(touch pwned)', 'ovz1', 'ovz2'));
    assert.deepEqual(tools.calls().at(-1), { tool: 'vzmigrate', host: 'root@ovz1', argv: ['ovz2', '303'] });
    const vzmigrate = tools.calls().filter((call) => call.tool === 'vzmigrate');
    assert.equal(vzmigrate.length, 3);
    assert.ok(
      vzmigrate.every((call) => call.argv.every((word) => !HOSTILE.includes(word))),
      'only ctids were passed',
    );
    assertNothingInjected(tools);
  });

  it('OpenVZ 7: vzmigrate takes [user@]host, so the target is passed as configured', async () => {
    const tools = twoHosts();
    await driver(tools).migrate(migrationRequest('701', 'ovz2', 'ovz1'));
    assert.deepEqual(tools.calls().at(-1), {
      tool: 'vzmigrate',
      host: 'root@ovz2',
      argv: ['--online', 'root@ovz1', '701'],
    });
  });

  it('refuses before running anything: a container not on the source, a busy one, checkpoint mode', async () => {
    const tools = twoHosts();
    const ovz = driver(tools);
    await assert.rejects(
      ovz.migrate(migrationRequest('nobody', 'ovz1', 'ovz2')),
      /no container is named "nobody" on ovz1; nothing was done/,
    );
    await assert.rejects(
      ovz.migrate(migrationRequest('db-2', 'ovz2', 'ovz1')),
      /container "db-2" \(703\) on ovz2 is busy \(state: unknown\): it is not moved until that ends; nothing was done/,
    );
    await assert.rejects(
      ovz.migrate({ ...migrationRequest('web-1', 'ovz1', 'ovz2'), mode: 'checkpoint' }),
      /migrates live only/,
    );
    assert.equal(tools.calls().filter((call) => call.tool === 'vzmigrate').length, 0);
  });

  it('a failing vzmigrate is reported with the host, what it said and what its exit code means', async () => {
    const tools = twoHosts();
    // vzctl bin/vzmigrate.in: MIG_ERR_CANT_CONNECT=4 when `$SSH root@$host /bin/true` fails.
    tools.record('root@ovz1', {
      vzlist: OVZ6,
      vzctlVersion: OPENVZ6,
      cores: 8,
      migrateFails: {
        code: 4,
        stderr:
          "Error: Can't connect to destination address using public key\nError: Please put your public key to destination node",
      },
    });
    await assert.rejects(driver(tools).migrate(migrationRequest('web-1', 'ovz1', 'ovz2')), (error: Error) => {
      assert.match(
        error.message,
        /migration of "web-1" \(302\) from ovz1 to ovz2 failed: vzmigrate on ovz1 \(ssh root@ovz1\) failed: ssh: exit 4: Error: Can't connect to destination address using public key/,
      );
      assert.match(
        error.message,
        /vzmigrate on ovz1 could not log in to ovz2 as root: it runs its own ssh \(-o BatchMode=yes\), not LBVM's drivers\.openvz\.sshOptions, so ovz1's root public key must be in ovz2's \/root\/\.ssh\/authorized_keys/,
      );
      return true;
    });
  });

  it('the stand-in vzmigrate fails as OpenVZ 6 does for a destination with a user and for a live move of a stopped container', async () => {
    // What the driver used to send: `vzmigrate --online root@ovz2 NAME`.
    const tools = twoHosts();
    const run = (argv: string[]) =>
      runFile(path.join(tools.binDir, 'vzmigrate'), argv, { env: { ...tools.env, STANDIN_HOST: 'root@ovz1' } });
    await assert.rejects(
      run(['--online', 'root@ovz2', '302']),
      /exit 4: Error: Can't connect to destination address using public key/,
    );
    await assert.rejects(
      run(['--online', 'ovz2', '303']),
      /exit 2: Error: Can't perform live migration of a stopped container/,
    );
    await run(['--online', 'ovz2', '302']);
  });

  it('locates a container where it runs; an unreachable host makes the answer unknown', async () => {
    const tools = twoHosts();
    const ovz = driver(tools);
    assert.equal(await ovz.locate('x; rm -rf /'), 'ovz1');
    assert.equal(await ovz.locate('db-2'), 'ovz2');
    assert.equal(await ovz.locate('nobody'), null);
    tools.record('root@ovz2', {});
    await assert.rejects(
      ovz.locate('nobody'),
      /cannot tell where "nobody" is: vzlist on ovz2 \(ssh root@ovz2\) failed/,
    );
    assertNothingInjected(tools);
  });

  it('lbvm collect --driver openvz writes the containers to the store; a bad ssh target is refused at start', async () => {
    const tools = twoHosts();
    const cwd = tmpDir();
    fs.writeFileSync(
      path.join(cwd, 'lbvm.yaml'),
      'node: ovz1\ncollect: { driver: openvz, hostUse: proc }\nstore: { url: "files:./samples" }\ndrivers:\n  openvz:\n    hosts: { ovz1: root@ovz1 }\n',
    );
    const result = await runCli('lbvm', ['collect'], {
      cwd,
      env: cleanEnv({ PATH: tools.env.PATH!, STANDIN_DIR: tools.dir }),
    });
    assert.equal(result.code, 0, result.stderr);
    const samples: Sample[] = [];
    for await (const sample of openStore(`files:${path.join(cwd, 'samples')}`).readSamples({
      fromMs: Date.now() - 600_000,
      toMs: Date.now() + 1000,
    }))
      samples.push(sample);
    const vms = samples.filter((sample): sample is VmSample => sample.kind === 'vm');
    // cpus 0 counts the host's 8 cores: its samples are not set aside as using more than 0 vCPUs.
    assert.deepEqual(vms.map((vm) => [vm.vm, vm.vcpus, vm.state]).sort(), [
      ['$(touch pwned)', 2, 'stopped'],
      ['104', 4, 'running'],
      ['web-1', 2, 'running'],
      ['x; rm -rf /', 8, 'running'],
    ]);
    assertNothingInjected(tools, cwd);

    fs.writeFileSync(
      path.join(cwd, 'lbvm.yaml'),
      'node: ovz1\ncollect: { driver: openvz }\ndrivers:\n  openvz:\n    hosts: { ovz1: "-oProxyCommand=touch pwned" }\n',
    );
    const refused = await runCli('lbvm', ['collect', '--store', 'files:./samples2'], {
      cwd,
      env: cleanEnv({ PATH: tools.env.PATH!, STANDIN_DIR: tools.dir }),
    });
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /drivers\.openvz\.hosts\.ovz1: "-oProxyCommand=touch pwned": must not start with "-"/);
    assert.doesNotMatch(refused.stderr, /\bat .*\.(ts|js):\d+/);
  });
});

describe('openvz driver (prlctl flavour)', () => {
  // Virtuozzo 7's `prlctl list -j -i -a`: Hardware.cpu.cpus is "unlimited" for a container without a CPU
  // count (prl-disp: PRL_CPU_UNLIMITED), and State is one of prlctl src/Utils.cpp vmstate2str's words.
  const PRLCTL = [
    {
      ID: '5f2b8c1e-7d4a-4c55-9a0e-8b3f1d2c4e6a',
      EnvID: '5f2b8c1e-7d4a-4c55-9a0e-8b3f1d2c4e6a',
      Name: 'db-1',
      Description: '',
      Type: 'CT',
      State: 'running',
      OS: 'centos7',
      Uptime: '7200',
      Home: '/vz/private/5f2b8c1e',
      Hardware: {
        cpu: { cpus: 'unlimited', 'VT-x': true, hotplug: false, accl: 'high', mode: '64', cpuunits: 1000 },
        memory: { size: '2048Mb', hotplug: false },
        hdd0: {
          enabled: true,
          port: 'scsi:0',
          image: '/vz/private/5f2b8c1e/root.hdd',
          type: 'expanded',
          size: '10240Mb',
        },
      },
    },
    {
      ID: '0a1b2c3d-0000-4000-8000-000000000001',
      EnvID: '0a1b2c3d-0000-4000-8000-000000000001',
      Name: '$(reboot)',
      Type: 'VM',
      State: 'suspended',
      Hardware: { cpu: { cpus: 1 }, memory: { size: '1Gb' } },
    },
    {
      ID: '0a1b2c3d-0000-4000-8000-000000000002',
      EnvID: '0a1b2c3d-0000-4000-8000-000000000002',
      Name: 'moving',
      Type: 'CT',
      State: 'migrating',
      Hardware: { cpu: { cpus: 2 }, memory: { size: '512Mb' } },
    },
    {
      ID: '0a1b2c3d-0000-4000-8000-000000000003',
      EnvID: '0a1b2c3d-0000-4000-8000-000000000003',
      Name: 'booting',
      Type: 'CT',
      State: 'starting',
      Hardware: { cpu: { cpus: 2 }, memory: { size: '512Mb' } },
    },
  ];

  it(
    'lists with prlctl list -j -i -a: "unlimited" cpus are the host\'s, ' +
      'transitional states are busy; migrates by ID with prlctl migrate ID DEST',
    async () => {
      const tools = installRemoteTools();
      tools.record('root@ovz1', { prlctl: PRLCTL, cores: 16 });
      const ovz = driver(tools, 'prlctl');
      const { vms } = await ovz.inventory('ovz1');
      assert.deepEqual(vms, [
        { name: 'db-1', host: 'ovz1', vcpus: 16, memBytes: 2048 * MIB, memUsedBytes: 0, state: 'running' },
        { name: '$(reboot)', host: 'ovz1', vcpus: 1, memBytes: 1024 * MIB, memUsedBytes: 0, state: 'stopped' },
        {
          name: 'moving',
          host: 'ovz1',
          vcpus: 2,
          memBytes: 512 * MIB,
          memUsedBytes: 0,
          state: 'migrating',
          busy: 'state: migrating',
        },
        {
          name: 'booting',
          host: 'ovz1',
          vcpus: 2,
          memBytes: 512 * MIB,
          memUsedBytes: 0,
          state: 'unknown',
          busy: 'state: starting',
        },
      ]);
      assert.deepEqual(tools.calls()[1], { tool: 'prlctl', host: 'root@ovz1', argv: ['list', '-j', '-i', '-a'] });
      await ovz.migrate(migrationRequest('$(reboot)', 'ovz1', 'ovz2'));
      assert.deepEqual(tools.calls().at(-1), {
        tool: 'prlctl',
        host: 'root@ovz1',
        argv: ['migrate', '0a1b2c3d-0000-4000-8000-000000000001', 'root@ovz2'],
      });
      await assert.rejects(ovz.migrate(migrationRequest('booting', 'ovz1', 'ovz2')), /is busy \(state: starting\)/);
      assertNothingInjected(tools);
    },
  );
});

describe('openvz readers', () => {
  it('reads vestat in jiffies at CONFIG_HZ, skipping its headers', () => {
    assert.deepEqual(
      [...parseVestat(VESTAT_OVZ6, 1000)],
      [
        ['302', 153_178],
        ['301', 35_084],
        ['104', 100],
      ],
    );
    assert.deepEqual([...parseVestat(VESTAT_OVZ6, 250)].slice(0, 1), [['302', 612_712]]);
  });

  it('counts vCPUs from cpus, else the CPU limit, else the host', () => {
    assert.deepEqual(
      [
        containerCpus(2, 0, 8),
        containerCpus(0, 0, 8),
        containerCpus(0, 150, 8),
        containerCpus('unlimited', null, 16),
        containerCpus(0, 0, null),
      ],
      [2, 8, 2, 16, 1],
    );
  });

  it('reads every status word of vzlist and prlctl, transitional ones as busy', () => {
    assert.deepEqual(
      ['running', 'paused', 'stopped', 'mounted', 'suspended'].map((word) => stateOf(word).state),
      ['running', 'paused', 'stopped', 'stopped', 'stopped'],
    );
    for (const word of [
      'starting',
      'stopping',
      'pausing',
      'suspending',
      'resuming',
      'restoring',
      'snapshoting',
      'unknown',
      'invalid',
    ])
      assert.equal(stateOf(word).busy, `state: ${word}`);
    assert.deepEqual(stateOf('migrating'), { state: 'migrating', busy: 'state: migrating' });
  });

  it('the config refuses an empty host list, naming the key', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'lbvm.yaml'), 'drivers:\n  openvz:\n    flavour: prlctl\n');
    const { config } = loadConfig({ cwd: dir, env: {} });
    assert.throws(
      () => OpenvzDriver.fromConfig(config, silentLog),
      /drivers\.openvz\.hosts: no host has an ssh target/,
    );
  });
});
