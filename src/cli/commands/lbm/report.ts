/** `lbm report [--since 24h] [--html FILE]`: what happened — imbalance over time, migrations, failures, overloads. */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { planRound } from '../../../../policies/index.ts';
import { powerWatts, type PowerCurve } from '../../../../policies/power.ts';
import { policySettingsFromConfig } from '../../../config/policy-settings.ts';
import type { LbvmConfig } from '../../../config/schema.ts';
import { UsageError } from '../../../errors.ts';
import type { Sample } from '../../../model/index.ts';
import { formatDuration, parseDurationMs } from '../../../units.ts';
import { openCluster } from '../../cluster.ts';
import { CliContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { buildReport } from '../../report/data.ts';
import { overloadedTime, renderHtml } from '../../report/html.ts';
import { sparkline, table } from '../../render.ts';
import { output, withCommon, type CommonOptions } from '../../run.ts';

/** A host's configured power curve (power.hosts, else power.default), or null. */
export function configuredCurve(config: LbvmConfig): ((host: string) => PowerCurve | null) | null {
  const { hosts, default: fallback } = config.power;
  if (!fallback && Object.keys(hosts).length === 0) return null;
  return (host) => hosts[host] ?? fallback ?? null;
}

export function reportCommand(): Command {
  const command = withCommon(new Command('report'))
    .option('--since <duration>', 'the period to report on', '24h')
    .option('--html <file>', 'also write one self-contained HTML page with charts (opens without network)');
  teach(command, {
    summary:
      'what happened: imbalance over time, migrations (who, why, how long, downtime), failures, overloaded hosts',
    examples: ['lbm report', 'lbm report --since 7d --html /tmp/lbvm-week.html', 'lbm report --json'],
  });
  return command.action(async (options: CommonOptions & { since: string; html?: string }) => {
    const sinceMs = parseDurationMs(options.since);
    if (sinceMs === null)
      throw new UsageError(`--since ${JSON.stringify(options.since)}: expected a duration like 6h, 24h or 7d`);
    const context = CliContext.open(options, 'report');
    try {
      const toMs = Date.now();
      const fromMs = toMs - sinceMs;
      const samples: Sample[] = [];
      for await (const sample of context.store().readSamples({ fromMs, toMs, kinds: ['host'], nowMs: toMs }))
        samples.push(sample);
      const queue = await context.queue();
      const events = (await queue.events.read({ after: `${fromMs}-0`, count: 1_000_000 })).map((entry) => entry.event);
      const highWatermark = context.config.policies.overload.highWatermark;
      const curve = configuredCurve(context.config);
      const report = buildReport({
        fromMs,
        toMs,
        samples,
        events,
        highWatermark,
        powerCurve: curve ?? undefined,
        maxSampleGapMs: context.config.monitor.staleAfterIntervals * context.config.collect.interval,
      });
      // With curves: the hosts consolidation would power down now (the monitor's own snapshot and policy).
      let powerDown: { hosts: { host: string; idleWatts: number | null }[]; idleWatts: number } | undefined;
      if (curve) {
        const view = await openCluster(context, toMs);
        const plan = planRound(view.snapshot, policySettingsFromConfig(context.config), ['consolidate']);
        const hosts = (plan.powerDownHosts ?? []).map((host) => {
          const c = curve(host);
          return { host, idleWatts: c ? powerWatts(c, 0) : null };
        });
        powerDown = { hosts, idleWatts: hosts.reduce((sum, h) => sum + (h.idleWatts ?? 0), 0) };
      }
      const data = { ...report, ...(powerDown ? { powerDown } : {}) };
      let htmlFile: string | null = null;
      if (options.html) {
        htmlFile = path.resolve(options.html);
        fs.writeFileSync(htmlFile, renderHtml(data, { highWatermark, generatedMs: toMs }));
      }
      output(options, { ...data, htmlFile }, () => {
        const t = data.totals;
        const lines = [
          `LBVM report, last ${options.since}: ${data.hosts.length} hosts · ${t.migrations} migrations, ` +
            `${t.alreadyThere ? `${t.alreadyThere} found already moved, ` : ''}${t.failed} failed attempts, ${t.dropped} dropped ` +
            `· median downtime ${t.medianDowntimeMs === null ? '-' : `${Math.round(t.medianDowntimeMs)} ms`} · ${overloadedTime(t)} of overloaded host time`,
          `imbalance: ${
            data.imbalance.length
              ? `${sparkline(data.imbalance.slice(-60).map((p) => p.value))}  ` +
                `${data.imbalance[0]!.value.toFixed(3)} → ${data.imbalance[data.imbalance.length - 1]!.value.toFixed(3)}`
              : 'no monitor round in this period'
          }`,
        ];
        if (data.migrations.length) {
          lines.push('', 'migrations (newest last):');
          lines.push(
            table(
              ['TIME (UTC)', 'VM', 'MOVE', 'BY', 'OUTCOME', 'TOOK', 'DOWNTIME', 'WHY'],
              data.migrations
                .slice(-25)
                .map((m) => [
                  new Date(m.endMs).toISOString().slice(11, 19),
                  m.vm,
                  `${m.from} → ${m.to}`,
                  m.requestedBy,
                  m.outcome + (m.error ? `: ${m.error.slice(0, 40)}` : ''),
                  m.totalMs === null ? '-' : formatDuration(m.totalMs),
                  m.downtimeMs === null ? '-' : `${Math.round(m.downtimeMs)} ms`,
                  m.reason.slice(0, 70),
                ]),
            ),
          );
        }
        if (data.overloads.length) {
          lines.push(
            '',
            `overloaded hosts (CPU, or memory committed to VMs, above ${Math.round(highWatermark * 100)}%):`,
          );
          lines.push(
            table(
              ['HOST', 'FROM', 'TO', 'FOR', 'PEAK'],
              data.overloads.map((o) => [
                o.host,
                new Date(o.fromMs).toISOString().slice(11, 19),
                new Date(o.toMs).toISOString().slice(11, 19),
                formatDuration(o.toMs - o.fromMs),
                `${Math.round(o.peakShare * 100)}% ${o.resource}`,
              ]),
            ),
          );
        }
        if (data.energy) {
          const e = data.energy;
          lines.push(
            '',
            `energy (estimated from CPU use and power.* curves): ${e.kWh.toFixed(2)} kWh over ${e.byHost.length} host(s)` +
              (e.hostsWithoutCurve.length ? `; no curve for ${e.hostsWithoutCurve.join(', ')}` : ''),
          );
          lines.push(
            table(
              ['HOST', 'KWH', 'MEAN W'],
              e.byHost.map((h) => [h.host, h.kWh.toFixed(3), h.meanWatts.toFixed(1)]),
            ),
          );
        }
        if (data.powerDown) {
          const p = data.powerDown;
          lines.push(
            p.hosts.length
              ? `consolidate would power down ${p.hosts.length} host(s) now: ${p.hosts.map((h) => h.host).join(', ')} ` +
                  `(their idle draw: ${Math.round(p.idleWatts)} W, ${((p.idleWatts * 24) / 1000).toFixed(1)} kWh a day)`
              : 'consolidate would power down no host now (`lbm plan --policy consolidate` says why)',
          );
        }
        if (htmlFile) lines.push('', `HTML report: ${htmlFile}`);
        return lines.join('\n');
      });
    } finally {
      await context.close();
    }
  });
}
