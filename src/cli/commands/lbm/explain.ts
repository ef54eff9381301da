/**
 * `lbm explain VM`: why a VM is where it is — its last moves and their reasons, its rules, how a move of
 * it is carried out (through an HA manager when one owns it), whether its hypervisor is busy with it,
 * and what the plan says.
 */
import { Command } from 'commander';
import { policySettingsFromConfig } from '../../../config/policy-settings.ts';
import { vmDemand } from '../../../../policies/index.ts';
import { howMoved } from '../../../drivers/moves.ts';
import { formatBytes } from '../../../units.ts';
import { ago, findVm, sourceLine, withSource } from '../../cluster.ts';
import { viewAndPlan } from '../../plan-of.ts';
import { CliContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { output, withCommon, type CommonOptions } from '../../run.ts';

export function explainCommand(): Command {
  const command = withSource(withCommon(new Command('explain'))).argument('<vm>', 'the VM');
  teach(command, {
    summary: 'why a VM is where it is: its last moves and their reasons, its rules, and what the plan says now',
    examples: ['lbm explain vm-17', 'lbm explain vm-17 --json'],
  });
  return command.action(async (name: string, options: CommonOptions & { fromStore?: boolean }) => {
    const context = CliContext.open(options, 'explain');
    try {
      const nowMs = Date.now();
      const settings = policySettingsFromConfig(context.config);
      // The VM's own window (its demand is shown); the others only when the plan must be made now.
      const { view, plan } = await viewAndPlan(context, nowMs, {
        fromStore: options.fromStore,
        settings,
        policies: context.config.monitor.policies,
        windowsOf: (vm) => vm === name,
      });
      const vm = findVm(view, name);
      const history = (await (await context.events()).latest(5000))
        .map((e) => e.event)
        .filter((e) => e.vm === name && e.type.startsWith('migration.'));
      const rules = view.snapshot.rules;
      const data = {
        source: view.source,
        vm: name,
        host: vm.host,
        vcpus: vm.vcpus,
        memBytes: vm.memBytes,
        cpuEstimateCores: vmDemand(vm, settings.demand).cores,
        cpuSpreadCores: Math.sqrt(vmDemand(vm, settings.demand).variance),
        rules: [
          ...rules.groups
            .filter((g) => g.vms.includes(name))
            .map((g) => ({ rule: g.name, kind: g.kind, hard: g.hard, with: g.vms.filter((v) => v !== name) })),
          ...rules.pins
            .filter((p) => p.vm === name)
            .map((p) => ({ rule: p.name, kind: p.hard ? 'pin' : 'prefer', hard: p.hard, hosts: p.hosts })),
        ],
        ignored: rules.ignoredVms.includes(name),
        /** The hypervisor's HA state when an HA manager owns the VM (its moves then go through it), else null. */
        haState: vm.haState ?? null,
        /** What the hypervisor is in the middle of with it (a lock, a transitional state): not moved while set. */
        busy: vm.busy ?? null,
        movedBy: howMoved(context.config, vm),
        inFlight: view.inFlight.find((job) => job.vm === name) ?? null,
        quarantinedUntilMs: vm.quarantinedUntilMs ?? null,
        history: history.slice(-20),
        plannedMove: plan.moves.find((m) => m.vm === name) ?? null,
        passedOver: plan.skipped.filter((s) => s.vm === name),
      };
      output(options, data, () => {
        const lines = [
          `${name} runs on ${vm.host}: ${vm.vcpus} vCPU, ${formatBytes(vm.memBytes)}, CPU ` +
            `forecast ${data.cpuEstimateCores.toFixed(2)} ± ${data.cpuSpreadCores.toFixed(2)} cores`,
        ];
        if (data.ignored) lines.push('  ignored by the balancer (rules.ignore or tag lbvm.ignore): never moved');
        if (data.haState) lines.push(`  HA-managed (HA state ${data.haState}): its moves go through the HA manager`);
        lines.push(`  moved ${data.movedBy}`);
        if (data.busy) lines.push(`  busy on ${vm.host}: ${data.busy}; not moved until that clears`);
        for (const rule of data.rules)
          lines.push(
            `  rule ${rule.rule}: ${rule.kind}${rule.hard ? '' : ' (soft)'} ${'with' in rule ? `with ${rule.with.join(', ')}` : `on ${rule.hosts.join(', ')}`}`,
          );
        if (data.inFlight)
          lines.push(
            `  migrating now: ${data.inFlight.from} → ${data.inFlight.to} (job ${data.inFlight.jobId}, ${data.inFlight.state})`,
          );
        if (data.quarantinedUntilMs)
          lines.push(
            `  quarantined after repeated failed migrations until ${new Date(data.quarantinedUntilMs).toISOString()}`,
          );
        lines.push(history.length ? '  history:' : '  history: no migration recorded');
        for (const event of data.history) {
          lines.push(
            `    ${ago(event.timeMs, nowMs).padEnd(8)} ${event.type.replace('migration.', '').padEnd(8)} ` +
              `${event.from} → ${event.to}` +
              (event.requestedBy ? ` by ${event.requestedBy}` : '') +
              (event.reason ? `: ${event.reason}` : '') +
              (event.error ? ` (${event.error})` : ''),
          );
        }
        if (data.plannedMove) lines.push(`  the plan now moves it: ${data.plannedMove.reason}`);
        else if (data.passedOver.length)
          for (const skip of data.passedOver.slice(0, 5))
            lines.push(`  the plan passes it over: ${skip.reason}: ${skip.detail}`);
        else lines.push('  the plan leaves it where it is');
        lines.push(sourceLine(view, nowMs));
        return lines.join('\n');
      });
    } finally {
      await context.close();
    }
  });
}
