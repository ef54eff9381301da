/** `lbm logs HOST|VM [--since 6h] [--metric cpu|mem|disk|net]`: the resource log as a chart and a table. */
import { Command } from 'commander';
import { UsageError } from '../../../errors.ts';
import type { Sample } from '../../../model/index.ts';
import { formatBytes, parseDurationMs } from '../../../units.ts';
import { closestNames } from '../../../util/closest.ts';
import { UnknownName } from '../../cluster.ts';
import { CliContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { lineChart, table } from '../../render.ts';
import { output, withCommon, type CommonOptions } from '../../run.ts';

const METRICS = ['cpu', 'mem', 'disk', 'net'] as const;
type Metric = (typeof METRICS)[number];

function value(sample: Sample, metric: Metric): number {
  switch (metric) {
    case 'cpu':
      return sample.cpuUsedCores;
    case 'mem':
      return sample.memUsedBytes;
    case 'disk':
      return (sample.diskReadBytesPerSec ?? 0) + (sample.diskWriteBytesPerSec ?? 0);
    case 'net':
      return (sample.netRxBytesPerSec ?? 0) + (sample.netTxBytesPerSec ?? 0);
  }
}

function format(metric: Metric, v: number): string {
  if (metric === 'cpu') return `${v.toFixed(2)} cores`;
  if (metric === 'mem') return formatBytes(v);
  return `${formatBytes(v)}/s`;
}

export function logsCommand(): Command {
  const command = withCommon(new Command('logs'))
    .argument('<host-or-vm>', 'a host or VM name')
    .option('--since <duration>', 'how far back', '6h')
    .option('--metric <metric>', `one of ${METRICS.join(', ')}`, 'cpu')
    .option('--table', 'print every sample as a table instead of a chart and the last rows');
  teach(command, {
    summary: 'the resource log of a host or VM, as a terminal chart (or a table)',
    examples: [
      'lbm logs n3',
      'lbm logs vm-17 --since 30m --metric mem',
      'lbm logs n3 --metric net --table',
      'lbm logs n3 --json',
    ],
  });
  return command.action(
    async (name: string, options: CommonOptions & { since: string; metric: string; table?: boolean }) => {
      const sinceMs = parseDurationMs(options.since);
      if (sinceMs === null)
        throw new UsageError(`--since ${JSON.stringify(options.since)}: expected a duration like 30m, 6h or 2d`);
      if (!(METRICS as readonly string[]).includes(options.metric))
        throw new UsageError(`--metric ${JSON.stringify(options.metric)}: expected one of ${METRICS.join(', ')}`);
      const metric = options.metric as Metric;
      const context = CliContext.open(options, 'logs');
      try {
        const store = context.store();
        const nowMs = Date.now();
        const points: { timeMs: number; value: number; host: string; capacity?: number }[] = [];
        let kind: 'host' | 'vm' = 'host';
        for await (const sample of store.readSamples({
          fromMs: nowMs - sinceMs,
          toMs: nowMs,
          hosts: [name],
          kinds: ['host'],
          nowMs,
        })) {
          if (sample.kind === 'host')
            points.push({
              timeMs: sample.timeMs,
              value: value(sample, metric),
              host: sample.host,
              capacity: metric === 'cpu' ? sample.cpuCores : metric === 'mem' ? sample.memBytes : undefined,
            });
        }
        const seenVms = new Set<string>();
        if (points.length === 0) {
          kind = 'vm';
          for await (const sample of store.readSamples({
            fromMs: nowMs - sinceMs,
            toMs: nowMs,
            kinds: ['vm'],
            nowMs,
          })) {
            if (sample.kind !== 'vm') continue;
            if (sample.vm === name)
              points.push({
                timeMs: sample.timeMs,
                value: value(sample, metric),
                host: sample.host,
                capacity: metric === 'cpu' ? sample.vcpus : metric === 'mem' ? sample.memBytes : undefined,
              });
            else if (seenVms.size < 100_000) seenVms.add(sample.vm);
          }
        }
        if (points.length === 0) {
          const hosts = [...(await store.lastSampleTimes({ nowMs })).keys()];
          const close = closestNames(name, [...hosts, ...seenVms]);
          throw new UnknownName(
            `no samples of a host or VM named ${JSON.stringify(name)} in the last ` +
              `${options.since}${close.length ? `; did you mean ${close.map((n) => JSON.stringify(n)).join(', ')}?` : ''} (store ${store.displayUrl})`,
          );
        }
        points.sort((a, b) => a.timeMs - b.timeMs);
        const values = points.map((p) => p.value);
        const summary = {
          min: Math.min(...values),
          mean: values.reduce((s, v) => s + v, 0) / values.length,
          max: Math.max(...values),
          last: values[values.length - 1]!,
        };
        output(options, { name, kind, metric, sinceMs, points, summary }, () => {
          const hostsSeen = [...new Set(points.map((p) => p.host))];
          const header =
            `${kind} ${name}${kind === 'vm' ? ` (on ${hostsSeen.join(' → ')})` : ''}: ${metric}, last ${options.since}, ${points.length} samples · min ` +
            `${format(metric, summary.min)} · mean ${format(metric, summary.mean)} · max ${format(metric, summary.max)} · now ${format(metric, summary.last)}`;
          const rows = (options.table ? points : points.slice(-10)).map((p) => [
            new Date(p.timeMs).toISOString().replace('T', ' ').slice(0, 19),
            format(metric, p.value),
            p.capacity ? `${Math.round((p.value / p.capacity) * 100)}%` : '-',
            p.host,
          ]);
          const tableText = table(['TIME (UTC)', metric.toUpperCase(), 'OF CAPACITY', 'HOST'], rows);
          if (options.table) return `${header}\n${tableText}`;
          const chart = lineChart(values, {
            height: 10,
            width: 70,
            format: (v) => (metric === 'cpu' ? v.toFixed(2) : formatBytes(v)),
          });
          return `${header}\n\n${chart}\n\nlast samples:\n${tableText}`;
        });
      } finally {
        await context.close();
      }
    },
  );
}
