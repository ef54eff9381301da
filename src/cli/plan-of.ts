/**
 * The plan `lbm plan` and `lbm explain` show (apart from cluster.ts, so `status` and `hosts` do not
 * load the policies).
 */
import type { Plan } from '../model/index.ts';
import { planInputs, planRound, type PolicyName, type PolicySettings } from '../../policies/index.ts';
import type { WindowsOf } from '../monitor/published.ts';
import type { ClusterView } from '../monitor/read.ts';
import { openCluster } from './cluster.ts';
import type { CliContext } from './context.ts';

/** The round's published plan, when the view is its snapshot and nothing the plan depends on changed since (planInputs). */
function heldPlan(view: ClusterView, settings: PolicySettings, policies: readonly PolicyName[]): Plan | null {
  const published = view.publishedPlan;
  return published && published.inputs === planInputs(policies, settings, view.snapshot) ? published.plan : null;
}

/** The plan of `policies` on the view: the round's own while it holds (heldPlan), else planned now. */
export function planOf(view: ClusterView, settings: PolicySettings, policies: readonly PolicyName[]): Plan {
  const held = heldPlan(view, settings, policies);
  if (held) return held;
  if (view.windowsLeftOut) throw new Error('planOf: a view read without its CPU windows cannot be planned on');
  return planRound(view.snapshot, settings, policies);
}

/**
 * The view and its plan. The published snapshot is read first without the VMs' CPU windows (but
 * those `windowsOf` names: a shown VM's own), which the round's published plan does not need; only
 * when that plan no longer holds is it read again whole, to plan on now.
 */
export async function viewAndPlan(
  context: CliContext,
  nowMs: number,
  options: { fromStore?: boolean; settings: PolicySettings; policies: readonly PolicyName[]; windowsOf?: WindowsOf },
): Promise<{ view: ClusterView; plan: Plan }> {
  const { settings, policies } = options;
  if (!options.fromStore) {
    const view = await openCluster(context, nowMs, { windowsOf: options.windowsOf ?? (() => false) });
    const held = heldPlan(view, settings, policies);
    if (held) return { view, plan: held };
    // Read from the store (nothing usable was published), the view has every window.
    if (!view.windowsLeftOut) return { view, plan: planRound(view.snapshot, settings, policies) };
  }
  const view = await openCluster(context, nowMs, { fromStore: options.fromStore });
  return { view, plan: planOf(view, settings, policies) };
}
