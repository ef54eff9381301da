/**
 * Demand forecast of one window of CPU use (oldest first, in cores): what a decision uses instead of
 * the last sample. A move pays off only if the demand it moves is still there after the move (for the
 * cooldown at least), so the forecast asks how much of the latest deviation from the usual level will
 * last, and the spread says how far the next sample may stray from it.
 *
 * An AR(1) forecast toward the window's mean (Box & Jenkins; the mean-reverting model of short-term
 * load in, e.g., Dinda & O'Hallaron, "Host load prediction using linear models", Cluster Computing 2000):
 *   x = the last n = min(window length, maxWindowSamples) entries,  μ = mean(x)
 *   ρ = lag-1 autocorrelation of x, clamped to [0, 1]
 *   H = max(1, round(horizonMs / sampleIntervalMs))                  steps ahead that matter
 *   cores    = μ + a · (x_last − μ),   a = (1/H) · Σ_{k=1..H} ρ^k     mean forecast over the next H steps
 *   variance = var(x) · (1 − ρ²)                                      one-step forecast error (AR(1) innovation)
 * A noisy VM (ρ ≈ 0) is judged by its mean, a VM whose load holds (ρ ≈ 1) by its latest sample; a spike
 * of a noisy VM moves nothing. On the shared traces this beats the latest sample, any fixed mean and a
 * percentile with a trend at predicting the next 5 to 60 minutes (bench/README.md, "demand").
 */
import type { DemandSettings } from './settings.ts';

export interface Demand {
  /** Expected CPU use over the horizon, in cores. */
  cores: number;
  /** Variance of the next sample around the forecast, in cores². */
  variance: number;
}

export function forecastDemand(window: readonly number[], settings: DemandSettings): Demand {
  const length = Math.min(window.length, settings.maxWindowSamples);
  if (length === 0) return { cores: 0, variance: 0 };
  const start = window.length - length;
  const last = Math.max(0, window[window.length - 1]!);
  if (length < 3) return { cores: last, variance: 0 };
  let mean = 0;
  for (let i = start; i < window.length; i++) mean += window[i]!;
  mean /= length;
  let sumSq = 0;
  let lagged = 0;
  for (let i = start; i < window.length; i++) {
    const d = window[i]! - mean;
    sumSq += d * d;
    if (i > start) lagged += d * (window[i - 1]! - mean);
  }
  const rho = sumSq > 1e-12 ? Math.min(1, Math.max(0, lagged / sumSq)) : 0;
  const steps = Math.max(1, Math.round(settings.horizonMs / settings.sampleIntervalMs));
  let weight = 0;
  let power = 1;
  for (let k = 1; k <= steps; k++) {
    power *= rho;
    weight += power;
  }
  weight /= steps;
  return {
    cores: Math.max(0, mean + weight * (window[window.length - 1]! - mean)),
    variance: (sumSq / length) * (1 - rho * rho),
  };
}

/** The forecast's expected cores alone. */
export function predictDemand(window: readonly number[], settings: DemandSettings): number {
  return forecastDemand(window, settings).cores;
}

/**
 * A VM's CPU demand forecast, never more than its vCPUs (a guest cannot use more cores than it has);
 * its spread is capped alike.
 */
export function vmDemand(
  vm: { cpuUsedWindowCores: readonly number[]; vcpus: number },
  settings: DemandSettings,
): Demand {
  const demand = forecastDemand(vm.cpuUsedWindowCores, settings);
  return vm.vcpus > 0
    ? { cores: Math.min(demand.cores, vm.vcpus), variance: Math.min(demand.variance, vm.vcpus * vm.vcpus) }
    : demand;
}

/**
 * Every VM's demand by name, and also in the order of the VMs it was made from: a round's later
 * snapshots keep that order (moves change hosts, not the list), so a Cluster finds a VM's entry at its
 * own index, where a lookup by name in 30,000 entries cost a third of building one.
 */
export class DemandByVm extends Map<string, Demand> {
  /** The entries in the order of the VMs they were made from. */
  readonly inOrder: readonly { name: string; demand: Demand }[];

  constructor(
    vms: readonly { name: string; cpuUsedWindowCores: readonly number[]; vcpus: number }[],
    settings: DemandSettings,
  ) {
    const inOrder = vms.map((vm) => ({ name: vm.name, demand: vmDemand(vm, settings) }));
    super(inOrder.map(({ name, demand }) => [name, demand]));
    this.inOrder = inOrder;
  }

  /** The demand of the VM named `name` that stands at `index` in a snapshot's list. */
  at(index: number, name: string): Demand | undefined {
    const entry = this.inOrder[index];
    return entry !== undefined && entry.name === name ? entry.demand : this.get(name);
  }
}
