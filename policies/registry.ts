/**
 * The registry: every policy by name, what it does, and the settings it reads (with defaults in
 * settings.ts). The monitor, `lbm plan` and `lbvm simulate` look policies up here.
 */
import type { Plan, Snapshot } from '../src/model/index.ts';
import type { Cluster } from './cluster.ts';
import type { Demand } from './demand.ts';
import { balance } from './balance.ts';
import { consolidate } from './consolidate.ts';
import { evacuate } from './evacuate.ts';
import { overload } from './overload.ts';
import type { PolicyName } from './names.ts';
import { DEFAULT_SETTINGS, type PolicySettings } from './settings.ts';

/**
 * `budget`: moves left in the round; `demandByVm`: predicted demand already computed for this snapshot;
 * `reuse`: a working state an earlier policy of the round left unchanged, taken when it was built from
 * this very snapshot (workingCluster).
 */
export type PolicyFunction = (
  snapshot: Snapshot,
  settings: PolicySettings,
  budget?: number,
  demandByVm?: ReadonlyMap<string, Demand>,
  reuse?: Cluster,
) => Plan;

export interface PolicyEntry {
  name: PolicyName;
  run: PolicyFunction;
  summary: string;
  /** The settings sections it reads, with their defaults. */
  defaults: Partial<PolicySettings>;
}

const shared = {
  cpuOvercommit: DEFAULT_SETTINGS.cpuOvercommit,
  limits: DEFAULT_SETTINGS.limits,
  demand: DEFAULT_SETTINGS.demand,
  cost: DEFAULT_SETTINGS.cost,
};

export const POLICIES: Record<PolicyName, PolicyEntry> = {
  evacuate: {
    name: 'evacuate',
    run: evacuate,
    summary: 'empty hosts in maintenance, largest VMs first',
    defaults: { ...shared, overload: DEFAULT_SETTINGS.overload },
  },
  overload: {
    name: 'overload',
    run: overload,
    summary:
      'relieve hosts above the high watermark with the moves worth most (spread, overload risk and watermark relief, less the copy)',
    defaults: {
      ...shared,
      weights: DEFAULT_SETTINGS.weights,
      risk: DEFAULT_SETTINGS.risk,
      balance: DEFAULT_SETTINGS.balance,
      overload: DEFAULT_SETTINGS.overload,
    },
  },
  balance: {
    name: 'balance',
    run: balance,
    summary:
      'take the moves worth most (spread and overload risk taken off, less the copy) while each beats the threshold level (1..5)',
    defaults: {
      ...shared,
      weights: DEFAULT_SETTINGS.weights,
      risk: DEFAULT_SETTINGS.risk,
      balance: DEFAULT_SETTINGS.balance,
      softRulePenalty: DEFAULT_SETTINGS.softRulePenalty,
    },
  },
  consolidate: {
    name: 'consolidate',
    run: consolidate,
    summary: 'pack VMs onto fewer hosts and name hosts to power down',
    defaults: { ...shared, consolidate: DEFAULT_SETTINGS.consolidate },
  },
};
