/**
 * The energy meter of the CloudSim setup (cloudsim.ts): energy and the SLA metrics of Beloglazov &
 * Buyya (CCPE 2012) as CloudSim 3.0.3 computes them (PowerDatacenter, HostDynamicWorkload,
 * VmSchedulerTimeSharedOverSubscription, examples' Helper.getSlaTimePerActiveHost and getSlaMetrics),
 * from what the simulator tells it at each step: where the VMs are, which are still running, and
 * which moved.
 *
 * At step t a running VM i on host h requests r_i = demand_i(t) cores and gets
 *   a_i = min(r_i, pes_i × peCores_h) · min(1, cores_h / Σ_j min(r_j, pes_j × peCores_h))
 * (no more than its PEs of that host, scaled down when the host is oversubscribed). The host's use is
 * u_h = Σ a_i / cores_h. A host is on while it holds a running VM, and during a step in which a VM
 * migrates to it.
 *
 *   energy  Σ over steps and hosts on at the step's start of (P_h(u_start) + P_h(u_end)) / 2 · Δt (power.ts);
 *           a host emptied by migrations (the VMs it held and any it received in the step) is on until
 *           its last VM has left: P_h(u_start) · d_last
 *   SLATAH  time hosts on spent with Σ a_i < Σ r_i (CPU-starved), over the time hosts were on; a host
 *           receiving migrations counts the longest of them (its migrating-in VM gets 10% of its request)
 *   PDM     Σ over migrations of (r_i − 0.9 a_i) · d_i (the VM runs at 90% while it migrates), over Σ r_i · Δt
 *   SLAV    SLATAH × PDM
 * with d_i the migration's duration (RAM / 62.5 MB/s). CloudSim meters from its first processing (step 1)
 * to its last (the day's last sample): step 0 is the deal, and the steps after it are the intervals
 * between samples.
 */
import { stepEnergyJoules } from '../../policies/power.ts';
import type { EnergyHost, EnergyVm } from './cloudsim.ts';
import type { Trace } from './traces.ts';

export interface EnergySummary {
  energyKWh: number;
  /** Share of the time hosts were on that they were CPU-starved (allocated < requested). */
  slatah: number;
  /** Performance lost to migrations over all demand. */
  pdm: number;
  /** SLATAH × PDM. */
  slav: number;
  migrations: number;
  hostsSwitchedOff: number;
  hostsSwitchedOn: number;
  /** Hosts on at the end of the first metered step and at the day's end. */
  hostsOnFirst: number;
  hostsOnLast: number;
  /** Mean number of hosts on over the metered steps. */
  meanHostsOn: number;
  /** VMs still running at the day's end (the rest finished: two zero samples in a row). */
  vmsRunningAtEnd: number;
}

/** Relative tolerance when comparing allocated and requested MIPS (floating-point sums, not starvation). */
const STARVED = 1e-9;
/** While it migrates, a VM runs at this share of its allocation (VmSchedulerTimeShared: 10% lost). */
const MIGRATING_SHARE = 0.9;

export class EnergyMeter {
  private readonly hostCount: number;
  private readonly stepSeconds: number;
  private readonly firstStep: number;
  private readonly lastStep: number;
  /** Per host at the previous scored step. */
  private use: Float64Array;
  private requested: Float64Array;
  private allocated: Float64Array;
  private holds: Int32Array;
  /** Per VM at the previous scored step: request and allocation (cores). */
  private vmRequest: Float64Array;
  private vmAlloc: Float64Array;
  /** Migrations during the step after the previous one, per host: longest arriving (with a request), how many arrived, longest leaving, how many left. */
  private arriving: Float64Array;
  private receiving: Int32Array;
  private leaving: Float64Array;
  private leavingCount: Int32Array;
  private previousT = -1;
  private joules = 0;
  private onSeconds = 0;
  private starvedSeconds = 0;
  private lostCoreSeconds = 0;
  private requestedCoreSeconds = 0;
  private migrationCount = 0;
  private switchedOff = 0;
  private switchedOn = 0;
  private onFirst = -1;
  private onLast = 0;
  private onSum = 0;
  private onSteps = 0;
  private running = 0;

  constructor(
    private readonly trace: Trace,
    private readonly hosts: readonly EnergyHost[],
    private readonly vms: readonly EnergyVm[],
    stepSeconds: number,
  ) {
    this.hostCount = hosts.length;
    this.stepSeconds = stepSeconds;
    this.firstStep = 1;
    this.lastStep = trace.steps - 1;
    this.use = new Float64Array(this.hostCount);
    this.requested = new Float64Array(this.hostCount);
    this.allocated = new Float64Array(this.hostCount);
    this.holds = new Int32Array(this.hostCount);
    this.vmRequest = new Float64Array(trace.vms.length);
    this.vmAlloc = new Float64Array(trace.vms.length);
    this.arriving = new Float64Array(this.hostCount);
    this.receiving = new Int32Array(this.hostCount);
    this.leaving = new Float64Array(this.hostCount);
    this.leavingCount = new Int32Array(this.hostCount);
  }

  /** Step t scored: VM i runs on placement[i] when running[i]. */
  score(t: number, placement: Int32Array, running: Uint8Array): void {
    const n = this.trace.vms.length;
    const requested = new Float64Array(this.hostCount);
    const capped = new Float64Array(this.hostCount);
    const holds = new Int32Array(this.hostCount);
    const vmRequest = new Float64Array(n);
    const vmCapped = new Float64Array(n);
    let runningCount = 0;
    for (let i = 0; i < n; i++) {
      if (!running[i]) continue;
      runningCount++;
      const h = placement[i]!;
      const r = this.trace.vms[i]!.cpuCores[t]!;
      const c = Math.min(r, this.vms[i]!.pes * this.hosts[h]!.peCores);
      vmRequest[i] = r;
      vmCapped[i] = c;
      requested[h] += r;
      capped[h] += c;
      holds[h]++;
    }
    const allocated = new Float64Array(this.hostCount);
    const use = new Float64Array(this.hostCount);
    const scale = new Float64Array(this.hostCount);
    for (let h = 0; h < this.hostCount; h++) {
      const cores = this.hosts[h]!.cpuCores;
      scale[h] = capped[h]! > cores ? cores / capped[h]! : 1;
      allocated[h] = capped[h]! * scale[h]!;
      use[h] = allocated[h]! / cores;
    }
    const vmAlloc = new Float64Array(n);
    for (let i = 0; i < n; i++) if (running[i]) vmAlloc[i] = vmCapped[i]! * scale[placement[i]!]!;

    // The step from the previous scored step to this one.
    if (this.previousT >= this.firstStep && t === this.previousT + 1) {
      let on = 0;
      for (let h = 0; h < this.hostCount; h++) {
        const held = this.holds[h]! > 0;
        if (!held && this.receiving[h]) this.switchedOn++;
        if (!held && !this.receiving[h]) continue;
        on++;
        const curve = this.hosts[h]!.power;
        const starved = this.requested[h]! > this.allocated[h]! * (1 + STARVED) + STARVED;
        // Empty at the step's end, every VM it held and every VM it received gone by migration (a VM can be
        // placed on a host and moved on in the same plan, as CloudSim's are: both copies end together).
        const emptiedByMoves =
          holds[h] === 0 && this.leavingCount[h]! > 0 && this.leavingCount[h]! >= this.holds[h]! + this.receiving[h]!;
        if (emptiedByMoves) {
          // On until its last VM has left, at the use it had (CloudSim: the VM runs there until it lands).
          const seconds = Math.min(this.stepSeconds, this.leaving[h]!);
          this.joules += stepEnergyJoules(curve, this.use[h]!, this.use[h]!, seconds);
          this.onSeconds += seconds;
          this.starvedSeconds += starved ? seconds : Math.min(seconds, this.arriving[h]!);
        } else {
          this.joules += stepEnergyJoules(curve, this.use[h]!, use[h]!, this.stepSeconds);
          this.onSeconds += this.stepSeconds;
          this.starvedSeconds += starved ? this.stepSeconds : Math.min(this.stepSeconds, this.arriving[h]!);
        }
        if (holds[h] === 0) this.switchedOff++;
      }
      this.onSum += on;
      this.onSteps++;
    }
    // Demand of the step that starts now (CloudSim: the request at the start of each interval, to the last sample).
    if (t >= this.firstStep && t < this.lastStep) {
      let total = 0;
      for (let i = 0; i < n; i++) total += vmRequest[i]!;
      this.requestedCoreSeconds += total * this.stepSeconds;
    }
    if (t >= this.firstStep) {
      let on = 0;
      for (let h = 0; h < this.hostCount; h++) if (holds[h]! > 0) on++;
      if (this.onFirst < 0) this.onFirst = on;
      this.onLast = on;
    }
    this.use = use;
    this.requested = requested;
    this.allocated = allocated;
    this.holds = holds;
    this.vmRequest = vmRequest;
    this.vmAlloc = vmAlloc;
    this.arriving.fill(0);
    this.receiving.fill(0);
    this.leaving.fill(0);
    this.leavingCount.fill(0);
    this.previousT = t;
    this.running = runningCount;
  }

  /** VM i migrates from host `from` to host `to` during the step after the last scored one. */
  moved(vm: number, from: number, to: number): void {
    if (this.previousT < this.firstStep) return;
    const seconds = this.vms[vm]!.migrationSeconds;
    this.migrationCount++;
    this.receiving[to]++;
    if (this.vmRequest[vm]! > 0) this.arriving[to] = Math.max(this.arriving[to]!, seconds);
    this.leaving[from] = Math.max(this.leaving[from]!, seconds);
    this.leavingCount[from]++;
    this.lostCoreSeconds += Math.max(0, this.vmRequest[vm]! - MIGRATING_SHARE * this.vmAlloc[vm]!) * seconds;
  }

  summary(): EnergySummary {
    const slatah = this.onSeconds > 0 ? this.starvedSeconds / this.onSeconds : 0;
    const pdm = this.requestedCoreSeconds > 0 ? this.lostCoreSeconds / this.requestedCoreSeconds : 0;
    return {
      energyKWh: this.joules / 3.6e6,
      slatah,
      pdm,
      slav: slatah * pdm,
      migrations: this.migrationCount,
      hostsSwitchedOff: this.switchedOff,
      hostsSwitchedOn: this.switchedOn,
      hostsOnFirst: Math.max(0, this.onFirst),
      hostsOnLast: this.onLast,
      meanHostsOn: this.onSteps > 0 ? this.onSum / this.onSteps : 0,
      vmsRunningAtEnd: this.running,
    };
  }
}
