/**
 * The plan `lbm plan` and `lbm explain` show (apart from cluster.ts, so `status` and `hosts` do not
 * load the policies).
 */
import type { Plan } from '../model/index.ts';
import { planInputs, planRound, type PolicyName, type PolicySettings } from '../../policies/index.ts';
import type { ClusterView } from '../monitor/read.ts';

/**
 * The plan of `policies` on the view: the round's own when the view is its published snapshot and
 * nothing the plan depends on changed since (published.ts, planInputs), else planned now.
 */
export function planOf(view: ClusterView, settings: PolicySettings, policies: readonly PolicyName[]): Plan {
  const published = view.publishedPlan;
  if (published && published.inputs === planInputs(policies, settings, view.snapshot)) return published.plan;
  return planRound(view.snapshot, settings, policies);
}
