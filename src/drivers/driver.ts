/**
 * The `Driver` interface: the only way LBVM touches a hypervisor. Collectors call `inventory`;
 * workers call `locate` and `migrate`. Implementations: `qemu` (through `lbvm agent`), `sim`,
 * `libvirt` (virsh), `proxmox` (HTTP API), `openvz` (ssh). Every name (VM, host) is passed as data —
 * an argv element, a JSON field, a URL-encoded path segment or a word quoted for a remote shell —
 * never spliced into a shell string.
 */
import type { DriverCapabilities, MigrationMode, MigrationProgress, VmRunState } from '../model/index.ts';

export type { DriverCapabilities };

/**
 * One VM as the hypervisor sees it now. Use comes either as cumulative counters (the collector
 * turns them into rates from the previous round's values, keyed by `instanceId`) or as rates the
 * driver measured itself.
 */
export interface VmInventory {
  name: string;
  host: string;
  vcpus: number;
  memBytes: number;
  memUsedBytes: number;
  state: VmRunState;
  /** Changes when the VM's process is replaced (e.g. `pid:starttime`), so counters are not mixed up. */
  instanceId?: string;
  cpuTimeMs?: number;
  diskReadBytes?: number;
  diskWriteBytes?: number;
  netRxBytes?: number;
  netTxBytes?: number;
  cpuUsedCores?: number;
  memDirtyBytesPerSec?: number;
  /** Size of the disks a migration must copy (local disks, not shared storage). */
  localDiskBytes?: number;
  diskReadBytesPerSec?: number;
  diskWriteBytesPerSec?: number;
  netRxBytesPerSec?: number;
  netTxBytesPerSec?: number;
  tags?: string[];
  /** What the hypervisor is in the middle of with this VM (see VmSample.busy); the monitor will not plan it. */
  busy?: string;
  /** The hypervisor's HA state when an HA manager owns the VM (see VmSample.haState). */
  haState?: string;
}

export interface HostInventory {
  host: string;
  vms: VmInventory[];
  /** Capacity, when the driver knows it (a simulated or logical host). */
  cpuCores?: number;
  memBytes?: number;
}

export interface MigrateRequest {
  vm: string;
  from: string;
  to: string;
  mode: MigrationMode;
  downtimeLimitMs: number;
  bandwidthBytesPerSec: number;
  /** Aborting cancels the migration; the guest must keep running on `from`. */
  signal: AbortSignal;
  /**
   * Unique per attempt (the worker passes its job id and lock token). A driver whose migrations
   * outlive the caller (the qemu agent runs them) lets a later attempt take over a migration that is
   * still running, and ignores a cancel from an attempt that no longer owns it.
   */
  attemptId?: string;
  onProgress?: (progress: MigrationProgress) => void;
}

export interface MigrateOutcome {
  totalMs: number;
  /** Guest pause as the hypervisor measured it, or null when it cannot tell. */
  downtimeMs: number | null;
  bytesCopied: number;
}

export interface Driver {
  readonly name: string;
  readonly capabilities: DriverCapabilities;
  /** The VMs on `host` now, with their sizes and use. */
  inventory(host: string): Promise<HostInventory>;
  /** Where `vm` runs now, or null when no host has it. */
  locate(vm: string): Promise<string | null>;
  migrate(request: MigrateRequest): Promise<MigrateOutcome>;
  close(): Promise<void>;
}
