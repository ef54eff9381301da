/**
 * The proxmox driver against a recorded-response HTTPS server (test/helpers/recorded-server.ts)
 * answering with the shapes of the Proxmox VE API documentation: /cluster/resources, per-guest
 * status/current, qemu and lxc migrate returning a UPID, task status and log, task DELETE.
 * Checked: TLS verification (refused by default for a self-signed certificate, with a message saying
 * what to configure; accepted with the CA file or the pinned fingerprint; a wrong pin sends nothing),
 * the token only ever in the Authorization header, a migration task that fails midway reported with
 * its log lines, cancel, and hostile names only ever URL-encoded path segments or form values.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import { ProxmoxDriver, parseDowntimeLine, parseProgressLine } from '../../src/drivers/proxmox/driver.ts';
import type { MigrationProgress } from '../../src/model/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { GIB, MIB, migrationRequest, silentLog as log } from '../helpers/drivers.ts';
import { selfSignedCert, startRecordedServer, type RecordedServer, type SelfSignedCert } from '../helpers/recorded-server.ts';
import { tmpDir } from '../helpers/tmp.ts';

const SECRET = '5f0e8c9a-4b1d-4e7a-9c2f-31d4a0b7e6aa';
const TOKEN = `lbvm@pve!balancer=${SECRET}`;

// Recorded from the shapes in the Proxmox VE API documentation (api-viewer: cluster/resources, nodes/{node}/qemu/{vmid}/status/current, ...).
const RESOURCES = [
  { id: 'qemu/100', type: 'qemu', vmid: 100, node: 'pve1', name: 'web-1', status: 'running', maxcpu: 2, maxmem: 2 * GIB, mem: GIB, cpu: 0.25, disk: 0, maxdisk: 32 * GIB, diskread: 1000, diskwrite: 2000, netin: 300, netout: 400, uptime: 3600, template: 0, tags: 'prod;web' },
  { id: 'lxc/101', type: 'lxc', vmid: 101, node: 'pve1', name: 'x; rm -rf /', status: 'running', maxcpu: 1, maxmem: 512 * MIB, mem: 100 * MIB, cpu: 0.5, disk: 0, maxdisk: 8 * GIB, diskread: 10, diskwrite: 20, netin: 30, netout: 40, uptime: 60, template: 0 },
  { id: 'qemu/102', type: 'qemu', vmid: 102, node: 'pve2', name: '$(reboot)', status: 'stopped', maxcpu: 1, maxmem: GIB, mem: 0, cpu: 0, template: 0 },
  { id: 'qemu/9000', type: 'qemu', vmid: 9000, node: 'pve1', name: 'debian-template', status: 'stopped', maxcpu: 1, maxmem: GIB, template: 1 },
  { id: 'qemu/103', type: 'qemu', vmid: 103, node: 'x; rm -rf /', name: 'odd-node-vm', status: 'running', maxcpu: 1, maxmem: GIB, mem: 0, cpu: 0, template: 0 },
];
const STATUS_100 = { status: 'running', qmpstatus: 'running', name: 'web-1', cpus: 2, cpu: 0.3, maxmem: 2 * GIB, mem: 900 * MIB, diskread: 5000, diskwrite: 6000, netin: 700, netout: 800, pid: 4242, uptime: 3601 };
const STATUS_101 = { status: 'running', name: 'x; rm -rf /', cpus: 1, cpu: 0.5, maxmem: 512 * MIB, mem: 120 * MIB, diskread: 11, diskwrite: 21, netin: 31, netout: 41, pid: 5151, uptime: 61 };
const upid = (node: string, vmid: number, type: string) => `UPID:${node}:0000ABCD:0001E240:6553F0A0:${type}:${vmid}:lbvm@pve!balancer:`;

function baseRoutes(server: RecordedServer): void {
  server.route('GET /api2/json/cluster/resources', { json: { data: RESOURCES } });
  server.route('GET /api2/json/nodes/pve1/qemu/100/status/current', { json: { data: STATUS_100 } });
  server.route('GET /api2/json/nodes/pve1/lxc/101/status/current', { json: { data: STATUS_101 } });
}

/** A task whose status is `running` for `runningPolls` polls, then stopped with `exitstatus`; its log grows with the polls; one status call can fail with 503. */
function task(server: RecordedServer, node: string, id: string, lines: string[], runningPolls: number, exitstatus: string, blipOnCall?: number): { deleted: () => boolean } {
  let deleted = false;
  let polls = 0;
  server.route(`GET /api2/json/nodes/${node}/tasks/${id}/status`, (_request, count) => {
    if (count === blipOnCall) return { status: 503, statusMessage: 'Service Unavailable' };
    polls++;
    const stopped = deleted || polls > runningPolls;
    return { json: { data: { upid: id, node, type: 'qmigrate', status: stopped ? 'stopped' : 'running', ...(stopped ? { exitstatus: deleted ? 'interrupted by signal' : exitstatus } : {}) } } };
  });
  server.route(`GET /api2/json/nodes/${node}/tasks/${id}/log`, (request) => {
    const visible = deleted || polls > runningPolls ? lines.length : Math.min(lines.length, Math.ceil((polls * lines.length) / (runningPolls + 1)));
    const start = Number(request.query.get('start') ?? 0);
    return { json: { data: lines.slice(start, visible).map((t, index) => ({ n: start + index + 1, t })), total: visible } };
  });
  server.route(`DELETE /api2/json/nodes/${node}/tasks/${id}`, () => {
    deleted = true;
    return { json: { data: null } };
  });
  return { deleted: () => deleted };
}

function driverWith(server: RecordedServer, settings: string, env: Record<string, string> = { LBVM_PROXMOX_TOKEN: TOKEN }): ProxmoxDriver {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'lbvm.yaml'), `drivers:\n  proxmox:\n    url: ${server.url}\n    pollInterval: 20ms\n${settings}`);
  const { config } = loadConfig({ cwd: dir, env: {} });
  return ProxmoxDriver.fromConfig(config, log, env);
}

describe('proxmox driver', () => {
  let cert: SelfSignedCert;
  let server: RecordedServer;
  let caSettings: string;
  const drivers: ProxmoxDriver[] = [];
  const keep = (driver: ProxmoxDriver) => (drivers.push(driver), driver);
  before(async () => {
    cert = await selfSignedCert();
    server = await startRecordedServer(cert);
    baseRoutes(server);
    caSettings = `    caFile: ${cert.certFile}\n`;
  });
  after(async () => {
    for (const driver of drivers) await driver.close();
    await server?.close();
  });

  it('refuses a self-signed certificate by default, saying what to configure; a wrong pin sends nothing', async () => {
    const before = server.requests.length;
    const plain = keep(driverWith(server, ''));
    await assert.rejects(plain.inventory('pve1'), (error: Error) => {
      assert.match(error.message, /TLS verification failed \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/);
      assert.match(error.message, /drivers\.proxmox\.caFile/);
      assert.match(error.message, /drivers\.proxmox\.fingerprint/);
      assert.ok(!error.message.includes(SECRET));
      return true;
    });
    const wrong = keep(driverWith(server, `    fingerprint: "${'AB:'.repeat(31)}AB"\n`));
    await assert.rejects(wrong.inventory('pve1'), /TLS verification failed \(FINGERPRINT_MISMATCH: the server's certificate has SHA-256 fingerprint [0-9A-F:]+, not the pinned AB:AB/);
    assert.equal(server.requests.length, before, 'no request (and no token) reached the server');
  });

  it('accepts the server with its CA file or its pinned fingerprint (with or without colons)', async () => {
    for (const settings of [caSettings, `    fingerprint: "${cert.fingerprint256}"\n`, `    fingerprint: "${cert.fingerprint256.replace(/:/g, '').toLowerCase()}"\n`]) {
      const { vms } = await keep(driverWith(server, settings)).inventory('pve1');
      assert.equal(vms.length, 2, settings);
    }
  });

  it('lists a node from /cluster/resources and status/current: cores from the CPU share, counters, tags; templates left out', async () => {
    const driver = keep(driverWith(server, caSettings));
    const start = server.requests.length;
    const { host, vms } = await driver.inventory('pve1');
    assert.equal(host, 'pve1');
    assert.deepEqual(vms, [
      { name: 'web-1', host: 'pve1', vcpus: 2, memBytes: 2 * GIB, memUsedBytes: 900 * MIB, state: 'running', cpuUsedCores: 0.6, instanceId: 'qemu/100/4242', diskReadBytes: 5000, diskWriteBytes: 6000, netRxBytes: 700, netTxBytes: 800, tags: ['prod', 'web'] },
      { name: 'x; rm -rf /', host: 'pve1', vcpus: 1, memBytes: 512 * MIB, memUsedBytes: 120 * MIB, state: 'running', cpuUsedCores: 0.5, instanceId: 'lxc/101/5151', diskReadBytes: 11, diskWriteBytes: 21, netRxBytes: 31, netTxBytes: 41 },
    ]);
    const sent = server.requests.slice(start);
    assert.deepEqual(sent.map((r) => `${r.method} ${r.rawPath}`).sort(), [
      'GET /api2/json/cluster/resources?type=vm',
      'GET /api2/json/nodes/pve1/lxc/101/status/current',
      'GET /api2/json/nodes/pve1/qemu/100/status/current',
    ]);
    for (const r of sent) assert.equal(r.headers.authorization, `PVEAPIToken=${TOKEN}`);
    assert.deepEqual((await driver.inventory('pve2')).vms.map((vm) => [vm.name, vm.state]), [['$(reboot)', 'stopped']]);
    assert.equal(await driver.locate('$(reboot)'), 'pve2');
    assert.equal(await driver.locate('x; rm -rf /'), 'pve1');
    assert.equal(await driver.locate('nobody-has-me'), null);
  });

  it('migrates a VM online with local disks, following the task log for progress and downtime (through a 503 blip)', async () => {
    const driver = keep(driverWith(server, caSettings));
    const id = upid('pve1', 100, 'qmigrate');
    server.route('POST /api2/json/nodes/pve1/qemu/100/migrate', { json: { data: id } });
    task(server, 'pve1', id, [
      'starting migration of VM 100 to node \'pve2\' (10.0.0.2)',
      'starting VM 100 on remote node \'pve2\'',
      'migration active, transferred 512.0 MiB of 2.0 GiB VM-state, 110.2 MiB/s',
      'migration active, transferred 1.5 GiB of 2.0 GiB VM-state, 112.0 MiB/s',
      'average migration speed: 105.3 MiB/s - downtime 52 ms',
      'migration status: completed',
      'migration finished successfully (duration 00:00:19)',
      'TASK OK',
    ], 3, 'OK', 1);
    const progress: MigrationProgress[] = [];
    const outcome = await driver.migrate(migrationRequest('web-1', 'pve1', 'pve2', { onProgress: (p) => progress.push(p) }));
    const post = server.requests.find((r) => r.method === 'POST' && r.path === '/api2/json/nodes/pve1/qemu/100/migrate')!;
    assert.deepEqual(Object.fromEntries(post.form), { target: 'pve2', online: '1', 'with-local-disks': '1', bwlimit: '102400' });
    assert.equal(post.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.ok(server.requests.some((r) => r.rawPath.startsWith(`/api2/json/nodes/pve1/tasks/${encodeURIComponent(id)}/status`)), 'the UPID is URL-encoded in the path');
    assert.deepEqual(progress.slice(0, 2).map((p) => [p.bytesCopied, p.bytesRemaining]), [[512 * MIB, 1536 * MIB], [1.5 * GIB, 0.5 * GIB]]);
    assert.equal(progress.at(-1)!.fraction, 1);
    assert.equal(outcome.downtimeMs, 52);
    assert.equal(outcome.bytesCopied, 1.5 * GIB);
  });

  it('a migration task that fails midway is reported as failed, with the task log lines', async () => {
    const driver = keep(driverWith(server, caSettings));
    const id = upid('pve1', 100, 'qmigrate') + 'fail';
    server.route('POST /api2/json/nodes/pve1/qemu/100/migrate', { json: { data: id } });
    task(server, 'pve1', id, [
      'starting migration of VM 100 to node \'pve2\' (10.0.0.2)',
      'migration active, transferred 300.0 MiB of 2.0 GiB VM-state, 98.1 MiB/s',
      'migration status error: failed - Unable to write to socket: Broken pipe',
      'ERROR: online migrate failure - aborting',
      'aborting phase 2 - cleanup resources',
      'migrate_cancel',
      'ERROR: migration finished with problems (duration 00:00:07)',
      'TASK ERROR: migration problems',
    ], 2, 'migration problems');
    const progress: MigrationProgress[] = [];
    await assert.rejects(driver.migrate(migrationRequest('web-1', 'pve1', 'pve2', { onProgress: (p) => progress.push(p) })), (error: Error) => {
      assert.match(error.message, /Proxmox migration of "web-1" \(qemu 100\) from pve1 to pve2 failed: migration problems/);
      assert.match(error.message, /Task log:\n {2}starting migration of VM 100/);
      assert.match(error.message, /\n {2}ERROR: online migrate failure - aborting\n/);
      assert.match(error.message, /\n {2}TASK ERROR: migration problems$/);
      return true;
    });
    assert.equal(progress[0]!.bytesCopied, 300 * MIB, 'progress was reported before it failed');
  });

  it('an abort stops the task with DELETE and rejects with the reason', async () => {
    const driver = keep(driverWith(server, caSettings));
    const id = upid('pve1', 100, 'qmigrate') + 'cancel';
    server.route('POST /api2/json/nodes/pve1/qemu/100/migrate', { json: { data: id } });
    const handle = task(server, 'pve1', id, ['migration active, transferred 100.0 MiB of 2.0 GiB VM-state, 50.0 MiB/s', 'more', 'more', 'more'], 1000, 'OK');
    const controller = new AbortController();
    await assert.rejects(
      driver.migrate(migrationRequest('web-1', 'pve1', 'pve2', { signal: controller.signal, onProgress: () => controller.abort(new Error('operator cancelled')) })),
      /operator cancelled/,
    );
    assert.ok(handle.deleted());
    assert.ok(server.requests.some((r) => r.method === 'DELETE' && r.rawPath === `/api2/json/nodes/pve1/tasks/${encodeURIComponent(id)}`));
  });

  it('hostile names travel as URL-encoded path segments and form values; a container migrates with restart', async () => {
    const driver = keep(driverWith(server, caSettings));
    const lxcId = upid('pve1', 101, 'vzmigrate');
    server.route('POST /api2/json/nodes/pve1/lxc/101/migrate', { json: { data: lxcId } });
    task(server, 'pve1', lxcId, ['TASK OK'], 0, 'OK');
    await driver.migrate(migrationRequest('x; rm -rf /', 'pve1', '$(reboot)'));
    const lxcPost = server.requests.find((r) => r.method === 'POST' && r.path === '/api2/json/nodes/pve1/lxc/101/migrate')!;
    assert.equal(lxcPost.body, 'target=%24%28reboot%29&restart=1&bwlimit=102400');
    assert.deepEqual(Object.fromEntries(lxcPost.form), { target: '$(reboot)', restart: '1', bwlimit: '102400' });

    const odd = upid('x; rm -rf /', 103, 'qmigrate');
    server.route('POST /api2/json/nodes/x; rm -rf //qemu/103/migrate', { json: { data: odd } });
    const encodedNode = 'x%3B%20rm%20-rf%20%2F';
    task(server, 'x; rm -rf /', odd, ['TASK OK'], 0, 'OK');
    await driver.migrate(migrationRequest('odd-node-vm', 'x; rm -rf /', 'pve1'));
    assert.ok(server.requests.some((r) => r.method === 'POST' && r.rawPath === `/api2/json/nodes/${encodedNode}/qemu/103/migrate`));
    assert.ok(server.requests.some((r) => r.rawPath.startsWith(`/api2/json/nodes/${encodedNode}/tasks/${encodeURIComponent(odd)}/status`)));
    assert.ok(!fs.existsSync(path.join(process.cwd(), 'pwned')));
  });

  it('a refused token is an authentication error naming where the token comes from, never the token', async () => {
    const dir = tmpDir();
    const tokenFile = path.join(dir, 'token');
    fs.writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const driver = keep(driverWith(server, `${caSettings}    tokenFile: ${tokenFile}\n`, {}));
    server.route('GET /api2/json/cluster/resources', (r) =>
      r.headers.authorization === `PVEAPIToken=${TOKEN}` ? { status: 401, statusMessage: 'authentication failure' } : { status: 400, statusMessage: 'token not sent from the file' },
    );
    await assert.rejects(driver.inventory('pve1'), (error: Error) => {
      assert.match(error.message, /HTTP 401 authentication failure: the API token was refused; check the token \(USER@REALM!TOKENID=SECRET\) in drivers\.proxmox\.tokenEnv or tokenFile/);
      assert.ok(!error.message.includes(SECRET));
      return true;
    });
    baseRoutes(server);
  });

  it('missing or malformed settings are named all at once, the token never shown (lbvm collect exits 2)', async () => {
    const cwd = tmpDir();
    fs.writeFileSync(path.join(cwd, 'lbvm.yaml'), 'drivers:\n  proxmox:\n    url: http://pve1:8006\n    caFile: /nonexistent/ca.pem\n');
    const missing = await runCli('lbvm', ['collect', '--driver', 'proxmox', '--store', 'files:./samples'], { cwd, env: cleanEnv() });
    assert.equal(missing.code, 2, missing.stderr);
    assert.match(missing.stderr, /drivers\.proxmox\.url: "http:\/\/pve1:8006": expected an https:\/\/ URL/);
    assert.match(missing.stderr, /LBVM_PROXMOX_TOKEN: not set \(and no drivers\.proxmox\.tokenFile\)/);
    assert.match(missing.stderr, /drivers\.proxmox\.caFile: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/);
    const malformed = await runCli('lbvm', ['collect', '--driver', 'proxmox', '--store', 'files:./samples'], { cwd, env: cleanEnv({ LBVM_PROXMOX_TOKEN: `just-the-${SECRET}` }) });
    assert.equal(malformed.code, 2, malformed.stderr);
    assert.match(malformed.stderr, /LBVM_PROXMOX_TOKEN: the API token is not of the form USER@REALM!TOKENID=SECRET \(its value is not shown\)/);
    for (const result of [missing, malformed]) {
      assert.ok(!`${result.stdout}${result.stderr}`.includes(SECRET));
      assert.doesNotMatch(result.stderr, /\bat .*\.(ts|js):\d+/);
    }
    assert.ok(!fs.existsSync(path.join(cwd, 'samples')));
  });

  it('reads progress and downtime from the log line formats', () => {
    assert.deepEqual(parseProgressLine('2024-05-01 10:00:03 migration active, transferred 512.0 MiB of 2.0 GiB VM-state, 110.2 MiB/s'), { bytesCopied: 512 * MIB, bytesTotal: 2 * GIB });
    assert.equal(parseProgressLine('starting VM 100 on remote node'), null);
    assert.equal(parseDowntimeLine('2024-05-01 10:00:09 average migration speed: 105.3 MiB/s - downtime 52 ms'), 52);
  });
});
