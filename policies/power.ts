/**
 * Host power: what a host draws at a given CPU use, from a measured curve (watts at evenly spaced
 * use, 0% to 100%: SPECpower_ssj2008 publishes eleven points, 0, 10, … 100%), and the energy of a
 * time step. The simulator's energy meter, the power-aware placement of its CloudSim rewrites and the
 * estimate `lbm report` prints all read this one file (LBVM's consolidate packs by CPU and memory and
 * does not read the curves).
 *
 *   power(u) = p_i + (p_{i+1} − p_i) · (u − u_i) / (u_{i+1} − u_i),   u_i ≤ u ≤ u_{i+1}
 *   energy of a step of Δt seconds on a host that was on at its start = (power(u_start) + power(u_end)) / 2 · Δt
 *
 * (CloudSim 3.0.3: PowerModelSpecPower.getPower interpolates between the eleven points;
 * PowerHost.getEnergyLinearInterpolation takes the mean of the two ends and charges nothing for a
 * step that starts at 0% use, a host switched off.) Use above 100% reads as 100%.
 */

/** Watts at evenly spaced CPU use from 0% to 100% (at least two points), non-decreasing. */
export type PowerCurve = readonly number[];

/**
 * The two hosts of CloudSim's PlanetLab experiments (Beloglazov & Buyya, CCPE 2012), SPECpower_ssj2008
 * results of January 2011: HP ProLiant ML110 G4 (Xeon 3040, 2 cores × 1,860 MHz, 4 GB) and ML110 G5
 * (Xeon 3075, 2 cores × 2,660 MHz, 4 GB); CloudSim's PowerModelSpecPowerHpProLiantMl110G4Xeon3040 and
 * …G5Xeon3075.
 */
export const POWER_CURVES = {
  'hp-ml110-g4': [86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117],
  'hp-ml110-g5': [93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135],
} as const satisfies Record<string, PowerCurve>;

export type PowerCurveName = keyof typeof POWER_CURVES;

/** Watts drawn at CPU use `share` (0..1; above 1 reads as 1, below 0 as 0). */
export function powerWatts(curve: PowerCurve, share: number): number {
  const u = Math.min(1, Math.max(0, share));
  const segments = curve.length - 1;
  const at = u * segments;
  const i = Math.min(segments - 1, Math.floor(at));
  return curve[i]! + (curve[i + 1]! - curve[i]!) * (at - i);
}

/** Joules of one step of `seconds` on a host that was on at its start, at `shareStart` then `shareEnd`. */
export function stepEnergyJoules(curve: PowerCurve, shareStart: number, shareEnd: number, seconds: number): number {
  return ((powerWatts(curve, shareStart) + powerWatts(curve, shareEnd)) / 2) * seconds;
}

/** Why a curve is not usable, or null: at least two points, every one a finite number ≥ 0, never decreasing. */
export function powerCurveProblem(curve: readonly unknown[]): string | null {
  if (curve.length < 2) return 'expected at least two watt values (at 0% and 100% CPU), e.g. [86, 89.4, …, 117]';
  if (!curve.every((w) => typeof w === 'number' && Number.isFinite(w) && w >= 0))
    return 'expected watt values as numbers >= 0';
  const watts = curve as number[];
  for (let i = 1; i < watts.length; i++)
    if (watts[i]! < watts[i - 1]!)
      return `expected watts that never fall as CPU use rises; ${watts[i]} at ${Math.round((100 * i) / (watts.length - 1))}% is below ${watts[i - 1]}`;
  return null;
}
