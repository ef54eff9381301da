/** `lbm status`: the cluster in one screen. */
import { Command } from 'commander';
import { currentLeader } from '../../../monitor/lease.ts';
import { roundKeys } from '../../../monitor/control.ts';
import type { RoundRecord } from '../../../monitor/daemon.ts';
import { formatBytes } from '../../../units.ts';
import { ago, hostRow, measuredImbalance, openCluster, sourceLine, withSource } from '../../cluster.ts';
import { CliContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { bar, table } from '../../render.ts';
import { output, withCommon, type CommonOptions } from '../../run.ts';

export interface HostStatus {
  host: string;
  cpuCores: number;
  cpuUsedCores: number;
  memBytes: number;
  memUsedBytes: number;
  /** Configured memory of the VMs on the host: what the policies judge. */
  memCommittedBytes: number;
  vms: number;
  status: string;
  maintenance: boolean;
  evacuate: boolean;
  lastSampleMs: number | null;
}

export function statusCommand(): Command {
  const command = withSource(withCommon(new Command('status')));
  teach(command, {
    summary: 'the cluster in one screen: hosts with CPU and memory bars, imbalance, monitor, migrations',
    details:
      'Reads the sample window and Redis exactly as the monitor does. A host is "unknown" when ' +
      'its\nlast sample is older than monitor.staleAfterIntervals intervals: nothing moves to it.',
    examples: ['lbm status', 'lbm status --json | jq .imbalance'],
  });
  return command.action(async (options: CommonOptions & { fromStore?: boolean }) => {
    const context = CliContext.open(options, 'status');
    try {
      const nowMs = Date.now();
      const view = await openCluster(context, nowMs, { fromStore: options.fromStore, parts: 'hosts' });
      const redis = await context.redis();
      const prefix = context.config.redis.prefix;
      const [leader, rawRound, jobs] = await Promise.all([
        currentLeader(redis, prefix),
        redis.get(roundKeys(prefix).lastRound),
        (await context.queue()).jobs(200),
      ]);
      const round = rawRound ? (JSON.parse(rawRound) as RoundRecord) : null;
      const hosts: HostStatus[] = view.snapshot.hosts.map((h) => {
        // `evacuate` stands before lastSampleMs, where --json has always printed it.
        const { lastSampleMs, ...row } = hostRow(view, h);
        return { ...row, evacuate: view.maintenance.get(h.name)?.evacuate ?? false, lastSampleMs };
      });
      const data = {
        timeMs: nowMs,
        source: view.source,
        hosts,
        vms: view.vmTotals.count,
        unknownHosts: hosts.filter((h) => h.status !== 'up').map((h) => h.host),
        imbalance: measuredImbalance(view.snapshot.hosts),
        monitor: {
          leader,
          paused: view.pause,
          mode: round?.mode ?? null,
          lastRoundMs: round?.timeMs ?? null,
          lastRoundScore: round?.imbalanceBefore ?? null,
          lastRoundEnqueued: round?.enqueued.filter((e) => e.status === 'queued').length ?? 0,
          lastRoundHeldBack: round?.heldBack.length ?? 0,
          notes: round?.notes.slice(0, 5) ?? [],
        },
        migrations: {
          running: jobs
            .filter((j) => j.state === 'active')
            .map((j) => ({
              jobId: j.jobId,
              vm: j.data.vm,
              from: j.data.from,
              to: j.data.to,
              fraction: j.progress?.fraction ?? 0,
            })),
          queued: jobs
            .filter((j) => j.state === 'waiting' || j.state === 'delayed' || j.state === 'prioritized')
            .map((j) => ({ jobId: j.jobId, vm: j.data.vm, from: j.data.from, to: j.data.to })),
        },
      };
      output(options, data, () => {
        const lines: string[] = [];
        lines.push(
          `LBVM cluster: ${hosts.length} hosts${data.unknownHosts.length ? ` (${data.unknownHosts.length} unknown)` : ''}, ` +
            `${data.vms} VMs · imbalance ${data.imbalance.toFixed(3)} (std dev of hosts' CPU share)`,
        );
        lines.push(
          `monitor: ${leader ? `leader ${leader}` : 'NO LEADER (is `lbvm monitor` running?)'} · ` +
            (round
              ? `mode ${round.mode}, last round ${ago(round.timeMs, nowMs)}: ` +
                `${data.monitor.lastRoundEnqueued} enqueued, ${data.monitor.lastRoundHeldBack} held back`
              : 'no round recorded yet'),
        );
        lines.push(sourceLine(view, nowMs));
        if (view.pause.paused)
          lines.push(
            `PAUSED by ${view.pause.by ?? '?'}${view.pause.reason ? ` (${view.pause.reason})` : ''} ` +
              `${ago(view.pause.sinceMs, nowMs)}: no new moves (lbm resume)`,
          );
        lines.push('');
        lines.push(
          table(
            ['HOST', 'CPU', '', 'MEMORY USED', '', 'COMMITTED', 'VMS', 'FLAGS'],
            hosts.map((h) => {
              const cpu = h.cpuCores ? h.cpuUsedCores / h.cpuCores : 0;
              const mem = h.memBytes ? h.memUsedBytes / h.memBytes : 0;
              const flags = [
                h.status !== 'up' ? `unknown: last sample ${ago(h.lastSampleMs, nowMs)}` : '',
                h.maintenance ? `maintenance${h.evacuate ? ' (evacuate)' : ''}` : '',
              ].filter(Boolean);
              return [
                h.host,
                `${bar(cpu, 16)} ${Math.round(cpu * 100)}%`,
                `${h.cpuUsedCores.toFixed(1)}/${h.cpuCores} cores`,
                `${bar(mem, 16)} ${Math.round(mem * 100)}%`,
                `${formatBytes(h.memUsedBytes)}/${formatBytes(h.memBytes)}`,
                `${Math.round((h.memBytes ? h.memCommittedBytes / h.memBytes : 0) * 100)}% (${formatBytes(h.memCommittedBytes)})`,
                String(h.vms),
                flags.join(', '),
              ];
            }),
          ),
        );
        lines.push('');
        lines.push(`migrations: ${data.migrations.running.length} running, ${data.migrations.queued.length} queued`);
        for (const m of data.migrations.running)
          lines.push(`  ⇄ ${m.vm} ${m.from} → ${m.to} ${bar(m.fraction, 12)} ${Math.round(m.fraction * 100)}%`);
        for (const m of data.migrations.queued.slice(0, 10)) lines.push(`  … ${m.vm} ${m.from} → ${m.to} (queued)`);
        return lines.join('\n');
      });
    } finally {
      await context.close();
    }
  });
}
