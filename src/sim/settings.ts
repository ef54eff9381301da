/**
 * The policy settings a simulation runs with: the config's (as the monitor would use them), with
 * the trace's step as the sampling interval, the window as many steps as `monitor.window` covers,
 * and, for PlanetLab (CPU only, every VM given the same made-up memory size), CPU as the only
 * resource in the imbalance score. `lbvm simulate` and bench/quality both use this.
 */
import type { PolicySettings, ThresholdLevel } from '../../policies/index.ts';
import type { LbvmConfig } from '../config/schema.ts';
import { policySettingsFromConfig } from '../config/policy-settings.ts';
import type { Trace } from './traces.ts';

export function simulationSettings(
  config: LbvmConfig,
  trace: Pick<Trace, 'format' | 'stepMs'>,
  threshold: ThresholdLevel = config.policies.balance.threshold as ThresholdLevel,
): PolicySettings {
  const base = policySettingsFromConfig(config);
  return {
    ...base,
    balance: { threshold },
    demand: {
      ...base.demand,
      sampleIntervalMs: trace.stepMs,
      maxWindowSamples: Math.max(1, Math.round(config.monitor.window / trace.stepMs)),
    },
    weights: trace.format === 'planetlab' ? { cpu: base.weights.cpu || 1, mem: 0, disk: 0, net: 0 } : base.weights,
  };
}
