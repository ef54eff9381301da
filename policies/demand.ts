/**
 * Demand estimate of one window of CPU use (oldest first, in cores): what the decision uses
 * instead of the last sample, so one spike does not move a VM and a steady climb is seen early.
 *
 *   s_0 = x_0,  s_i = α·x_i + (1 − α)·s_{i−1}            exponential smoothing
 *   level = quantile_p(s)                                  percentile of the smoothed window
 *   slope = linearRegression((i, s_i)).m                   cores per sample (simple-statistics)
 *   steps = min(horizonMs / sampleIntervalMs, window length)
 *   predicted = max(0, level + max(0, slope) · steps)
 *
 * A trend is not carried further ahead than the window it was measured on: 15 samples taken every
 * 2 s say nothing about the next 10 minutes (the demo's collectors), while 30 one-minute samples
 * do say something about the next 10 (the defaults, unchanged by this bound). Only a rising trend is added: a falling one is not trusted to continue (a cautious balancer
 * would rather keep headroom than plan for load that may come back).
 */
import { linearRegression, quantileSorted } from 'simple-statistics';
import type { DemandSettings } from './settings.ts';

/**
 * Scratch buffers, reused across calls (30,000 VMs a round: allocation dominated the time).
 * Invisible to callers: the function stays pure.
 */
const smoothedScratch: number[] = [];
const sortedScratch: number[] = [];
const pointsByLength = new Map<number, number[][]>();

export function predictDemand(window: readonly number[], settings: DemandSettings): number {
  const length = Math.min(window.length, settings.maxWindowSamples);
  if (length === 0) return 0;
  const start = window.length - length;
  if (length === 1) return Math.max(0, window[start]!);
  const alpha = settings.smoothingAlpha;
  const smoothed = smoothedScratch;
  const sorted = sortedScratch;
  smoothed.length = length;
  sorted.length = length;
  let value = window[start]!;
  for (let i = 0; i < length; i++) {
    if (i > 0) value = alpha * window[start + i]! + (1 - alpha) * value;
    smoothed[i] = value;
    // Insertion sort: windows are short (tens of samples), and this avoids a comparator call per step.
    let j = i - 1;
    while (j >= 0 && sorted[j]! > value) {
      sorted[j + 1] = sorted[j]!;
      j--;
    }
    sorted[j + 1] = value;
  }
  const level = quantileSorted(sorted, settings.percentile);
  let trend = 0;
  if (length >= 3) {
    let points = pointsByLength.get(length);
    if (!points) {
      points = Array.from({ length }, (_, x) => [x, 0]);
      pointsByLength.set(length, points);
    }
    for (let i = 0; i < length; i++) points[i]![1] = smoothed[i]!;
    const slope = linearRegression(points).m;
    if (Number.isFinite(slope) && slope > 0) trend = slope * Math.min(settings.horizonMs / settings.sampleIntervalMs, length);
  }
  return Math.max(0, level + trend);
}

/**
 * A VM's CPU demand estimate: `predictDemand` of its window, never more than its vCPUs (a guest
 * cannot use more cores than it has, whatever its trend says).
 */
export function vmDemand(vm: { cpuUsedWindowCores: readonly number[]; vcpus: number }, settings: DemandSettings): number {
  const predicted = predictDemand(vm.cpuUsedWindowCores, settings);
  return vm.vcpus > 0 ? Math.min(predicted, vm.vcpus) : predicted;
}
