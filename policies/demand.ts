/**
 * Demand estimate of one window of CPU use (oldest first, in cores): what the decision uses
 * instead of the last sample, so one spike does not move a VM and a steady climb is seen early.
 *
 *   s_0 = x_0,  s_i = α·x_i + (1 − α)·s_{i−1}            exponential smoothing
 *   level = quantile_p(s)                                  percentile of the smoothed window
 *   slope = linearRegression((i, s_i)).m                   cores per sample (simple-statistics)
 *   predicted = max(0, level + max(0, slope) · horizonMs / sampleIntervalMs)
 *
 * Only a rising trend is added: a falling one is not trusted to continue (a cautious balancer
 * would rather keep headroom than plan for load that may come back).
 */
import { linearRegression, quantileSorted } from 'simple-statistics';
import type { DemandSettings } from './settings.ts';

export function predictDemand(window: readonly number[], settings: DemandSettings): number {
  const length = Math.min(window.length, settings.maxWindowSamples);
  if (length === 0) return 0;
  const start = window.length - length;
  if (length === 1) return Math.max(0, window[start]!);
  const alpha = settings.smoothingAlpha;
  const smoothed = new Array<number>(length);
  let value = window[start]!;
  smoothed[0] = value;
  for (let i = 1; i < length; i++) {
    value = alpha * window[start + i]! + (1 - alpha) * value;
    smoothed[i] = value;
  }
  const sorted = smoothed.slice().sort((a, b) => a - b);
  const level = quantileSorted(sorted, settings.percentile);
  let trend = 0;
  if (length >= 3) {
    const points = smoothed.map((y, x) => [x, y]);
    const slope = linearRegression(points).m;
    if (Number.isFinite(slope) && slope > 0) trend = slope * (settings.horizonMs / settings.sampleIntervalMs);
  }
  return Math.max(0, level + trend);
}
