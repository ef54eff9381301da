/**
 * The CloudSim PlanetLab setup (`lbvm simulate --setup cloudsim-planetlab`): the data centre of
 * Beloglazov & Buyya's power experiments (CCPE 2012) as CloudSim 3.0.3's examples build it
 * (org.cloudbus.cloudsim.examples.power: Constants, Helper, PlanetLabHelper, RunnerAbstract), so
 * LBVM's policies can be measured on the same days as the algorithms published with it.
 *
 * - 800 hosts, h0 … h799, alternately HP ProLiant ML110 G4 (2 PEs × 1,860 MIPS) and G5 (2 × 2,660),
 *   4,096 MB each, 1 Gbit/s (Helper.createHostList: host type = index % 2).
 * - One VM per PlanetLab file, 1 PE each; VM i of n is of type ⌊i / ⌈n/4⌉⌋: 2,500, 2,000, 1,000, 500
 *   MIPS with 870, 1,740, 1,740, 613 MB (Helper.createVmList), so the first quarter of the files are
 *   the largest VMs. The file order is the folder's own (`directory`: Java's File.listFiles, what
 *   CloudSim reads), by name, or by the SHA-256 of the name (`hash`: the same on every copy).
 * - A VM requests value/100 of its MIPS, the value sampled at each 5-minute step.
 * - Step 0 deals the VMs first fit, at their full MIPS (CloudSim requests a VM's whole MIPS while it is
 *   being created): the first host whose PE is at least the VM's MIPS, with the MIPS and the RAM free
 *   (PowerVmAllocationPolicySimple, the DVFS run's placement).
 * - A VM whose file reads 0 at two samples in a row finishes there and leaves (HostDynamicWorkload
 *   .getCompletedVms removes a VM requesting 0 MIPS; CloudSim samples the trace 0.1 s after each
 *   step and interpolates, so it reads 0 only between two zeros): about half the VMs of each day.
 * - A migration takes the VM's RAM over half the host's 1 Gbit/s: RAM MB / 62.5 MB/s (PowerDatacenter).
 *
 * LBVM's unit here is a core of 1,000 MIPS: a G4 host has 3.72 cores, a G5 5.32, a 2,500-MIPS VM
 * 2.5 vCPUs' worth. A VM has one PE, so it never gets more than one of its host's PEs (1.86 or 2.66
 * cores), which the policies do not know and the energy meter enforces (energy.ts).
 */
import { createHash } from 'node:crypto';
import { POWER_CURVES, type PowerCurve } from '../../policies/power.ts';
import { UsageError } from '../errors.ts';
import type { Trace, TraceVm } from './traces.ts';

export const MIPS_PER_CORE = 1000;
export const HOST_COUNT = 800;
export const STEP_SECONDS = 300;

export interface HostType {
  name: string;
  peMips: number;
  pes: number;
  ramMb: number;
  power: PowerCurve;
}

/** CloudSim's Constants.HOST_*: the two ML110 generations, 4 GB each. */
export const HOST_TYPES: readonly HostType[] = [
  { name: 'HP ProLiant ML110 G4', peMips: 1860, pes: 2, ramMb: 4096, power: POWER_CURVES['hp-ml110-g4'] },
  { name: 'HP ProLiant ML110 G5', peMips: 2660, pes: 2, ramMb: 4096, power: POWER_CURVES['hp-ml110-g5'] },
];

/** CloudSim's Constants.VM_*: EC2-like types (High-CPU Medium, Extra Large, Small, Micro), RAM halved. */
export const VM_TYPES: readonly { mips: number; ramMb: number }[] = [
  { mips: 2500, ramMb: 870 },
  { mips: 2000, ramMb: 1740 },
  { mips: 1000, ramMb: 1740 },
  { mips: 500, ramMb: 613 },
];

/** Migration bandwidth: half of the host's 1 Gbit/s, in MB/s (PowerDatacenter: RAM / (bw / (2 × 8000))). */
export const MIGRATION_MB_PER_SEC = 1_000_000 / (2 * 8000);

export const VM_ORDERS = ['directory', 'name', 'hash'] as const;
export type VmOrder = (typeof VM_ORDERS)[number];

const MiB = 1024 ** 2;

export interface EnergyHost {
  name: string;
  type: string;
  /** Capacity in cores of 1,000 MIPS. */
  cpuCores: number;
  /** One PE's capacity: the most one VM (one PE) can get on this host. */
  peCores: number;
  memBytes: number;
  power: PowerCurve;
}

export interface EnergyVm {
  /** PEs of the VM (1 in this setup): it gets at most this many of its host's PEs. */
  pes: number;
  /** Seconds a migration of this VM takes. */
  migrationSeconds: number;
}

export interface CloudsimSetup {
  /** The day with each VM's demand in cores of 1,000 MIPS, vCPUs its MIPS in cores, memory its RAM; in the setup's order. */
  trace: Trace;
  hosts: EnergyHost[];
  vms: EnergyVm[];
  /** Host index of each VM at step 0 (first fit at full MIPS). */
  placement: Int32Array;
  /** Step at which each VM is gone (two zero samples in a row), or -1 when it runs all day. */
  departures: Int32Array;
  order: VmOrder;
}

function ordered(trace: Trace, order: VmOrder): TraceVm[] {
  const byName = new Map(trace.vms.map((vm) => [vm.name, vm]));
  if (order === 'name') return trace.vms.slice();
  if (order === 'hash') {
    const key = (name: string) => createHash('sha256').update(name).digest('hex');
    return trace.vms
      .map((vm) => ({ vm, key: key(vm.name) }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((entry) => entry.vm);
  }
  const vms = (trace.listed ?? []).map((name) => byName.get(name)).filter((vm): vm is TraceVm => vm !== undefined);
  if (vms.length !== trace.vms.length)
    throw new UsageError(
      `--vm-order directory: the folder's listing names ${vms.length} of the trace's ${trace.vms.length} VMs; ` +
        'expected a trace read from its folder (or --vm-order name or hash)',
    );
  return vms;
}

/**
 * Step at which CloudSim removes each VM: the first step k ≥ 1 with samples k and k+1 both 0 (the last
 * sample repeated past the end, as UtilizationModelPlanetLabInMemory does); -1 when there is none.
 */
export function departureSteps(vms: readonly { cpuCores: Float64Array }[]): Int32Array {
  const out = new Int32Array(vms.length).fill(-1);
  vms.forEach((vm, i) => {
    const series = vm.cpuCores;
    for (let k = 1; k < series.length; k++) {
      const next = series[Math.min(k + 1, series.length - 1)]!;
      if (series[k] === 0 && next === 0) {
        out[i] = k;
        return;
      }
    }
  });
  return out;
}

/**
 * Builds the setup from a PlanetLab day read by readPlanetLab (demand = value/100 of one core; its
 * `listed` order for `directory`). `ramLimit`: keep the hosts' 4 GB as a limit all day; CloudSim
 * checks RAM only while creating a VM (afterwards a VM requests 0 MB: its RAM utilisation model is
 * UtilizationModelNull), so by default the policies see memory that never binds.
 */
export function cloudsimPlanetLab(day: Trace, options: { order: VmOrder; ramLimit?: boolean }): CloudsimSetup {
  if (day.format !== 'planetlab')
    throw new UsageError(
      `--setup cloudsim-planetlab: expected a PlanetLab day (--format planetlab), got ${day.format}`,
    );
  const source = ordered(day, options.order);
  const perType = Math.ceil(source.length / VM_TYPES.length);
  const types = source.map((_, i) => VM_TYPES[Math.floor(i / perType)]!);
  const totalRamBytes = types.reduce((sum, t) => sum + t.ramMb * MiB, 0);
  const hosts: EnergyHost[] = Array.from({ length: HOST_COUNT }, (_, h) => {
    const type = HOST_TYPES[h % HOST_TYPES.length]!;
    return {
      name: `h${h}`,
      type: type.name,
      cpuCores: (type.peMips * type.pes) / MIPS_PER_CORE,
      peCores: type.peMips / MIPS_PER_CORE,
      memBytes: options.ramLimit ? type.ramMb * MiB : totalRamBytes,
      power: type.power,
    };
  });
  const vms: TraceVm[] = source.map((vm, i) => {
    const cores = types[i]!.mips / MIPS_PER_CORE;
    return {
      name: vm.name,
      vcpus: cores,
      memBytes: types[i]!.ramMb * MiB,
      cpuCores: vm.cpuCores.map((share) => share * cores),
      memUsedBytes: null,
    };
  });
  const placement = firstFit(types, hosts.length);
  return {
    trace: { ...day, vms, notes: [...day.notes] },
    hosts,
    vms: types.map((t) => ({ pes: 1, migrationSeconds: t.ramMb / MIGRATION_MB_PER_SEC })),
    placement,
    departures: departureSteps(vms),
    order: options.order,
  };
}

/** CloudSim's DVFS deal: each VM, in order, to the first host with a PE ≥ its MIPS and its MIPS and RAM free. */
function firstFit(types: readonly { mips: number; ramMb: number }[], hostCount: number): Int32Array {
  const freeMips = Array.from({ length: hostCount }, (_, h) => {
    const t = HOST_TYPES[h % HOST_TYPES.length]!;
    return t.peMips * t.pes;
  });
  const freeRam = Array.from({ length: hostCount }, (_, h) => HOST_TYPES[h % HOST_TYPES.length]!.ramMb);
  const placement = new Int32Array(types.length);
  types.forEach((vm, i) => {
    for (let h = 0; h < hostCount; h++) {
      const type = HOST_TYPES[h % HOST_TYPES.length]!;
      if (type.peMips >= vm.mips && freeMips[h]! >= vm.mips && freeRam[h]! >= vm.ramMb) {
        placement[i] = h;
        freeMips[h] -= vm.mips;
        freeRam[h] -= vm.ramMb;
        return;
      }
    }
    throw new UsageError(
      `--setup cloudsim-planetlab: VM ${i} (${vm.mips} MIPS, ${vm.ramMb} MB) fits on none of the ${hostCount} hosts; ` +
        'expected a day of at most about 1,600 VMs (CloudSim would refuse it too)',
    );
  });
  return placement;
}
