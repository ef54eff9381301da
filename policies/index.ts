/**
 * Placement policies: pure functions `(snapshot, settings) => Plan`. No I/O, no clock, no
 * randomness; the same snapshot gives the same plan. Imports only src/model and simple-statistics.
 */
import type { Snapshot } from '../src/model/index.ts';
import { Cluster } from './cluster.ts';
import { DEFAULT_SETTINGS, type ResourceWeights } from './settings.ts';

export { balance, THRESHOLD_LEVELS } from './balance.ts';
export { overload } from './overload.ts';
export { consolidate } from './consolidate.ts';
export { evacuate } from './evacuate.ts';
export { planRound, type RoundPlan } from './round.ts';
export { checkMove, type MoveCheck, type Violation } from './check.ts';
export { POLICIES, type PolicyEntry, type PolicyFunction } from './registry.ts';
export { POLICY_NAMES, DEFAULT_ROUND, isPolicyName, type PolicyName } from './names.ts';
export {
  DEFAULT_SETTINGS,
  withSettings,
  type PolicySettings,
  type ResourceWeights,
  type ThresholdLevel,
  type SettingsOverrides,
} from './settings.ts';
export { DemandByVm, forecastDemand, predictDemand, vmDemand, type Demand } from './demand.ts';
export { migrationCost } from './cost.ts';
export { applyMovesToSnapshot } from './cluster.ts';
export { planInputs } from './constraints.ts';

/**
 * The cluster's imbalance score for a snapshot (lower is flatter): the weighted mean over resources
 * of the standard deviation of hosts' normalised predicted use (see Cluster.imbalance).
 */
export function imbalance(
  snapshot: Snapshot,
  weights: ResourceWeights = DEFAULT_SETTINGS.weights,
  settings = DEFAULT_SETTINGS,
): number {
  return new Cluster(snapshot, settings, weights).imbalance();
}
