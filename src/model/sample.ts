/**
 * Samples: facts measured on one host at one time. A collector writes them; nothing else does.
 * `timeMs` is the measurement time (epoch ms), never the time the sample was stored.
 */

/** One host's capacity and use at `timeMs`. */
export interface HostSample {
  kind: 'host';
  host: string;
  timeMs: number;
  /** CPU capacity in cores (logical CPUs, or the configured capacity of a logical host). */
  cpuCores: number;
  /** Cores busy on average since the previous sample (from /proc/stat deltas, or the sum of guests). */
  cpuUsedCores: number;
  /** Cores stolen by a hypervisor under this host, when it is itself virtual. */
  cpuStealCores?: number;
  memBytes: number;
  memUsedBytes: number;
  memAvailableBytes?: number;
  load1?: number;
  load5?: number;
  load15?: number;
  diskReadBytesPerSec?: number;
  diskWriteBytesPerSec?: number;
  netRxBytesPerSec?: number;
  netTxBytesPerSec?: number;
  /** How many VMs the driver's inventory listed on this host at `timeMs`. */
  vmCount?: number;
  /** Memory committed to those VMs: the sum of their configured sizes (what the policies judge). */
  memCommittedBytes?: number;
}

/** Running state of a guest as its hypervisor reports it. */
export type VmRunState = 'running' | 'paused' | 'migrating' | 'stopped' | 'unknown';

/** One VM's size and use at `timeMs`, tagged with the host it ran on. */
export interface VmSample {
  kind: 'vm';
  vm: string;
  host: string;
  timeMs: number;
  vcpus: number;
  cpuUsedCores: number;
  /** Configured memory size (what a migration has to copy at most). */
  memBytes: number;
  /** Memory the guest uses (balloon actual, or RSS of the hypervisor process). */
  memUsedBytes: number;
  /** How fast the guest dirties memory, when the driver can tell (drives migration cost). */
  memDirtyBytesPerSec?: number;
  /** Size of the disks a migration must copy (local, not shared storage), when the driver can tell. */
  localDiskBytes?: number;
  diskReadBytesPerSec?: number;
  diskWriteBytesPerSec?: number;
  netRxBytesPerSec?: number;
  netTxBytesPerSec?: number;
  state?: VmRunState;
  /**
   * Why the hypervisor would refuse to migrate this VM now, in its own words: a lock
   * (`lock: migrate`, `lock: backup`), its HA manager in the middle of a move (`hastate: migrate`), a
   * transitional state (`state: starting`). Present only while it holds; such a VM is not planned.
   */
  busy?: string;
  /** The VM is under its hypervisor's HA manager (Proxmox `hastate`: `started`, ...): moves go through it. */
  haState?: string;
  /** Free-form tags from the driver (e.g. `lbvm.anti-affinity=web`), read as rules by the monitor. */
  tags?: string[];
}

/** The string fields of a VM sample besides its names and state (checked by the readers, written by the stores). */
export const VM_TEXT_FIELDS = ['busy', 'haState'] as const satisfies readonly (keyof VmSample)[];

export type Sample = HostSample | VmSample;

/** The numeric fields a reader must check on every sample (finite, not negative). */
export const HOST_NUMERIC_FIELDS = [
  'timeMs',
  'cpuCores',
  'cpuUsedCores',
  'cpuStealCores',
  'memBytes',
  'memUsedBytes',
  'memAvailableBytes',
  'load1',
  'load5',
  'load15',
  'diskReadBytesPerSec',
  'diskWriteBytesPerSec',
  'netRxBytesPerSec',
  'netTxBytesPerSec',
  'vmCount',
  'memCommittedBytes',
] as const satisfies readonly (keyof HostSample)[];

export const VM_NUMERIC_FIELDS = [
  'timeMs',
  'vcpus',
  'cpuUsedCores',
  'memBytes',
  'memUsedBytes',
  'memDirtyBytesPerSec',
  'localDiskBytes',
  'diskReadBytesPerSec',
  'diskWriteBytesPerSec',
  'netRxBytesPerSec',
  'netTxBytesPerSec',
] as const satisfies readonly (keyof VmSample)[];
