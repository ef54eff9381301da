/**
 * The chance that a host's next sample is above its CPU capacity (the overload risk of objective.ts,
 * and the packing line of consolidate.ts):
 *
 *   P_h = Φ((cpu_h − cpuLimit_h) / σ_h),  σ_h = √(cpuVar_h + (risk.spreadFloor · cores_h)²)
 *
 * with the host's forecast (its VMs' forecasts summed, demand.ts) as the mean and their forecast errors
 * as independent spreads.
 */
import type { Cluster, HostLoad } from './cluster.ts';

/** Standard normal distribution function, via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

/** The chance that a host holding `demandCores` predicted cores (variance `varianceCoresSq`) samples above its CPU limit. */
export function overloadChance(
  cluster: Cluster,
  host: HostLoad,
  demandCores = host.cpuDemandCores,
  varianceCoresSq = host.cpuVarianceCoresSq,
): number {
  if (!host.usable || host.cpuCores <= 0) return 0;
  const floor = cluster.settings.risk.spreadFloor * host.cpuCores;
  return normalCdf((demandCores - host.cpuLimitCores) / Math.sqrt(Math.max(0, varianceCoresSq) + floor * floor));
}
