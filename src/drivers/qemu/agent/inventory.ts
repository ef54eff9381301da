/**
 * What the agent tells about its guests: the inventory a collector reads (vCPUs, memory, CPU time and
 * disk bytes from /proc, memory from the balloon when there is one) and one guest's description.
 */
import type { VmRunState } from '../../../model/index.ts';
import type { VmInventory } from '../../driver.ts';
import { localDiskSizes } from './disks.ts';
import { migrationInProgress } from './migration.ts';
import { readProcStats } from './proc-stat.ts';
import { qmpOf, runStatus } from './qemu.ts';
import type { AgentHost, ManagedGuest } from './state.ts';

export async function inventory(host: AgentHost): Promise<VmInventory[]> {
  const result: VmInventory[] = [];
  for (const guest of host.guests.values()) {
    if (guest.role === 'incoming') continue; // not here yet
    const status = await runStatus(guest);
    const entry: VmInventory = {
      name: guest.spec.name,
      host: host.options.host,
      vcpus: guest.spec.vcpus,
      memBytes: guest.spec.memMiB * 1024 * 1024,
      memUsedBytes: 0,
      state: runState(status, guest),
      tags: guest.spec.tags,
    };
    if (guest.pid !== null && status !== 'gone') {
      const proc = readProcStats(guest.pid);
      if (proc) {
        entry.instanceId = `${guest.pid}:${proc.startTime}`;
        entry.cpuTimeMs = proc.cpuTimeMs;
        entry.memUsedBytes = proc.rssBytes;
        if (proc.readBytes !== null) entry.diskReadBytes = proc.readBytes;
        if (proc.writeBytes !== null) entry.diskWriteBytes = proc.writeBytes;
      }
      const disks = await localDiskSizes(guest).catch(() => []);
      if (disks.length) entry.localDiskBytes = disks.reduce((sum, disk) => sum + disk.virtualBytes, 0);
      try {
        const balloon = (await (await qmpOf(guest)).execute('query-balloon', undefined, 2000)) as { actual: number };
        entry.memUsedBytes = balloon.actual;
      } catch {
        /* no balloon device: RSS stands */
      }
    }
    result.push(entry);
  }
  return result;
}

/** One guest as `guests/list` and `guests/get` show it. */
export async function describe(guest: ManagedGuest) {
  const migration = migrationInProgress(guest);
  return {
    name: guest.spec.name,
    role: guest.role,
    status: await runStatus(guest),
    pid: guest.pid,
    vcpus: guest.spec.vcpus,
    memBytes: guest.spec.memMiB * 1024 * 1024,
    migrating: migration ? { to: migration.to, status: migration.status } : null,
  };
}

/** QEMU's run state (`query-status`) as a sample's VM state. */
export function runState(status: string, guest: ManagedGuest): VmRunState {
  if (migrationInProgress(guest)) return 'migrating';
  if (status === 'running') return 'running';
  if (status === 'paused' || status === 'postmigrate' || status === 'suspended' || status === 'prelaunch')
    return 'paused';
  if (status === 'inmigrate' || status === 'finish-migrate') return 'migrating';
  if (status === 'gone' || status === 'shutdown') return 'stopped';
  return 'unknown';
}
