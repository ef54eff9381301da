/**
 * The proxmox driver against a recorded-response HTTPS server (test/helpers/recorded-server.ts) that
 * answers as a Proxmox VE cluster does: every answer is shaped after Proxmox's own code or a task log
 * pasted in public, named where it is built. The task routes behave like pve-common's: a log page is
 * `[{ n, t }]` from line `start`, an empty log is `[{ n: 1, t: "no content" }]`, a status is
 * `running` until the task stops with its exit status, a DELETE signals the worker.
 * Checked: TLS verification, the token only in the Authorization header, inventory from
 * /cluster/resources alone (paused guests, locks, HA states), HA-managed guests followed from the
 * `hamigrate` request to the real `qmigrate` task, `WARNINGS: N` as a success, progress over local
 * disks and memory, empty logs, downtime "not reported", cancel outcomes and the `lock: migrate` they
 * leave, containers' restart downtime, and hostile names only ever URL-encoded or form values.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import type { Logger } from '../../src/log.ts';
import { ProxmoxDriver, type ClusterResource } from '../../src/drivers/proxmox/driver.ts';
import {
  MigrationLog,
  parseCompletedLine,
  parseDowntimeLine,
  parseProgressLine,
  parseUpid,
  taskSucceeded,
} from '../../src/drivers/proxmox/task-log.ts';
import type { MigrationProgress } from '../../src/model/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { capturingLog, GIB, MIB, migrationRequest, silentLog } from '../helpers/drivers.ts';
import {
  selfSignedCert,
  startRecordedServer,
  type RecordedServer,
  type SelfSignedCert,
} from '../helpers/recorded-server.ts';
import { tmpDir } from '../helpers/tmp.ts';

const SECRET = '5f0e8c9a-4b1d-4e7a-9c2f-31d4a0b7e6aa';
const TOKEN = `lbvm@pve!balancer=${SECRET}`;
const API_USER = 'lbvm@pve!balancer';

// The guests as GET /cluster/resources?type=vm lists them: fields as pve-manager PVE/API2/Cluster.pm
// `resources` fills them (`lock` from the guest config, `pool`, `hastate` from the HA manager's
// status) on top of PVE/API2Tools.pm extract_vm_stats, whose `status` is pvestatd's
// `$d->{qmpstatus} || $d->{status}`: `paused` for a paused VM, a QEMU run state such as `prelaunch`.
const RESOURCES: ClusterResource[] = [
  {
    id: 'qemu/100',
    type: 'qemu',
    vmid: 100,
    node: 'pve1',
    name: 'web-1',
    status: 'running',
    template: 0,
    maxcpu: 2,
    cpu: 0.25,
    maxmem: 2 * GIB,
    mem: GIB,
    netin: 300,
    netout: 400,
    diskread: 1000,
    diskwrite: 2000,
    uptime: 3600,
    tags: 'prod;web',
    hastate: 'started',
    pool: 'web',
  },
  {
    id: 'qemu/104',
    type: 'qemu',
    vmid: 104,
    node: 'pve1',
    name: 'paused-1',
    status: 'paused',
    template: 0,
    maxcpu: 4,
    cpu: 0.0012,
    maxmem: 4 * GIB,
    mem: 3 * GIB,
    netin: 10,
    netout: 20,
    diskread: 30,
    diskwrite: 40,
    uptime: 7200,
  },
  {
    id: 'qemu/105',
    type: 'qemu',
    vmid: 105,
    node: 'pve1',
    name: 'backed-up',
    status: 'running',
    template: 0,
    maxcpu: 1,
    cpu: 0.5,
    maxmem: GIB,
    mem: 512 * MIB,
    netin: 1,
    netout: 2,
    diskread: 3,
    diskwrite: 4,
    uptime: 60,
    lock: 'backup',
  },
  {
    id: 'qemu/106',
    type: 'qemu',
    vmid: 106,
    node: 'pve1',
    name: 'db-1',
    status: 'running',
    template: 0,
    maxcpu: 4,
    cpu: 0.5,
    maxmem: 2 * GIB,
    mem: GIB,
    netin: 5,
    netout: 6,
    diskread: 7,
    diskwrite: 8,
    uptime: 900,
    pool: 'db',
  },
  {
    id: 'qemu/107',
    type: 'qemu',
    vmid: 107,
    node: 'pve1',
    name: 'booting',
    status: 'prelaunch',
    template: 0,
    maxcpu: 1,
    cpu: 0,
    maxmem: GIB,
    mem: 0,
    uptime: 1,
  },
  {
    id: 'lxc/101',
    type: 'lxc',
    vmid: 101,
    node: 'pve1',
    name: 'x; rm -rf /',
    status: 'running',
    template: 0,
    maxcpu: 1,
    cpu: 0.5,
    maxmem: 512 * MIB,
    mem: 100 * MIB,
    netin: 30,
    netout: 40,
    diskread: 10,
    diskwrite: 20,
    uptime: 60,
  },
  {
    id: 'lxc/108',
    type: 'lxc',
    vmid: 108,
    node: 'pve1',
    name: 'ha-ct',
    status: 'running',
    template: 0,
    maxcpu: 2,
    cpu: 0.1,
    maxmem: GIB,
    mem: 200 * MIB,
    uptime: 60,
    hastate: 'migrate',
  },
  {
    id: 'qemu/102',
    type: 'qemu',
    vmid: 102,
    node: 'pve2',
    name: '$(reboot)',
    status: 'stopped',
    template: 0,
    maxcpu: 1,
    cpu: 0,
    maxmem: GIB,
    mem: 0,
    uptime: 0,
  },
  {
    id: 'qemu/9000',
    type: 'qemu',
    vmid: 9000,
    node: 'pve1',
    name: 'debian-template',
    status: 'stopped',
    template: 1,
    maxcpu: 1,
    maxmem: GIB,
  },
  {
    id: 'qemu/103',
    type: 'qemu',
    vmid: 103,
    node: 'x; rm -rf /',
    name: 'odd-node-vm',
    status: 'running',
    template: 0,
    maxcpu: 1,
    cpu: 0,
    maxmem: GIB,
    mem: 0,
    uptime: 5,
  },
];

/** A UPID as pve-common PVE/Tools.pm upid_encode writes it: `UPID:node:%08X pid:%08X pstart:%08X starttime:type:id:user:`. */
function upid(node: string, vmid: number, type: string, startTimeSec: number, user = API_USER): string {
  return `UPID:${node}:0000C1F2:0012D0F3:${startTimeSec.toString(16).toUpperCase()}:${type}:${vmid}:${user}:`;
}

/** A task as pve-manager PVE/API2/Tasks.pm serves it: status, log pages (pve-common dump_logfile), DELETE, and its row in the node's task list. */
interface TaskScript {
  upid: string;
  /** The log, revealed over the `runningPolls` status polls before the task stops. */
  lines: string[];
  runningPolls: number;
  /** Status polls during which the log is still empty. */
  silentPolls?: number;
  exitstatus: string;
  /** What Proxmox's signalled worker adds to the log, and its exit status, once a DELETE came. */
  onDelete?: { lines: string[]; exitstatus: string };
  /** Runs when the task stops (the guest changes node, keeps a lock). */
  onStop?: () => void;
  /** The status call (0-based) answered 503, a network blip. */
  blipOnCall?: number;
  /** The task appears in its node's task list after this many list calls (an HA resource agent starts it later). */
  listedAfterCalls?: number;
}

interface TaskHandle {
  deleted(): boolean;
  statusPolls(): number;
  /** The `start` of every log page asked. */
  logStarts(): number[];
}

describe('proxmox driver', () => {
  let cert: SelfSignedCert;
  let server: RecordedServer;
  let caSettings: string;
  let guests: ClusterResource[];
  /** Rows of each node's task list (GET /nodes/{node}/tasks), with when they appear. */
  let taskLists: Map<string, { row: Record<string, unknown>; afterCalls: number }[]>;
  const drivers: ProxmoxDriver[] = [];
  const keep = (driver: ProxmoxDriver) => (drivers.push(driver), driver);

  function driverWith(
    settings: string,
    env: Record<string, string> = { LBVM_PROXMOX_TOKEN: TOKEN },
    log: Logger = silentLog,
  ): ProxmoxDriver {
    const dir = tmpDir();
    fs.writeFileSync(
      path.join(dir, 'lbvm.yaml'),
      `drivers:\n  proxmox:\n    url: ${server.url}\n    pollInterval: 20ms\n${settings}`,
    );
    const { config } = loadConfig({ cwd: dir, env: {} });
    return keep(ProxmoxDriver.fromConfig(config, log, env));
  }

  function guest(name: string): ClusterResource {
    return guests.find((entry) => entry.name === name)!;
  }

  function serveTask(script: TaskScript): TaskHandle {
    const parsed = parseUpid(script.upid)!;
    let deleted = false;
    let stopped = false;
    let polls = 0;
    const logStarts: number[] = [];
    const stop = () => {
      if (!stopped) script.onStop?.();
      stopped = true;
    };
    const lines = () => (deleted && script.onDelete ? [...script.lines, ...script.onDelete.lines] : script.lines);
    const base = `/api2/json/nodes/${parsed.node}/tasks/${script.upid}`;
    server.route(`GET ${base}/status`, (_request, count) => {
      if (count === script.blipOnCall) return { status: 503, statusMessage: 'Service Unavailable' };
      polls++;
      const done = deleted || polls > script.runningPolls;
      if (done) stop();
      const exitstatus = deleted && script.onDelete ? script.onDelete.exitstatus : script.exitstatus;
      return {
        json: {
          data: {
            upid: script.upid,
            node: parsed.node,
            pid: 0xc1f2,
            pstart: 0x12d0f3,
            starttime: parsed.startTimeSec,
            type: parsed.type,
            id: parsed.id,
            user: parsed.user,
            status: done ? 'stopped' : 'running',
            ...(done ? { exitstatus } : {}),
          },
        },
      };
    });
    server.route(`GET ${base}/log`, (request) => {
      const all = lines();
      const shown = polls - (script.silentPolls ?? 0);
      const visible = stopped
        ? all.length
        : shown <= 0
          ? 0
          : Math.min(all.length, Math.ceil((shown * all.length) / (script.runningPolls + 1)));
      const start = Number(request.query.get('start') ?? 0);
      const limit = Number(request.query.get('limit') ?? 50);
      logStarts.push(start);
      // pve-common dump_logfile_by_filehandle: "ExtJS store.guaranteeRange() does not like empty array".
      if (visible === 0) return { json: { data: [{ n: 1, t: 'no content' }], total: 1 } };
      return {
        json: {
          data: all.slice(start, Math.min(visible, start + limit)).map((t, index) => ({ n: start + index + 1, t })),
          total: visible,
        },
      };
    });
    server.route(`DELETE ${base}`, () => {
      deleted = true;
      return { json: { data: null } };
    });
    const rows = taskLists.get(parsed.node) ?? [];
    rows.push({
      row: {
        upid: script.upid,
        node: parsed.node,
        pid: 0xc1f2,
        pstart: 0x12d0f3,
        starttime: parsed.startTimeSec,
        type: parsed.type,
        id: parsed.id,
        user: parsed.user,
      },
      afterCalls: script.listedAfterCalls ?? 0,
    });
    taskLists.set(parsed.node, rows);
    return { deleted: () => deleted, statusPolls: () => polls, logStarts: () => logStarts };
  }

  /** The guest's migrate call answers a new task's UPID (of `type`: its migration, or `hamigrate` for an HA guest), and that task is served. */
  function serveMigration(
    name: string,
    startTimeSec: number,
    script: Omit<TaskScript, 'upid'>,
    type?: string,
  ): TaskHandle & { upid: string } {
    const { node, type: kind, vmid } = guest(name);
    const id = upid(node, vmid, type ?? (kind === 'lxc' ? 'vzmigrate' : 'qmigrate'), startTimeSec);
    server.route(`POST /api2/json/nodes/${node}/${kind}/${vmid}/migrate`, { json: { data: id } });
    return { upid: id, ...serveTask({ upid: id, ...script }) };
  }

  before(async () => {
    cert = await selfSignedCert();
    server = await startRecordedServer(cert);
    caSettings = `    caFile: ${cert.certFile}\n`;
  });
  beforeEach(() => {
    guests = structuredClone(RESOURCES);
    taskLists = new Map();
    server.route('GET /api2/json/cluster/resources', { json: { data: [] } });
    server.route('GET /api2/json/cluster/resources', () => ({ json: { data: guests } }));
    for (const node of ['pve1', 'pve2']) {
      // pve-manager PVE/API2/Tasks.pm node_tasks: typefilter, vmid and since filter the node's tasks.
      server.route(`GET /api2/json/nodes/${node}/tasks`, (request, count) => {
        const type = request.query.get('typefilter');
        const vmid = request.query.get('vmid');
        const since = Number(request.query.get('since') ?? 0);
        const rows = (taskLists.get(node) ?? []).filter((entry) => count >= entry.afterCalls).map((entry) => entry.row);
        return {
          json: {
            data: rows.filter(
              (row) => (!type || row.type === type) && (!vmid || row.id === vmid) && (row.starttime as number) >= since,
            ),
          },
        };
      });
    }
  });
  after(async () => {
    for (const driver of drivers) await driver.close();
    await server?.close();
  });

  it('refuses a self-signed certificate by default, saying what to configure; a wrong pin sends nothing', async () => {
    const before = server.requests.length;
    const plain = driverWith('');
    await assert.rejects(plain.inventory('pve1'), (error: Error) => {
      assert.match(error.message, /TLS verification failed \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/);
      assert.match(error.message, /drivers\.proxmox\.caFile/);
      assert.match(error.message, /drivers\.proxmox\.fingerprint/);
      assert.ok(!error.message.includes(SECRET));
      return true;
    });
    const wrong = driverWith(`    fingerprint: "${'AB:'.repeat(31)}AB"\n`);
    await assert.rejects(
      wrong.inventory('pve1'),
      /TLS verification failed \(FINGERPRINT_MISMATCH: the server's certificate has SHA-256 fingerprint [0-9A-F:]+, not the pinned AB:AB/,
    );
    assert.equal(server.requests.length, before, 'no request (and no token) reached the server');
  });

  it('accepts the server with its CA file or its pinned fingerprint (with or without colons)', async () => {
    for (const settings of [
      caSettings,
      `    fingerprint: "${cert.fingerprint256}"\n`,
      `    fingerprint: "${cert.fingerprint256.replace(/:/g, '').toLowerCase()}"\n`,
    ]) {
      const { vms } = await driverWith(settings).inventory('pve1');
      assert.equal(vms.length, 7, settings);
    }
  });

  it('lists a node from /cluster/resources alone: pvestatd CPU as cores, paused guests, locks, HA and QEMU states as busy; templates left out', async () => {
    const driver = driverWith(caSettings);
    const start = server.requests.length;
    const { host, vms } = await driver.inventory('pve1');
    assert.equal(host, 'pve1');
    assert.deepEqual(vms[0], {
      name: 'web-1',
      host: 'pve1',
      vcpus: 2,
      memBytes: 2 * GIB,
      memUsedBytes: GIB,
      state: 'running',
      cpuUsedCores: 0.5,
      instanceId: 'qemu/100@pve1',
      diskReadBytes: 1000,
      diskWriteBytes: 2000,
      netRxBytes: 300,
      netTxBytes: 400,
      tags: ['prod', 'web'],
      haState: 'started',
    });
    assert.deepEqual(
      vms.map((vm) => [
        vm.name,
        vm.state,
        Number((vm.cpuUsedCores ?? -1).toFixed(4)),
        vm.busy ?? null,
        vm.haState ?? null,
      ]),
      [
        ['web-1', 'running', 0.5, null, 'started'],
        ['paused-1', 'paused', 0.0048, null, null],
        ['backed-up', 'running', 0.5, 'lock: backup', null],
        ['db-1', 'running', 2, null, null],
        ['booting', 'unknown', 0, 'status: prelaunch', null],
        ['x; rm -rf /', 'running', 0.5, null, null],
        ['ha-ct', 'running', 0.2, 'hastate: migrate', 'migrate'],
      ],
    );
    // One call for the whole node: no status/current, whose CPU is per pvedaemon worker.
    assert.deepEqual(
      server.requests.slice(start).map((r) => `${r.method} ${r.rawPath}`),
      ['GET /api2/json/cluster/resources?type=vm'],
    );
    assert.equal(server.requests.at(-1)!.headers.authorization, `PVEAPIToken=${TOKEN}`);
    assert.deepEqual(
      (await driver.inventory('pve2')).vms.map((vm) => [vm.name, vm.state, vm.cpuUsedCores]),
      [['$(reboot)', 'stopped', undefined]],
    );
    assert.equal(await driver.locate('$(reboot)'), 'pve2');
    assert.equal(await driver.locate('x; rm -rf /'), 'pve1');
    assert.equal(await driver.locate('nobody-has-me'), null);
  });

  it('an HA-managed VM is followed from the hamigrate request to the qmigrate task the HA manager starts, to its end', async () => {
    const driver = driverWith(caSettings);
    const real = upid('pve1', 100, 'qmigrate', 0x6553f0ac, 'root@pam');
    // qemu-server PVE/API2/Qemu.pm migrate_vm: an HA-managed guest only forks a `hamigrate` worker that runs
    // `ha-manager migrate vm:100 pve2` and prints this line; it ends OK at once.
    serveMigration(
      'web-1',
      0x6553f0a0,
      { lines: ['Requesting HA migration for VM 100 to node pve2', 'TASK OK'], runningPolls: 0, exitstatus: 'OK' },
      'hamigrate',
    );
    // The real migration, started later by the HA resource agent as root@pam: the log of an HA-managed
    // live migration pasted in a public blog post (2025-11-14, VM 20057 to node 'dalia'; ids and nodes
    // renamed), which begins with pve-common RESTEnvironment fork_worker's `task started by HA resource agent`.
    const handle = serveTask({
      upid: real,
      listedAfterCalls: 2,
      runningPolls: 4,
      exitstatus: 'OK',
      onStop: () => (guest('web-1').node = 'pve2'),
      lines: [
        'task started by HA resource agent',
        '2025-11-14 21:47:40 conntrack state migration not supported or disabled, active connections might get dropped',
        '2025-11-14 21:47:40 use dedicated network address for sending migration traffic (10.100.3.103)',
        "2025-11-14 21:47:40 starting migration of VM 100 to node 'pve2' (10.100.3.103)",
        "2025-11-14 21:47:40 starting VM 100 on remote node 'pve2'",
        '2025-11-14 21:47:41 start remote tunnel',
        '2025-11-14 21:47:42 ssh tunnel ver 1',
        '2025-11-14 21:47:42 starting online/live migration on unix:/run/qemu-server/100.migrate',
        '2025-11-14 21:47:42 set migration capabilities',
        '2025-11-14 21:47:42 migration downtime limit: 100 ms',
        '2025-11-14 21:47:42 migration cachesize: 2.0 GiB',
        '2025-11-14 21:47:42 set migration parameters',
        '2025-11-14 21:47:42 start migrate command to unix:/run/qemu-server/100.migrate',
        '2025-11-14 21:47:43 migration active, transferred 515.4 MiB of 12.6 GiB VM-state, 428.3 MiB/s',
        '2025-11-14 21:47:47 migration active, transferred 3.3 GiB of 12.6 GiB VM-state, 823.0 MiB/s',
        '2025-11-14 21:47:52 migration active, transferred 6.0 GiB of 12.6 GiB VM-state, 727.3 MiB/s',
        '2025-11-14 21:47:57 migration active, transferred 10.6 GiB of 12.6 GiB VM-state, 1.0 GiB/s',
        '2025-11-14 21:47:58 average migration speed: 806.6 MiB/s - downtime 59 ms',
        '2025-11-14 21:47:58 migration completed, transferred 11.7 GiB VM-state',
        '2025-11-14 21:47:58 migration status: completed',
        '',
        'NOTICE',
        '  Intentionally removing diskless assignment (pm-299b3873) on (pivoine).',
        '  It will be re-created when the resource is actually used on this node.',
        '2025-11-14 21:48:00 migration finished successfully (duration 00:00:20)',
        'TASK OK',
      ],
    });
    const progress: MigrationProgress[] = [];
    const outcome = await driver.migrate(
      migrationRequest('web-1', 'pve1', 'pve2', { onProgress: (p) => progress.push(p) }),
    );
    assert.equal(handle.statusPolls(), 5, 'followed the qmigrate task until it stopped');
    const list = server.requests.filter((r) => r.method === 'GET' && r.path === '/api2/json/nodes/pve1/tasks');
    assert.ok(list.length >= 3, 'asked the task list until the HA manager had started the task');
    assert.deepEqual(Object.fromEntries(list[0]!.query), {
      typefilter: 'qmigrate',
      vmid: '100',
      since: String(0x6553f0a0),
      source: 'all',
    });
    assert.equal(outcome.downtimeMs, 59);
    assert.equal(outcome.bytesCopied, Math.round(11.7 * GIB));
    const seen = progress.slice(0, -1).map((p) => p.bytesCopied);
    assert.ok(
      seen.length >= 2 && seen[0]! < 11.7 * GIB && seen.every((bytes, i) => i === 0 || bytes > seen[i - 1]!),
      `progress as it came: ${seen}`,
    );
    assert.ok(progress.slice(0, -1).every((p) => p.fraction > 0 && p.fraction < 1));
    assert.equal(progress.at(-1)!.fraction, 1);
    const post = server.requests.find(
      (r) => r.method === 'POST' && r.path === '/api2/json/nodes/pve1/qemu/100/migrate',
    )!;
    assert.deepEqual(Object.fromEntries(post.form), {
      target: 'pve2',
      online: '1',
      'with-local-disks': '1',
      bwlimit: '102400',
    });
    assert.equal(await driver.locate('web-1'), 'pve2');
  });

  it('an HA request the HA manager never acts on fails after drivers.proxmox.haTaskWait, saying where the VM is and where to look', async () => {
    const driver = driverWith(`${caSettings}    haTaskWait: 200ms\n`);
    serveMigration(
      'web-1',
      0x6553f100,
      { lines: ['Requesting HA migration for VM 100 to node pve2', 'TASK OK'], runningPolls: 0, exitstatus: 'OK' },
      'hamigrate',
    );
    await assert.rejects(driver.migrate(migrationRequest('web-1', 'pve1', 'pve2')), (error: Error) => {
      assert.match(
        error.message,
        /the HA manager was asked to move "web-1" \(qemu 100\) to pve2 \(task UPID:pve1:[^)]+:hamigrate:100:[^)]+\) but started no qmigrate task on pve1 within 0 s \(drivers\.proxmox\.haTaskWait\); qemu 100 is on pve1/,
      );
      assert.match(error.message, /`ha-manager status`/);
      return true;
    });
  });

  it('WARNINGS: 1 is a success; local disks then memory count in the progress and the bytes copied', async () => {
    const driver = driverWith(caSettings);
    // qemu-server PVE/QemuMigrate.pm with local disks: the NBD mirror's lines are printed by
    // PVE/QemuServer/BlockJob.pm qemu_drive_mirror_monitor without a timestamp; a failed query-migrate
    // is `warn`ed (phase2) and counted by pve-common RESTEnvironment `warn` ("WARN: ..."), and fork_worker
    // ends the task with `TASK WARNINGS: 1`, exit status `WARNINGS: 1`.
    serveMigration('db-1', 0x6553f200, {
      runningPolls: 4,
      exitstatus: 'WARNINGS: 1',
      onStop: () => (guest('db-1').node = 'pve2'),
      lines: [
        "2024-05-01 10:00:00 starting migration of VM 106 to node 'pve2' (10.0.0.2)",
        "2024-05-01 10:00:00 found local disk 'local-lvm:vm-106-disk-0' (attached)",
        "2024-05-01 10:00:01 starting VM 106 on remote node 'pve2'",
        '2024-05-01 10:00:03 start remote tunnel',
        '2024-05-01 10:00:03 ssh tunnel ver 1',
        '2024-05-01 10:00:03 starting storage migration',
        '2024-05-01 10:00:03 scsi0: start migration to nbd:unix:/run/qemu-server/106_nbd.migrate:exportname=drive-scsi0',
        'drive mirror is starting for drive-scsi0',
        'drive-scsi0: transferred 1.0 GiB of 32.0 GiB (3.13%) in 5s',
        'drive-scsi0: transferred 16.0 GiB of 32.0 GiB (50.00%) in 1m 20s',
        'drive-scsi0: transferred 32.0 GiB of 32.0 GiB (100.00%) in 2m 40s, ready',
        "all 'mirror' jobs are ready",
        '2024-05-01 10:02:44 starting online/live migration on unix:/run/qemu-server/106.migrate',
        '2024-05-01 10:02:44 migration downtime limit: 100 ms',
        '2024-05-01 10:02:44 start migrate command to unix:/run/qemu-server/106.migrate',
        "WARN: query migrate failed: VM 106 qmp command 'query-migrate' failed - got timeout",
        "2024-05-01 10:02:45 query migrate failed: VM 106 qmp command 'query-migrate' failed - got timeout",
        '2024-05-01 10:02:47 migration active, transferred 1.0 GiB of 2.0 GiB VM-state, 110.2 MiB/s',
        '2024-05-01 10:02:49 average migration speed: 1.0 GiB/s - downtime 41 ms',
        '2024-05-01 10:02:49 migration completed, transferred 2.1 GiB VM-state',
        '2024-05-01 10:02:49 migration status: completed',
        'drive-scsi0: mirror-job finished',
        '2024-05-01 10:02:52 migration finished successfully (duration 00:02:52)',
        'TASK WARNINGS: 1',
      ],
    });
    const progress: MigrationProgress[] = [];
    const outcome = await driver.migrate(
      migrationRequest('db-1', 'pve1', 'pve2', { onProgress: (p) => progress.push(p) }),
    );
    assert.equal(outcome.downtimeMs, 41);
    assert.equal(outcome.bytesCopied, 32 * GIB + Math.round(2.1 * GIB));
    // The disk comes first, with the guest's 2 GiB of memory counted as still to copy.
    assert.ok(progress[0]!.bytesCopied < 32 * GIB, `${progress[0]!.bytesCopied}`);
    assert.equal(progress[0]!.bytesCopied + progress[0]!.bytesRemaining, 32 * GIB + 2 * GIB);
    assert.ok(progress.every((p, i) => i === 0 || p.bytesCopied >= progress[i - 1]!.bytesCopied));
    assert.equal(progress.at(-1)!.fraction, 1);
  });

  it('a paused VM (and a stopped one) is sent online=1; a migration under a second reports no downtime rather than 0', async () => {
    const driver = driverWith(caSettings);
    // qemu-server PVE/QemuMigrate.pm phase2 logs `average migration speed ... downtime N ms` only when
    // the migration took a second or more (`if ($delay > 0)`); the completed line comes regardless.
    serveMigration('paused-1', 0x6553f300, {
      runningPolls: 1,
      exitstatus: 'OK',
      lines: [
        "2024-05-01 11:00:00 starting migration of VM 104 to node 'pve2' (10.0.0.2)",
        '2024-05-01 11:00:00 starting online/live migration on unix:/run/qemu-server/104.migrate',
        '2024-05-01 11:00:00 migration downtime limit: 100 ms',
        '2024-05-01 11:00:00 start migrate command to unix:/run/qemu-server/104.migrate',
        '2024-05-01 11:00:01 migration completed, transferred 210.0 MiB VM-state',
        '2024-05-01 11:00:01 migration status: completed',
        '2024-05-01 11:00:02 migration finished successfully (duration 00:00:02)',
        'TASK OK',
      ],
    });
    const outcome = await driver.migrate(migrationRequest('paused-1', 'pve1', 'pve2'));
    assert.equal(outcome.downtimeMs, null);
    assert.equal(outcome.bytesCopied, 210 * MIB);
    serveMigration('$(reboot)', 0x6553f310, {
      runningPolls: 0,
      exitstatus: 'OK',
      lines: [
        "2024-05-01 11:01:00 starting migration of VM 102 to node 'pve1' (10.0.0.1)",
        '2024-05-01 11:01:01 migration finished successfully (duration 00:00:01)',
        'TASK OK',
      ],
    });
    await driver.migrate(migrationRequest('$(reboot)', 'pve2', 'pve1'));
    for (const vmid of [104, 102]) {
      const post = server.requests.find((r) => r.method === 'POST' && r.path.endsWith(`/qemu/${vmid}/migrate`))!;
      assert.equal(post.form.get('online'), '1', `VM ${vmid}`);
    }
  });

  it('reads a log that starts empty from its first line: the "no content" placeholder is no line', async () => {
    const driver = driverWith(caSettings);
    // qemu-server PVE/QemuMigrate.pm prepare: `die "Can't connect to destination address using public key\n"`,
    // logged by pve-guest-common PVE/AbstractMigrate.pm as `migration aborted (duration ...)`, exit status `migration aborted`.
    const handle = serveMigration('db-1', 0x6553f400, {
      runningPolls: 2,
      silentPolls: 1,
      exitstatus: 'migration aborted',
      lines: [
        "2024-05-01 12:00:00 ERROR: migration aborted (duration 00:00:00): Can't connect to destination address using public key",
        'TASK ERROR: migration aborted',
      ],
    });
    await assert.rejects(driver.migrate(migrationRequest('db-1', 'pve1', 'pve2')), (error: Error) => {
      assert.match(
        error.message,
        /Proxmox migration of "db-1" \(qemu 106\) from pve1 to pve2 failed: migration aborted; qemu 106 is on pve1 \(task UPID:pve1:/,
      );
      assert.match(
        error.message,
        /Task log:\n {2}2024-05-01 12:00:00 ERROR: migration aborted \(duration 00:00:00\): Can't connect to destination address using public key\n {2}TASK ERROR: migration aborted$/,
      );
      assert.doesNotMatch(error.message, /no content/);
      return true;
    });
    assert.equal(handle.logStarts()[0], 0);
    assert.ok(
      !handle.logStarts().includes(1) || handle.logStarts().indexOf(1) > handle.logStarts().lastIndexOf(0),
      `asked again from line 0 after the placeholder: ${handle.logStarts()}`,
    );
  });

  it('a task that fails midway is reported with its exit status, where the VM is, and the log lines', async () => {
    const driver = driverWith(caSettings);
    // qemu-server PVE/QemuMigrate.pm phase2 (`migration status error: ...`, `die "aborting\n"`) and phase2_cleanup,
    // pve-guest-common PVE/AbstractMigrate.pm `migration finished with problems`, exit status `migration problems`.
    serveMigration('db-1', 0x6553f500, {
      runningPolls: 2,
      exitstatus: 'migration problems',
      lines: [
        "2024-05-01 13:00:00 starting migration of VM 106 to node 'pve2' (10.0.0.2)",
        '2024-05-01 13:00:02 migration active, transferred 300.0 MiB of 2.0 GiB VM-state, 98.1 MiB/s',
        '2024-05-01 13:00:03 migration status error: failed - Unable to write to socket: Broken pipe',
        '2024-05-01 13:00:03 ERROR: online migrate failure - aborting',
        '2024-05-01 13:00:03 aborting phase 2 - cleanup resources',
        '2024-05-01 13:00:03 migrate_cancel',
        '2024-05-01 13:00:07 ERROR: migration finished with problems (duration 00:00:07)',
        'TASK ERROR: migration problems',
      ],
    });
    const progress: MigrationProgress[] = [];
    await assert.rejects(
      driver.migrate(migrationRequest('db-1', 'pve1', 'pve2', { onProgress: (p) => progress.push(p) })),
      (error: Error) => {
        assert.match(error.message, /failed: migration problems; qemu 106 is on pve1 \(task /);
        assert.match(error.message, /\n {2}2024-05-01 13:00:03 ERROR: online migrate failure - aborting\n/);
        assert.match(error.message, /\n {2}TASK ERROR: migration problems$/);
        return true;
      },
    );
    assert.equal(progress[0]!.bytesCopied, 300 * MIB, 'progress was reported before it failed');
  });

  it(
    'a cancel stops the task; its outcome and the lock: migrate its cleanup ' +
      'left are reported, and the locked VM is then refused before anything is sent',
    async () => {
      const { log, text } = capturingLog();
      const driver = driverWith(caSettings, { LBVM_PROXMOX_TOKEN: TOKEN }, log);
      // A DELETE makes pve-common RESTEnvironment kill the worker's process group with TERM, then KILL
      // after 5 s; QemuMigrate dies `interrupted by signal` in phase 2 and cleans up, ending `migration
      // problems`; a cleanup cut short by the KILL keeps the guest config's `lock: migrate`.
      const handle = serveMigration('db-1', 0x6553f600, {
        runningPolls: 1000,
        exitstatus: 'OK',
        lines: [
          "2024-05-01 14:00:00 starting migration of VM 106 to node 'pve2' (10.0.0.2)",
          '2024-05-01 14:00:02 migration active, transferred 100.0 MiB of 2.0 GiB VM-state, 50.0 MiB/s',
        ],
        onDelete: {
          exitstatus: 'migration problems',
          lines: [
            '2024-05-01 14:00:04 ERROR: online migrate failure - interrupted by signal',
            '2024-05-01 14:00:04 aborting phase 2 - cleanup resources',
            '2024-05-01 14:00:04 migrate_cancel',
            'TASK ERROR: migration problems',
          ],
        },
        onStop: () => (guest('db-1').lock = 'migrate'),
      });
      const controller = new AbortController();
      await assert.rejects(
        driver.migrate(
          migrationRequest('db-1', 'pve1', 'pve2', {
            signal: controller.signal,
            onProgress: () => controller.abort(new Error('operator cancelled')),
          }),
        ),
        /operator cancelled/,
      );
      assert.ok(handle.deleted());
      assert.ok(
        server.requests.some(
          (r) =>
            r.method === 'DELETE' && r.rawPath === `/api2/json/nodes/pve1/tasks/${encodeURIComponent(handle.upid)}`,
        ),
      );
      assert.match(
        text(),
        /migration of db-1 cancelled: Proxmox ended its task with "migration problems"; qemu 106 is on pve1, with `lock: migrate` left on it: LBVM will not plan it until that clears; if no task still runs for it, clear it with `qm unlock 106`/,
      );

      assert.equal((await driver.inventory('pve1')).vms.find((vm) => vm.name === 'db-1')!.busy, 'lock: migrate');
      const posts = server.requests.filter((r) => r.method === 'POST').length;
      await assert.rejects(
        driver.migrate(migrationRequest('db-1', 'pve1', 'pve2')),
        /"db-1" \(qemu 106\) is busy on pve1 \(lock: migrate\): Proxmox would refuse to migrate it until that clears; if no task still runs for it \(see its Task History\), clear the lock with `qm unlock 106`; nothing was done/,
      );
      await assert.rejects(driver.migrate(migrationRequest('backed-up', 'pve1', 'pve2')), /\(lock: backup\)/);
      assert.equal(
        server.requests.filter((r) => r.method === 'POST').length,
        posts,
        'nothing was sent for a locked VM',
      );
    },
  );

  it(
    'a container moves by restart: its downtime is the stop-to-start span, said when ' +
      'above migration.downtimeLimit; hostile names stay form values and path segments',
    async () => {
      const { log, text } = capturingLog();
      const driver = driverWith(caSettings, { LBVM_PROXMOX_TOKEN: TOKEN }, log);
      // pve-container PVE/LXC/Migrate.pm in restart mode: prepare logs `shutdown CT 101` and stops it
      // (vm_stop with a 180 s shutdown timeout, no force), phase1 moves it, final_cleanup logs `start
      // container on target node` and runs `pct start` there before AbstractMigrate's last line.
      serveMigration('x; rm -rf /', 0x6553f700, {
        runningPolls: 2,
        exitstatus: 'OK',
        lines: [
          '2024-05-01 15:00:00 shutdown CT 101',
          "2024-05-01 15:00:04 starting migration of CT 101 to node '$(reboot)' (10.0.0.3)",
          "2024-05-01 15:00:04 volume 'ceph-ct:vm-101-disk-0' is on shared storage 'ceph-ct'",
          '2024-05-01 15:00:05 start final cleanup',
          '2024-05-01 15:00:05 start container on target node',
          '2024-05-01 15:00:07 migration finished successfully (duration 00:00:07)',
          'TASK OK',
        ],
      });
      const outcome = await driver.migrate(migrationRequest('x; rm -rf /', 'pve1', '$(reboot)'));
      assert.equal(outcome.downtimeMs, 7000);
      assert.match(
        text(),
        /x; rm -rf \/ \(lxc 101\) was down 7 s for its restart migration \(Proxmox moves containers stopped\), above migration\.downtimeLimit 300 ms/,
      );
      const post = server.requests.find(
        (r) => r.method === 'POST' && r.path === '/api2/json/nodes/pve1/lxc/101/migrate',
      )!;
      assert.equal(post.body, 'target=%24%28reboot%29&restart=1&bwlimit=102400');

      const odd = serveMigration('odd-node-vm', 0x6553f710, {
        runningPolls: 0,
        exitstatus: 'OK',
        lines: ['TASK OK'],
      }).upid;
      await driver.migrate(migrationRequest('odd-node-vm', 'x; rm -rf /', 'pve1'));
      const encodedNode = 'x%3B%20rm%20-rf%20%2F';
      assert.ok(
        server.requests.some(
          (r) => r.method === 'POST' && r.rawPath === `/api2/json/nodes/${encodedNode}/qemu/103/migrate`,
        ),
      );
      assert.ok(
        server.requests.some((r) =>
          r.rawPath.startsWith(`/api2/json/nodes/${encodedNode}/tasks/${encodeURIComponent(odd)}/status`),
        ),
      );
      assert.ok(!fs.existsSync(path.join(process.cwd(), 'pwned')));
    },
  );

  it('says when Proxmox applied a downtime limit above migration.downtimeLimit (its own, raised when the migration would not converge)', async () => {
    const { log, text } = capturingLog();
    const driver = driverWith(caSettings, { LBVM_PROXMOX_TOKEN: TOKEN }, log);
    // qemu-server PVE/QemuMigrate.pm phase2: the guest's migrate_downtime (100 ms by default), doubled
    // when the remaining memory grows for six polls in a row.
    serveMigration('db-1', 0x6553f800, {
      runningPolls: 1,
      exitstatus: 'OK',
      blipOnCall: 0,
      lines: [
        '2024-05-01 16:00:00 migration downtime limit: 100 ms',
        '2024-05-01 16:00:09 migration active, transferred 1.9 GiB of 2.0 GiB VM-state, 90.0 MiB/s, VM dirties lots of memory: 120.0 MiB/s',
        '2024-05-01 16:00:09 auto-increased downtime to continue migration: 200 ms',
        '2024-05-01 16:00:15 auto-increased downtime to continue migration: 400 ms',
        '2024-05-01 16:00:20 average migration speed: 100.0 MiB/s - downtime 380 ms',
        '2024-05-01 16:00:21 migration finished successfully (duration 00:00:21)',
        'TASK OK',
      ],
    });
    const outcome = await driver.migrate(migrationRequest('db-1', 'pve1', 'pve2'));
    assert.equal(outcome.downtimeMs, 380);
    assert.match(
      text(),
      /Proxmox migrated db-1 \(qemu 106\) with a downtime limit of 400 ms \(raised by Proxmox because the migration did not converge\), above migration\.downtimeLimit 300 ms; set it on the guest to keep LBVM's: qm set 106 --migrate_downtime 0\.3/,
    );
  });

  it('a refused token (401 "Authentication failed!", empty body) names where the token comes from, never the token', async () => {
    const dir = tmpDir();
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const driver = driverWith(`${caSettings}    tokenFile: ${tokenFile}\n`, {});
    // What pve-http-server answers a token it does not know (Corsinvest/cv4pve-diag#24: "StatusCode:
    // Unauthorized ReasonPhrase: Authentication failed!"; acme.sh#7141: "HTTP 401 with an empty body").
    server.route('GET /api2/json/cluster/resources', (r) =>
      r.headers.authorization === `PVEAPIToken=${TOKEN}`
        ? { status: 401, statusMessage: 'Authentication failed!', body: '' }
        : { status: 400, statusMessage: 'token not sent from the file' },
    );
    await assert.rejects(driver.inventory('pve1'), (error: Error) => {
      assert.match(
        error.message,
        /HTTP 401 Authentication failed!: the API token was refused; check the token \(USER@REALM!TOKENID=SECRET\) in drivers\.proxmox\.tokenEnv or tokenFile/,
      );
      assert.ok(!error.message.includes(SECRET));
      return true;
    });
  });

  it('missing or malformed settings are named all at once, the token never shown (lbvm collect exits 2)', async () => {
    const cwd = tmpDir();
    fs.writeFileSync(
      path.join(cwd, 'lbvm.yaml'),
      'drivers:\n  proxmox:\n    url: http://pve1:8006\n    caFile: /nonexistent/ca.pem\n',
    );
    const missing = await runCli('lbvm', ['collect', '--driver', 'proxmox', '--store', 'files:./samples'], {
      cwd,
      env: cleanEnv(),
    });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /drivers\.proxmox\.url: "http:\/\/pve1:8006": expected an https:\/\/ URL/);
    assert.match(missing.stderr, /LBVM_PROXMOX_TOKEN: not set \(and no drivers\.proxmox\.tokenFile\)/);
    assert.match(missing.stderr, /drivers\.proxmox\.caFile: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/);
    const malformed = await runCli('lbvm', ['collect', '--driver', 'proxmox', '--store', 'files:./samples'], {
      cwd,
      env: cleanEnv({ LBVM_PROXMOX_TOKEN: `just-the-${SECRET}` }),
    });
    assert.equal(malformed.code, 2, malformed.stderr);
    assert.match(
      malformed.stderr,
      /LBVM_PROXMOX_TOKEN: the API token is not of the form USER@REALM!TOKENID=SECRET \(its value is not shown\)/,
    );
    for (const result of [missing, malformed]) {
      assert.ok(!`${result.stdout}${result.stderr}`.includes(SECRET));
      assert.doesNotMatch(result.stderr, /\bat .*\.(ts|js):\d+/);
    }
    assert.ok(!fs.existsSync(path.join(cwd, 'samples')));
  });
});

describe('proxmox task logs', () => {
  it('reads progress, totals and downtime from the line formats of qemu-server and pve-common', () => {
    // qemu-server PVE/QemuMigrate.pm phase2: `migration $status, $progress` with optional VFIO and dirty-rate suffixes.
    assert.deepEqual(
      parseProgressLine('2024-05-01 10:00:03 migration active, transferred 512.0 MiB of 2.0 GiB VM-state, 110.2 MiB/s'),
      { stream: 'VM-state', bytesCopied: 512 * MIB, bytesTotal: 2 * GIB },
    );
    assert.deepEqual(
      parseProgressLine(
        '2024-05-01 10:00:03 migration active, transferred 1.0 GiB of 2.0 GiB VM-state, 90.0 MiB/s (+ 16.0 MiB VFIO-state), VM dirties lots of memory: 120.0 MiB/s',
      ),
      { stream: 'VM-state', bytesCopied: GIB, bytesTotal: 2 * GIB },
    );
    // qemu-server PVE/QemuServer/BlockJob.pm qemu_drive_mirror_monitor, as a blog's `qm move-disk` shows it.
    assert.deepEqual(parseProgressLine('drive-scsi0: transferred 1013.0 MiB of 8.0 GiB (12.37%) in 1s'), {
      stream: 'drive-scsi0',
      bytesCopied: 1013 * MIB,
      bytesTotal: 8 * GIB,
    });
    assert.deepEqual(parseProgressLine('drive-virtio1: transferred 8.0 GiB of 8.0 GiB (100.00%) in 9s, ready'), {
      stream: 'drive-virtio1',
      bytesCopied: 8 * GIB,
      bytesTotal: 8 * GIB,
    });
    assert.equal(parseProgressLine("2024-05-01 10:00:00 starting VM 100 on remote node 'pve2'"), null);
    assert.equal(parseDowntimeLine('2025-11-14 21:47:58 average migration speed: 806.6 MiB/s - downtime 59 ms'), 59);
    assert.equal(parseDowntimeLine('2025-11-14 21:47:42 migration downtime limit: 100 ms'), null);
    assert.equal(
      parseCompletedLine('2025-11-14 21:47:58 migration completed, transferred 11.7 GiB VM-state'),
      Math.round(11.7 * GIB),
    );
    // Memory sent again (dirtied pages) can exceed the guest's size: the progress stays within 0..1.
    const log = new MigrationLog();
    log.add([{ n: 1, t: '2024-05-01 10:00:03 migration active, transferred 2.5 GiB of 2.0 GiB VM-state, 1.0 GiB/s' }]);
    assert.deepEqual(log.progress(2 * GIB), { bytesCopied: 2.5 * GIB, bytesRemaining: 0, fraction: 1 });
  });

  it('reads UPIDs and exit statuses as pve-common does', () => {
    assert.deepEqual(parseUpid('UPID:pve1:0000C1F2:0012D0F3:6553F0AC:qmigrate:100:root@pam:'), {
      node: 'pve1',
      startTimeSec: 0x6553f0ac,
      type: 'qmigrate',
      id: '100',
      user: 'root@pam',
    });
    assert.equal(parseUpid('not a upid'), null);
    // pve-common PVE/Tools.pm upid_status_is_error.
    assert.deepEqual(
      ['OK', 'WARNINGS: 1', 'WARNINGS: 12', 'migration aborted', 'unexpected status', undefined].map(taskSucceeded),
      [true, true, true, false, false, false],
    );
  });
});
