/**
 * PolicySettings: every knob a policy reads, with its default. The monitor and `lbvm simulate`
 * build them from the config (src/config/policy-settings.ts); tests build them with overrides.
 * These defaults are the config's too: src/config/schema.ts takes them from here.
 */
import type { MigrationLimits } from '../src/model/index.ts';

/** Weights of each resource in the imbalance score (0 leaves a resource out). */
export interface ResourceWeights {
  cpu: number;
  mem: number;
  disk: number;
  net: number;
}

export type ThresholdLevel = 1 | 2 | 3 | 4 | 5;

export interface DemandSettings {
  /** How far ahead a forecast looks: the mean over the next horizonMs / sampleIntervalMs steps. */
  horizonMs: number;
  /** Time between two window entries, to turn `horizonMs` into steps. */
  sampleIntervalMs: number;
  /** Only the last this many window entries are used (older ones are ignored). */
  maxWindowSamples: number;
}

/**
 * What the judgement weighs besides the spread of host use (policies/objective.ts): the chance that a
 * host's next sample is above its CPU capacity.
 */
export interface RiskSettings {
  /** Score units one expected overloaded host is worth (the spread's units: Σ over hosts of (use − mean)²). */
  weight: number;
  /** Least spread assumed for a host's next sample, as a share of its cores (a host of steady VMs is not certain). */
  spreadFloor: number;
}

export interface CostSettings {
  /** Bandwidth one migration gets (bytes/s): the cap it is given (migration.bandwidthBytesPerSec). */
  bandwidthBytesPerSec: number;
  /**
   * What one migration stream carries when the link is not the limit, on idle hosts (bytes/s): QEMU's
   * migration thread, and TLS's encryption, are CPU-bound (bench migrate --netns prints what a host
   * achieves); 0: no limit beyond the bandwidth.
   */
  streamBytesPerSec: number;
  /**
   * Live: how fast a guest's dirtying slows its own migration (bytes/s): the copy takes
   * × (1 + dirty rate / this), the source's CPU work of tracking and re-reading dirtied pages
   * (bench migrate --netns prints what a host shows); 0: not counted.
   */
  dirtyTrackingBytesPerSec: number;
  /**
   * Time every migration takes besides copying memory: starting the destination, switching over (ms).
   * In a move's duration, not in its price (policies/cost.ts says why).
   */
  setupMs: number;
  /** How moves are made (migration.mode): checkpoint stops the guest, saves, copies and restores it. */
  mode: 'live' | 'checkpoint';
  /** Checkpoint mode: how fast a host saves a guest's state to disk and restores it (bytes/s, each). */
  checkpointLocalBytesPerSec: number;
  /** Checkpoint mode: how fast the worker relays the saved state between the agents (bytes/s). */
  checkpointCopyBytesPerSec: number;
  /**
   * Live: the longest pause the hypervisor is allowed at switch-over (migration.downtimeLimit): the
   * pre-copy rounds go on until what is left can be sent in this time.
   */
  downtimeLimitMs: number;
  /**
   * Migrations run over TLS (tls.migration with certificates): streamBytesPerSec is then a TLS stream's,
   * and a checkpoint's relay through the worker pays two TLS hops (policies/cost.ts).
   */
  tls: boolean;
  /** Live: the hypervisor throttles a guest that dirties memory too fast to converge (QEMU auto-converge). */
  autoConverge: boolean;
  /**
   * How much busy hosts slow a live migration's CPU-bound part (the stream's ceiling ÷; the whole
   * copy × when streamBytesPerSec is 0) by (1 + this × mean CPU use of source and destination). A
   * copy the link limits is not slowed (policies/cost.ts).
   */
  loadSlowdown: number;
  /** Score units one second of a migration's copy costs (a move's value is in the spread's units, see objective.ts). */
  scorePerSecond: number;
}

export interface PolicySettings {
  /** A host may be given CPU demand up to cpuCores × this. */
  cpuOvercommit: number;
  weights: ResourceWeights;
  /** Capacity used to normalise disk and network use (no host reports one). */
  diskCapacityBytesPerSec: number;
  netCapacityBytesPerSec: number;
  demand: DemandSettings;
  risk: RiskSettings;
  cost: CostSettings;
  limits: MigrationLimits;
  /** Score units a move pays per soft rule it breaks (and earns per soft rule it repairs). */
  softRulePenalty: number;
  balance: { threshold: ThresholdLevel };
  overload: {
    highWatermark: number;
    lowWatermark: number;
    /**
     * Where relieved VMs (overload) and evacuated VMs go: `least-loaded` spreads them (balancing);
     * `best-fit` fills the most loaded host that still fits, leaving light hosts alone so
     * consolidation can empty them. planRound picks `best-fit` when the round consolidates.
     */
    destinationOrder: 'least-loaded' | 'best-fit';
  };
  consolidate: { headroom: number; spareHosts: number };
  /**
   * Can the driver that carries out the moves copy local disks (Driver.capabilities.localDisks)?
   * When not, VMs with local disks are not planned (DRIVER_CANNOT_MOVE_DISKS).
   */
  movesLocalDisks: boolean;
}

const SETUP_MS = 200;
const CHECKPOINT_LOCAL_BYTES_PER_SEC = 400e6;
const CHECKPOINT_COPY_BYTES_PER_SEC = 150e6;

export const DEFAULT_SETTINGS: PolicySettings = {
  movesLocalDisks: true,
  cpuOvercommit: 1,
  weights: { cpu: 1, mem: 0, disk: 0, net: 0 },
  diskCapacityBytesPerSec: 1e9,
  netCapacityBytesPerSec: 1.25e9,
  demand: { horizonMs: 15 * 60_000, sampleIntervalMs: 60_000, maxWindowSamples: 120 },
  risk: { weight: 1, spreadFloor: 0.05 },
  // setupMs and the checkpoint rates: rough figures from bench migrate --netns on a loaded 2-core test
  // machine with TCG guests (bench/README.md); real hosts are faster: measure yours.
  cost: {
    bandwidthBytesPerSec: 1024 ** 3,
    streamBytesPerSec: 0,
    dirtyTrackingBytesPerSec: 0,
    setupMs: SETUP_MS,
    mode: 'live',
    checkpointLocalBytesPerSec: CHECKPOINT_LOCAL_BYTES_PER_SEC,
    checkpointCopyBytesPerSec: CHECKPOINT_COPY_BYTES_PER_SEC,
    downtimeLimitMs: 300,
    autoConverge: true,
    tls: false,
    loadSlowdown: 1,
    scorePerSecond: 0.001,
  },
  limits: {
    movesPerRound: 10,
    movesPerHour: 60,
    // Two at once per host (vSphere allows 4 on 1 GbE, 8 on 10 GbE): one per host held a hot cluster's
    // flattening back to half its pace on the shared Bitbrains days, with no fewer overloads.
    migrationsPerSourceHost: 2,
    migrationsPerDestinationHost: 2,
    migrationsInCluster: 8,
    cooldownMs: 30 * 60_000,
    pingPongWindowMs: 2 * 3_600_000,
    quarantineAfterFailures: 2,
    quarantineMs: 3_600_000,
  },
  softRulePenalty: 0.05,
  balance: { threshold: 3 },
  overload: { highWatermark: 0.8, lowWatermark: 0.6, destinationOrder: 'least-loaded' },
  consolidate: { headroom: 0.2, spareHosts: 1 },
};

/** Deep partial, for overrides in tests and the simulator. */
export type SettingsOverrides = {
  [K in keyof PolicySettings]?: PolicySettings[K] extends object ? Partial<PolicySettings[K]> : PolicySettings[K];
};

/** Defaults with some values replaced, one level deep per section. */
export function withSettings(
  overrides: SettingsOverrides = {},
  base: PolicySettings = DEFAULT_SETTINGS,
): PolicySettings {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    const current = (base as unknown as Record<string, unknown>)[key];
    result[key] =
      typeof value === 'object' && value !== null && typeof current === 'object' ? { ...current, ...value } : value;
  }
  return result as unknown as PolicySettings;
}
