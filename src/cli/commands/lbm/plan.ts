/**
 * `lbm plan [--policy P]`: what the monitor would do now, with reasons, gains and costs, and what its
 * gate would hold back and why (the same pure steps as the daemon's round). Moves nothing.
 */
import { Command } from 'commander';
import { policySettingsFromConfig } from '../../../config/policy-settings.ts';
import { UsageError } from '../../../errors.ts';
import { isPolicyName, POLICY_NAMES, type PolicyName } from '../../../../policies/index.ts';
import { formatBytes, formatDuration } from '../../../units.ts';
import { movesInLastHour } from '../../../monitor/control.ts';
import { gate, gateInputs } from '../../../monitor/gate.ts';
import { quarantinedVms, quarantineNote } from '../../../monitor/read.ts';
import { sourceLine, withSource } from '../../cluster.ts';
import { viewAndPlan } from '../../plan-of.ts';
import { CliContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { table } from '../../render.ts';
import { output, withCommon, type CommonOptions } from '../../run.ts';

export function planCommand(): Command {
  const command = withSource(withCommon(new Command('plan'))).option(
    '--policy <names>',
    `policies to run, comma-separated, in order (default: monitor.policies); one of ${POLICY_NAMES.join(', ')}`,
  );
  teach(command, {
    summary: 'what the monitor would do now, each move with its reason, gain and cost (moves nothing)',
    details:
      'Runs the same code as the monitor on the same snapshot: the sample window, the rules, the\n' +
      "maintenance flags and the migrations in flight, then the monitor's own gate: paused, report mode,\n" +
      'too many unknown hosts, moves in flight, the per-round and per-hour budgets. Moves the gate would\n' +
      'hold back are listed with the reason; candidates passed over are counted by reason.',
    examples: ['lbm plan', 'lbm plan --policy consolidate', 'lbm plan --policy evacuate,balance --json'],
  });
  return command.action(async (options: CommonOptions & { policy?: string; fromStore?: boolean }) => {
    const context = CliContext.open(options, 'plan');
    try {
      const names = (
        options.policy
          ? options.policy
              .split(',')
              .map((n) => n.trim())
              .filter(Boolean)
          : context.config.monitor.policies
      ) as PolicyName[];
      for (const name of names) {
        if (!isPolicyName(name))
          throw new UsageError(`--policy ${JSON.stringify(name)}: expected one of ${POLICY_NAMES.join(', ')}`);
      }
      const nowMs = Date.now();
      const settings = policySettingsFromConfig(context.config);
      const { view, plan } = await viewAndPlan(context, nowMs, {
        fromStore: options.fromStore,
        settings,
        policies: names,
      });
      // The monitor's own gate on the same inputs: what it would enqueue now, and what it would hold back.
      const hour = await movesInLastHour(await context.redis(), context.config.redis.prefix, nowMs);
      const gated = gate(gateInputs(context.config, view, plan.moves, hour, context.store().displayUrl));
      const skippedByReason: Record<string, number> = {};
      for (const skip of plan.skipped) skippedByReason[skip.reason] = (skippedByReason[skip.reason] ?? 0) + 1;
      const data = {
        source: view.source,
        policies: names,
        scoreBefore: plan.scoreBefore,
        scoreAfter: plan.scoreAfter,
        moves: plan.moves,
        mode: gated.mode,
        wouldEnqueue: gated.enqueue.map((m) => m.vm),
        heldBack: gated.heldBack.map((h) => ({ vm: h.move.vm, reason: h.reason, detail: h.detail })),
        skippedByReason,
        skipped: plan.skipped.slice(0, 200),
        notes: [...plan.notes, ...gated.notes],
        powerDownHosts: plan.powerDownHosts ?? [],
        unknownHosts: view.snapshot.hosts.filter((h) => h.status !== 'up').map((h) => h.name),
        quarantined: quarantinedVms(view.snapshot),
      };
      const quarantined = quarantineNote(data.quarantined, settings.limits.quarantineAfterFailures);
      if (quarantined) data.notes = [quarantined, ...data.notes];
      output(options, data, () => {
        const lines = [
          `plan (${names.join(' → ')}): ${plan.moves.length} moves, imbalance score ${plan.scoreBefore.toFixed(3)} → ${plan.scoreAfter.toFixed(3)}`,
        ];
        if (plan.moves.length) {
          lines.push(
            table(
              ['#', 'VM', 'MOVE', 'POLICY', 'GAIN', 'COST', 'REASON'],
              plan.moves.map((m, i) => [
                String(i + 1),
                m.vm,
                `${m.from} → ${m.to}`,
                m.policy,
                m.gain.toFixed(4),
                `${m.cost.score.toFixed(4)} (${formatDuration(m.cost.durationMs)}, ${formatBytes(m.cost.bytes)}` +
                  `${m.cost.diskBytes ? ` incl. disk ${formatBytes(m.cost.diskBytes)}` : ''})`,
                m.reason,
              ]),
            ),
          );
        }
        if (plan.moves.length)
          lines.push(
            `the monitor (${gated.mode}) would enqueue ${gated.enqueue.length} of ${plan.moves.length} now` +
              (gated.heldBack.length ? `; held back: ${gated.heldBack.length}` : ''),
          );
        for (const held of data.heldBack.slice(0, 20))
          lines.push(`held back: ${held.vm} ${held.reason} (${held.detail})`);
        if (data.heldBack.length > 20)
          lines.push(`held back: and ${data.heldBack.length - 20} more (--json lists them)`);
        if (Object.keys(skippedByReason).length)
          lines.push(
            `passed over: ${Object.entries(skippedByReason)
              .map(([reason, count]) => `${reason} ×${count}`)
              .join(', ')}`,
          );
        for (const note of data.notes) lines.push(`note: ${note}`);
        if (data.powerDownHosts.length) lines.push(`hosts that can be powered down: ${data.powerDownHosts.join(', ')}`);
        lines.push(sourceLine(view, nowMs));
        return lines.join('\n');
      });
    } finally {
      await context.close();
    }
  });
}
