/**
 * One day of the CloudSim setup (cloudsim.ts) through a planner, metered by energy.ts: what
 * `lbvm simulate --setup cloudsim-planetlab`, `bench energy` and the model's test run.
 *
 * The planner is LBVM's policies (one or several, as a monitor round), `none` (no migrations: CloudSim's
 * DVFS run) or one of CloudSim's algorithms (cloudsim-peers.ts). LBVM's policies run with the config's
 * settings on the trace's 5-minute step, except where the setup decides: migrations copy at CloudSim's
 * 62.5 MB/s, and the limits are those of its world, where nothing queues a migration: any number a
 * round, and per host as many as one after the other fit in a step (⌊300 s / 27.8 s⌋ = 10 of the
 * largest VM). Planning starts at step 1, CloudSim's first optimisation.
 */
import type { PolicySettings } from '../../policies/index.ts';
import type { LbvmConfig } from '../config/schema.ts';
import { cloudsimPeer, isCloudsimPeer } from './cloudsim-peers.ts';
import { cloudsimPlanetLab, MIGRATION_MB_PER_SEC, STEP_SECONDS, VM_TYPES, type VmOrder } from './cloudsim.ts';
import { EnergyMeter, type EnergySummary } from './energy.ts';
import { simulationSettings } from './settings.ts';
import { simulate, type SimSummary } from './simulate.ts';
import type { Trace } from './traces.ts';

export const CLOUDSIM_ROUND = 'evacuate,overload,consolidate';
const UNLIMITED = 1_000_000;
/** Migrations of the largest VM one after the other in one step. */
const PER_HOST = Math.floor(STEP_SECONDS / (Math.max(...VM_TYPES.map((t) => t.ramMb)) / MIGRATION_MB_PER_SEC));

export interface CloudsimDayResult {
  day: string;
  policy: string;
  order: VmOrder;
  ramLimit: boolean;
  vms: number;
  energy: EnergySummary;
  /** The simulator's own summary (overloaded host-steps, plan time, candidates passed over by reason). */
  sim: SimSummary;
}

/** The config's policy settings on the setup's step, with the setup's bandwidth and limits. */
export function cloudsimSettings(config: LbvmConfig, day: Pick<Trace, 'format' | 'stepMs'>): PolicySettings {
  const base = simulationSettings(config, day);
  return {
    ...base,
    cost: { ...base.cost, bandwidthBytesPerSec: MIGRATION_MB_PER_SEC * 1024 ** 2 },
    limits: {
      ...base.limits,
      movesPerRound: UNLIMITED,
      movesPerHour: UNLIMITED,
      migrationsInCluster: UNLIMITED,
      migrationsPerSourceHost: PER_HOST,
      migrationsPerDestinationHost: PER_HOST,
    },
  };
}

export function runCloudsimDay(
  day: Trace,
  options: { policy: string; settings: PolicySettings; order: VmOrder; ramLimit?: boolean },
): CloudsimDayResult {
  const setup = cloudsimPlanetLab(day, { order: options.order, ramLimit: options.ramLimit });
  const meter = new EnergyMeter(setup.trace, setup.hosts, setup.vms, STEP_SECONDS);
  const peer = isCloudsimPeer(options.policy) ? options.policy : null;
  const result = simulate(setup.trace, {
    hosts: setup.hosts.length,
    hostCores: 0,
    hostMemBytes: 0,
    hostSpecs: setup.hosts,
    placement: setup.placement,
    departures: setup.departures,
    firstPlanStep: 1,
    policy: options.policy,
    settings: options.settings,
    meter,
    // CloudSim's VMs keep 30 samples; its local regression reads 10 of them.
    ...(peer ? { planner: cloudsimPeer(peer, setup.hosts, day.stepMs), windowSamples: 30 } : {}),
  });
  return {
    day: day.name,
    policy: options.policy,
    order: setup.order,
    ramLimit: Boolean(options.ramLimit),
    vms: day.vms.length,
    energy: meter.summary(),
    sim: result.summary,
  };
}
