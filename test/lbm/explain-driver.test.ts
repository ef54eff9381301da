/**
 * `lbm explain` says how a VM's move is carried out by the configured driver, when an HA manager owns
 * the VM (its moves then go through it), and when its hypervisor is busy with it: facts a collector
 * wrote into the store (a Proxmox inventory's `haState` and `busy`), read back by `lbm` as a user runs it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import YAML from 'yaml';
import type { VmSample } from '../../src/model/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { GiB, simVmOf, startLbmCluster, type LbmCluster } from './support.ts';

describe('lbm explain: how a move is carried out, HA and busy VMs', () => {
  let cluster: LbmCluster;
  let proxmoxConfig: string;
  const explain = (...args: string[]) =>
    runCli('lbm', ['explain', ...args, '--config', proxmoxConfig], { env: cleanEnv() });

  before(async () => {
    cluster = await startLbmCluster(
      ['pve1', 'pve2'],
      [simVmOf('web-1', 2 * GiB, 0.5), simVmOf('db-1', 2 * GiB, 0.5), simVmOf('plain-1', GiB, 0.1)],
      { 'web-1': 'pve1', 'db-1': 'pve1', 'plain-1': 'pve2' },
    );
    await cluster.collect();
    await cluster.collect();
    // What a Proxmox collector adds to the newest round: web-1 under HA, db-1 locked by a migration's cleanup.
    const newest = (await cluster.store.lastSampleTimes()).get('pve1')!;
    const sample = (vm: string, extra: Partial<VmSample>): VmSample => ({
      kind: 'vm',
      vm,
      host: 'pve1',
      timeMs: newest,
      vcpus: 1,
      cpuUsedCores: 0.5,
      memBytes: 2 * GiB,
      memUsedBytes: GiB,
      state: 'running',
      ...extra,
    });
    await cluster.store.writeSamples([
      sample('web-1', { haState: 'started' }),
      sample('db-1', { busy: 'lock: migrate' }),
    ]);
    proxmoxConfig = path.join(path.dirname(cluster.configFile), 'proxmox.yaml');
    const settings = YAML.parse(fs.readFileSync(cluster.configFile, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(
      proxmoxConfig,
      YAML.stringify({ ...settings, collect: { ...(settings.collect as object), driver: 'proxmox' } }),
    );
  });
  after(async () => {
    await cluster?.close();
  });

  it('an HA-managed VM: its moves go through the HA manager, which runs the migration; LBVM follows it', async () => {
    const text = await explain('web-1');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^ {2}HA-managed \(HA state started\): its moves go through the HA manager$/m);
    assert.match(
      text.stdout,
      /^ {2}moved by the Proxmox HA manager: LBVM asks it \(a hamigrate task\); its resource agent then runs the migration itself/m,
    );
    const json = await explain('web-1', '--json');
    const data = JSON.parse(json.stdout) as { haState: string | null; busy: string | null; movedBy: string };
    assert.deepEqual([data.haState, data.busy], ['started', null]);
    assert.match(data.movedBy, /^by the Proxmox HA manager/);
  });

  it('a VM the hypervisor is busy with says so; one outside HA is moved by a migration task', async () => {
    const text = await explain('db-1');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^ {2}busy on pve1: lock: migrate; not moved until that clears$/m);
    assert.match(text.stdout, /^ {2}moved by a Proxmox migration task: a VM live \(online, with local disks/m);
    assert.doesNotMatch(text.stdout, /HA-managed/);
    // The same VM under the cluster's own (sim) configuration.
    assert.match((await cluster.lbm('explain', 'plain-1')).stdout, /^ {2}moved by the sim driver \(simulated\)$/m);
  });
});
