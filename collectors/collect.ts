/**
 * The `collect` core: one round measures this host and its VMs and delivers the samples to the store
 * (through the spool when the store cannot take them). `collectLoop` repeats it every interval.
 * Timestamps are measurement times. A collector never decides anything.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Driver } from '../src/drivers/driver.ts';
import type { HostInventory } from '../src/drivers/driver.ts';
import type { Logger } from '../src/log.ts';
import type { HostSample, Sample, VmSample } from '../src/model/index.ts';
import { deliver, type DeliveryReport, type Spool } from '../src/store/spool.ts';
import type { SampleStore } from '../src/store/types.ts';
import { cpuCoresBetween, readProc, type ProcReading } from './proc.ts';
import { hostSampleFromProc, logicalHostSample, vmSamplesFromInventory, type VmCounters } from './samples.ts';
import { loadNodeState, saveNodeState } from './state.ts';

/** A previous reading older than this is not used for a delta: the average would hide the present. */
export const MAX_BASELINE_AGE_MS = 10 * 60_000;

export interface CollectOptions {
  /** The host name the samples are tagged with. */
  node: string;
  store: SampleStore;
  spool: Spool;
  /** The hypervisor driver listing this host's VMs; null to sample the host only. */
  driver: Driver | null;
  /** `collect.stateFile`. */
  stateFile: string;
  /**
   * Set for a logical host: its capacity from config `hosts.<node>`; its use is then the sum of its
   * guests' and /proc is not read.
   */
  logicalCapacity?: { cpuCores: number; memBytes: number };
  procRoot?: string;
  sysRoot?: string;
  batchSize?: number;
  log?: Logger;
  /** Wait between two readings when there is no usable previous one. Default 1000 ms. */
  baselineWaitMs?: number;
  /**
   * A loop's memory that the store is away (collectLoop keeps one): the outage is then warned about
   * once, and its end once, rather than every round. Cron rounds, separate processes, warn each time.
   */
  outage?: { storeDown: boolean };
}

export interface RoundResult {
  node: string;
  /** Measurement time of the host sample. */
  timeMs: number;
  host: HostSample;
  vmSamples: number;
  /** VMs listed by the driver but without a CPU figure this round (no baseline yet). */
  vmsWithoutBaseline: string[];
  /** Set when the driver could not list the VMs (the host sample is still written for a physical host). */
  driverError?: string;
  delivery: DeliveryReport;
}

/** One round: measure, convert, deliver. Throws only when nothing could be measured. */
export async function collectRound(options: CollectOptions): Promise<RoundResult> {
  const waitMs = options.baselineWaitMs ?? 1000;
  const state = loadNodeState(options.stateFile, options.node);

  // The host, from /proc (physical host only).
  let hostBefore: ProcReading | undefined;
  let hostAfter: ProcReading | undefined;
  if (!options.logicalCapacity) {
    hostAfter = await readProc(options.procRoot, options.sysRoot);
    hostBefore = state.proc;
    const usable =
      hostBefore &&
      hostAfter.timeMs - hostBefore.timeMs > 0 &&
      hostAfter.timeMs - hostBefore.timeMs <= MAX_BASELINE_AGE_MS &&
      hostBefore.stat.cpuCount === hostAfter.stat.cpuCount &&
      // counters that went backwards (a reboot since) give no rate
      cpuCoresBetween(hostBefore.stat, hostAfter.stat) !== null;
    if (!usable) {
      // First run, a stale or foreign state: measure a fresh baseline now.
      hostBefore = hostAfter;
      await sleep(waitMs);
      hostAfter = await readProc(options.procRoot, options.sysRoot);
    }
  }

  // The VMs, from the driver.
  let vmSamples: VmSample[] = [];
  let vmCounters: Record<string, VmCounters> = {};
  let withoutBaseline: string[] = [];
  let vmCount: number | undefined;
  let memCommittedBytes: number | undefined;
  let driverError: string | undefined;
  if (options.driver) {
    try {
      const previous = freshCounters(state.vms ?? {}, Date.now());
      // A listing's counters are dated at the middle of the call: a slow driver (virsh, ssh) takes
      // a second or more, which would otherwise inflate or shrink the rates between two listings.
      const list = async () => {
        const startMs = Date.now();
        const listed = await options.driver!.inventory(options.node);
        return { listed, timeMs: Math.round((startMs + Date.now()) / 2) };
      };
      let { listed: inventory, timeMs: inventoryTimeMs } = await list();
      let converted = vmSamplesFromInventory(options.node, inventory.vms, inventoryTimeMs, previous);
      if (converted.withoutBaseline.length > 0 && inventory.vms.some((vm) => vm.cpuTimeMs !== undefined)) {
        // Some VMs are new to us: a second listing gives them a baseline now rather than next round.
        // It waits even when the host's baseline was waited for: that wait came before the first listing.
        await sleep(waitMs);
        const baseline = { ...previous, ...converted.counters };
        ({ listed: inventory, timeMs: inventoryTimeMs } = await list());
        converted = vmSamplesFromInventory(options.node, inventory.vms, inventoryTimeMs, baseline);
      }
      vmSamples = converted.samples;
      vmCounters = converted.counters;
      withoutBaseline = converted.withoutBaseline;
      vmCount = inventory.vms.length;
      memCommittedBytes = inventory.vms.reduce((total, vm) => total + vm.memBytes, 0);
    } catch (error) {
      driverError = `${options.driver.name} driver: ${(error as Error).message}`;
      if (options.logicalCapacity) {
        // A logical host's use is its guests': without them there is nothing true to write.
        throw Object.assign(new Error(`cannot sample logical host ${options.node}: ${driverError}`), { cause: error });
      }
      vmCounters = state.vms ?? {};
    }
  }

  const host = options.logicalCapacity
    ? logicalHostSample(
        options.node,
        vmSamples[0]?.timeMs ?? Date.now(),
        options.logicalCapacity,
        vmSamples,
        vmCount ?? 0,
        memCommittedBytes,
      )
    : hostSampleFromProc(options.node, hostBefore!, hostAfter!, vmCount, memCommittedBytes);

  saveNodeState(options.stateFile, options.node, { proc: hostAfter, vms: vmCounters });

  const samples: Sample[] = [host, ...vmSamples];
  const delivery = await deliver(options.store, options.spool, { samples }, { batchSize: options.batchSize });
  const result: RoundResult = {
    node: options.node,
    timeMs: host.timeMs,
    host,
    vmSamples: vmSamples.length,
    vmsWithoutBaseline: withoutBaseline,
    delivery,
  };
  if (driverError) result.driverError = driverError;
  logRound(options.log, result, options.store.displayUrl, options.outage);
  return result;
}

/** Drops counters too old to give a meaningful average. */
function freshCounters(counters: Record<string, VmCounters>, nowMs: number): Record<string, VmCounters> {
  return Object.fromEntries(
    Object.entries(counters).filter(([, value]) => nowMs - value.timeMs <= MAX_BASELINE_AGE_MS),
  );
}

/**
 * One line per round; a warning when the store did not take the round (once per round, not per
 * sample; in a loop, once per outage, and one line when the store takes rounds again).
 */
function logRound(log: Logger | undefined, result: RoundResult, store: string, outage?: { storeDown: boolean }): void {
  if (!log) return;
  const { delivery } = result;
  const fields = {
    node: result.node,
    cpuUsedCores: Number(result.host.cpuUsedCores.toFixed(3)),
    memUsedBytes: result.host.memUsedBytes,
    vms: result.vmSamples,
    written: delivery.written,
    replayed: delivery.replayed,
    spooled: delivery.spooled,
    spoolBytes: delivery.spoolBytes,
  };
  if (delivery.storeError) {
    const message =
      `store ${store} did not take this round: ${delivery.storeError}; spooled ${delivery.spooled} ` +
      `samples (${delivery.spoolBytes} bytes waiting), replayed on the next successful write`;
    if (outage?.storeDown) log.debug({ ...fields, store, error: delivery.storeError }, message);
    else log.warn({ ...fields, store, error: delivery.storeError }, message);
    if (outage) outage.storeDown = true;
  } else {
    if (outage?.storeDown)
      log.info(
        { ...fields, store },
        `store ${store} takes rounds again: replayed ${delivery.replayed} spooled samples`,
      );
    if (outage) outage.storeDown = false;
    // debug: the command prints the same line on stdout; stderr stays for what needs attention (cron mails it).
    log.debug(
      fields,
      `collected ${1 + result.vmSamples} samples of ${result.node}${delivery.replayed ? ` and replayed ${delivery.replayed} spooled` : ''}`,
    );
  }
  if (result.driverError)
    log.error({ node: result.node, error: result.driverError }, `could not list the VMs: ${result.driverError}`);
  if (result.vmsWithoutBaseline.length > 0) {
    log.debug(
      { vms: result.vmsWithoutBaseline.slice(0, 20) },
      `${result.vmsWithoutBaseline.length} VMs have no CPU figure yet (no earlier counters); they are sampled from the next round`,
    );
  }
}

/**
 * Rounds every `intervalMs`, aligned to the interval (a 10 s loop samples at :00, :10, ...), until
 * `signal` aborts. A failed round is logged and the loop goes on.
 */
export async function collectLoop(
  options: CollectOptions & {
    intervalMs: number;
    signal: AbortSignal;
    onRound?: (result: RoundResult | Error) => void;
  },
): Promise<void> {
  const outage = { storeDown: false };
  while (!options.signal.aborted) {
    try {
      options.onRound?.(await collectRound({ ...options, outage }));
    } catch (error) {
      options.log?.error({ error: (error as Error).message }, `collect round failed: ${(error as Error).message}`);
      options.onRound?.(error as Error);
    }
    const delay = options.intervalMs - (Date.now() % options.intervalMs);
    try {
      await sleep(delay, undefined, { signal: options.signal });
    } catch {
      return;
    }
  }
}
