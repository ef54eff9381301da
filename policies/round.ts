/**
 * One monitor round: policies in the given order (evacuate, overload, then balance or consolidate),
 * each seeing the snapshot with the earlier policies' moves applied (and counted as in flight, so
 * the per-host limits hold across them), all sharing the round's move budget.
 */
import type { Plan, Snapshot } from '../src/model/index.ts';
import { applyMovesToSnapshot, workingCluster, type Cluster } from './cluster.ts';
import { DemandByVm } from './demand.ts';
import type { PolicyName } from './names.ts';
import { POLICIES } from './registry.ts';
import type { PolicySettings } from './settings.ts';

export interface RoundPlan extends Plan {
  /** Each policy's own plan, in order. */
  plans: Plan[];
}

/**
 * `demandByVm`: every VM's demand forecast, made from this snapshot's VMs under `roundSettings.demand`
 * (a caller that needs the forecasts too makes them once and passes them); made here otherwise.
 */
export function planRound(
  snapshot: Snapshot,
  roundSettings: PolicySettings,
  policyNames: readonly PolicyName[],
  demandByVm: DemandByVm = new DemandByVm(snapshot.vms, roundSettings.demand),
): RoundPlan {
  // A consolidating round sends relieved and evacuated VMs to the fullest host that fits, so the
  // hosts consolidation is emptying are not refilled by the policies before it.
  const settings: PolicySettings = policyNames.includes('consolidate')
    ? { ...roundSettings, overload: { ...roundSettings.overload, destinationOrder: 'best-fit' } }
    : roundSettings;
  const plans: Plan[] = [];
  // Moves do not change a VM's window: every VM's demand is predicted once for the whole round.
  let current = snapshot;
  let budget = settings.limits.movesPerRound;
  // A policy that moved nothing hands its working state on unchanged (workingCluster checks it).
  let unchanged: Cluster | undefined;
  for (const name of policyNames) {
    const cluster = workingCluster(current, settings, demandByVm, unchanged);
    const plan = POLICIES[name].run(current, settings, budget, demandByVm, cluster);
    unchanged = plan.moves.length === 0 ? cluster : undefined;
    plans.push(plan);
    budget -= plan.moves.length;
    if (plan.moves.length > 0) {
      const applied = applyMovesToSnapshot(current, plan.moves);
      current = {
        ...applied,
        inFlight: [
          ...applied.inFlight,
          ...plan.moves.map((m) => ({
            vm: m.vm,
            from: m.from,
            to: m.to,
            jobId: `planned:${m.policy}:${m.vm}`,
            state: 'waiting' as const,
          })),
        ],
      };
    }
    if (budget <= 0) break;
  }
  const powerDown = plans.flatMap((p) => p.powerDownHosts ?? []);
  const round: RoundPlan = {
    policy: policyNames.join('+'),
    moves: plans.flatMap((p) => p.moves),
    scoreBefore: plans[0]?.scoreBefore ?? 0,
    scoreAfter: plans.length ? plans[plans.length - 1]!.scoreAfter : 0,
    skipped: plans.flatMap((p) => p.skipped),
    notes: plans.flatMap((p) => p.notes.map((note) => `${p.policy}: ${note}`)),
    plans,
  };
  if (plans.some((p) => p.powerDownHosts)) round.powerDownHosts = powerDown;
  if (budget <= 0 && plans.length < policyNames.length)
    round.notes.push(
      `round move budget (${settings.limits.movesPerRound}) used up before ${policyNames.slice(plans.length).join(', ')}`,
    );
  return round;
}
