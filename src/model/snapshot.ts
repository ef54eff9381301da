/**
 * The snapshot: what the monitor believes at `nowMs`. Policies are pure functions of it.
 * The monitor builds it from the store's sample window plus migration events; the simulator
 * builds it from a trace. Both go through the same type so both run the same policy code.
 */
import type { Rules } from './rules.ts';

/**
 * `up`: samples are fresh. `stale`: the last sample is older than the staleness limit, so the host is
 * unknown (never a destination, its VMs not judged by old numbers). `down`: known to be off.
 */
export type HostStatus = 'up' | 'stale' | 'down';

export interface HostState {
  name: string;
  cpuCores: number;
  memBytes: number;
  /** Measured host-level CPU use over the window (oldest first), in cores; may be empty. */
  cpuUsedWindowCores: number[];
  /** Latest measured memory use of the host. */
  memUsedBytes: number;
  status: HostStatus;
  maintenance: boolean;
  /** Time of the newest sample from this host (epoch ms), or null when it never reported. */
  lastSampleMs: number | null;
  diskBytesPerSec?: number;
  netBytesPerSec?: number;
}

export interface VmState {
  name: string;
  host: string;
  vcpus: number;
  memBytes: number;
  /** Measured CPU use over the window, oldest first, in cores. The last entry is the latest. */
  cpuUsedWindowCores: number[];
  memUsedBytes: number;
  memDirtyBytesPerSec: number;
  /** Size of its disks a migration must copy (local disks; 0 or absent on shared storage). */
  localDiskBytes?: number;
  diskBytesPerSec?: number;
  netBytesPerSec?: number;
  tags: string[];
  /** Time of the last completed migration of this VM (epoch ms), for cooldowns. */
  lastMoveMs?: number;
  /** The host it was on before its last move, to refuse moving it straight back (ping-pong). */
  previousHost?: string;
  /** Quarantined until this time after repeated failed migrations. */
  quarantinedUntilMs?: number;
  /** What its hypervisor is in the middle of (a lock, a transitional state): not planned while set. */
  busy?: string;
  /** Its hypervisor's HA state when an HA manager owns it (moves then go through that manager). */
  haState?: string;
}

/** A migration queued or running, as the monitor reconciles against it. */
export interface InFlightMigration {
  vm: string;
  from: string;
  to: string;
  jobId: string;
  state: 'waiting' | 'delayed' | 'active';
}

export interface Snapshot {
  /** The time this snapshot describes; policies never read a clock. */
  nowMs: number;
  /** Seed for any randomness a policy uses (tie-breaking), so a plan can be replayed. */
  seed: number;
  hosts: HostState[];
  vms: VmState[];
  rules: Rules;
  inFlight: InFlightMigration[];
}
