/**
 * The synthetic cluster the scale benches share (round, cli, ingest): `hosts` hosts named
 * `h0000`…, each running `vmsPerHost` VMs named `vm-000000`…, sampled once a minute. A tenth of the
 * hosts run hot (their VMs at 1.6 cores of 2), so a round has real moves to plan and enqueue; the
 * others' VMs wander between 0.3 and 0.5 cores from minute to minute. Every field a collector writes
 * is filled, as a real collector's round is.
 */
import type { Sample } from '../src/model/index.ts';
import { StoreWriteFailed } from '../src/store/errors.ts';
import type { SampleStore } from '../src/store/index.ts';

const GiB = 2 ** 30;
export const MINUTE_MS = 60_000;

export function hostName(index: number): string {
  return `h${String(index).padStart(4, '0')}`;
}

/** One minute's samples of hosts [firstHost, firstHost + count) at `timeMs`: each host, then its VMs. */
export function clusterRound(
  timeMs: number,
  vmsPerHost: number,
  firstHost: number,
  count: number,
  into: Sample[] = [],
): Sample[] {
  const minute = Math.floor(timeMs / MINUTE_MS);
  for (let h = firstHost; h < firstHost + count; h++) {
    const host = hostName(h);
    const hot = h % 10 === 0;
    const vms: Sample[] = [];
    let used = 0;
    for (let i = 0; i < vmsPerHost; i++) {
      const v = h * vmsPerHost + i;
      const cores = hot ? 1.6 : 0.3 + ((v + minute) % 5) * 0.05;
      used += cores;
      vms.push({
        kind: 'vm',
        vm: `vm-${String(v).padStart(6, '0')}`,
        host,
        timeMs,
        vcpus: 2,
        cpuUsedCores: cores,
        memBytes: 2 * GiB,
        memUsedBytes: GiB + ((v + minute) % 7) * 2 ** 20,
        memDirtyBytesPerSec: 5e6,
        diskReadBytesPerSec: 1e5,
        diskWriteBytesPerSec: 2e5,
        netRxBytesPerSec: 3e5,
        netTxBytesPerSec: 4e5,
        state: 'running',
      });
    }
    into.push({
      kind: 'host',
      host,
      timeMs,
      cpuCores: 32,
      cpuUsedCores: used,
      cpuStealCores: 0,
      memBytes: 128 * GiB,
      memUsedBytes: vmsPerHost * 2 * GiB + 8 * GiB,
      memAvailableBytes: 128 * GiB - (vmsPerHost * 2 * GiB + 8 * GiB),
      load1: used,
      load5: used,
      load15: used,
      diskReadBytesPerSec: 1e6,
      diskWriteBytesPerSec: 2e6,
      netRxBytesPerSec: 3e6,
      netTxBytesPerSec: 4e6,
      vmCount: vmsPerHost,
    });
    into.push(...vms);
  }
  return into;
}

/**
 * Writes samples as a collector's spool would: what the store could not take (an InfluxDB busy past
 * its write timeout on a loaded machine answers 500) is written again, up to `attempts` times.
 * Returns how many attempts it took.
 */
export async function writeAll(store: SampleStore, samples: Sample[], attempts = 5): Promise<number> {
  let left: readonly Sample[] = samples;
  for (let attempt = 1; ; attempt++) {
    try {
      const report = await store.writeSamples(left);
      if (report.rejected > 0)
        throw new Error(`the store refused ${report.rejected} samples: ${report.rejectedReasons}`);
      return attempt;
    } catch (error) {
      if (!(error instanceof StoreWriteFailed) || attempt >= attempts) throw new Error((error as Error).message);
      left = error.unwritten as Sample[];
      await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
    }
  }
}

/**
 * Writes the cluster's samples of every minute in [fromMs, toMs) (one second before each minute's
 * end), two minutes in flight: the window a monitor finds when it starts.
 */
export async function writeHistory(
  store: SampleStore,
  cluster: { hosts: number; vmsPerHost: number },
  fromMs: number,
  toMs: number,
  progress?: (minutesDone: number, minutes: number) => void,
): Promise<number> {
  const times: number[] = [];
  for (let t = toMs - 1000; t >= fromMs; t -= MINUTE_MS) times.unshift(t);
  let next = 0;
  let done = 0;
  let written = 0;
  const worker = async () => {
    while (next < times.length) {
      const samples = clusterRound(times[next++]!, cluster.vmsPerHost, 0, cluster.hosts);
      await writeAll(store, samples);
      written += samples.length;
      progress?.(++done, times.length);
    }
  };
  await Promise.all([worker(), worker()]);
  return written;
}
