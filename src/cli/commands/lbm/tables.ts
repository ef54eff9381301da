/** `lbm hosts`, `lbm vms [--host H]` and `lbm jobs [--failed]`: tables of what LBVM sees. */
import { Command } from 'commander';
import { policySettingsFromConfig } from '../../../config/policy-settings.ts';
import { vmDemand } from '../../../../policies/index.ts';
import type { VmState } from '../../../model/index.ts';
import { formatBytes } from '../../../units.ts';
import { ago, findHost, hostRow, openCluster, sourceLine, withSource } from '../../cluster.ts';
import { withContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { numberOption } from '../../options.ts';
import { table } from '../../render.ts';
import { output, withCommon, type CommonOptions } from '../../run.ts';

export function hostsCommand(): Command {
  const command = withSource(withCommon(new Command('hosts')));
  teach(command, {
    summary: 'a table of hosts: capacity, measured use, memory committed to VMs, VM count, status and last sample',
    details:
      'MEM USED is memory measured in use; COMMITTED is the configured memory of the VMs on ' +
      "the host, the measure the policies judge (a destination must have a VM's whole size free).",
    examples: ['lbm hosts', 'lbm hosts --json'],
  });
  return command.action(async (options: CommonOptions & { fromStore?: boolean }) => {
    const nowMs = Date.now();
    const view = await withContext(options, 'hosts', (context) =>
      openCluster(context, nowMs, { fromStore: options.fromStore, parts: 'hosts' }),
    );
    const rows = view.snapshot.hosts.map((h) => hostRow(view, h));
    output(
      options,
      { timeMs: nowMs, source: view.source, hosts: rows },
      () =>
        `${sourceLine(view, nowMs)}\n` +
        table(
          [
            'HOST',
            'CORES',
            'CPU USED',
            'CPU',
            'MEMORY',
            'MEM USED',
            '',
            'COMMITTED',
            '',
            'VMS',
            'STATUS',
            'LAST SAMPLE',
          ],
          rows.map((h) => [
            h.host,
            String(h.cpuCores),
            h.cpuUsedCores.toFixed(2),
            `${Math.round((h.cpuCores ? h.cpuUsedCores / h.cpuCores : 0) * 100)}%`,
            formatBytes(h.memBytes),
            formatBytes(h.memUsedBytes),
            `${Math.round((h.memBytes ? h.memUsedBytes / h.memBytes : 0) * 100)}%`,
            formatBytes(h.memCommittedBytes),
            `${Math.round((h.memBytes ? h.memCommittedBytes / h.memBytes : 0) * 100)}%`,
            String(h.vms),
            `${h.status}${h.maintenance ? ', maintenance' : ''}`,
            ago(h.lastSampleMs, nowMs),
          ]),
        ),
    );
  });
}

export function vmsCommand(): Command {
  const command = withSource(withCommon(new Command('vms'))).option('--host <host>', 'only the VMs on this host');
  teach(command, {
    summary: 'a table of balanced VMs: host, size, smoothed use, rules, last move',
    details:
      '"CPU est." is the demand forecast the policies use: the window\'s mean, pulled ' +
      "toward the latest sample as far as the VM's load has held (policies/demand.ts).",
    examples: ['lbm vms', 'lbm vms --host n3', 'lbm vms --json'],
  });
  return command.action(async (options: CommonOptions & { host?: string; fromStore?: boolean }) => {
    const nowMs = Date.now();
    const { view, settings } = await withContext(options, 'vms', async (context) => {
      const settings = policySettingsFromConfig(context.config);
      // The monitor's latest CPU use and forecast of each VM, when it forecast as this config says:
      // then no CPU window is decoded (30,000 of them were a third of the command). Else the windows.
      const windowsOf = { forecastUnder: settings.demand };
      return { view: await openCluster(context, nowMs, { fromStore: options.fromStore, windowsOf }), settings };
    });
    const forecast = view.windowsLeftOut ? view.publishedForecast! : null;
    if (options.host) findHost(view, options.host);
    // Each VM's rules, looked up once: asking every rule about every VM costs VMs × rules (30,000 × hundreds).
    const { groups, pins, ignoredVms } = view.snapshot.rules;
    const rulesOf = new Map<string, string[]>();
    const label = (vm: string, text: string) => {
      const list = rulesOf.get(vm);
      if (list) list.push(text);
      else rulesOf.set(vm, [text]);
    };
    for (const g of groups) for (const vm of new Set(g.vms)) label(vm, `${g.kind}${g.hard ? '' : '(soft)'}:${g.name}`);
    for (const p of pins) label(p.vm, `${p.hard ? 'pin' : 'prefer'}:${p.hosts.join('|')}`);
    for (const vm of new Set(ignoredVms)) label(vm, 'ignored');
    /** The newest entry of a VM's window (published as NaN when it has none), 0 without one. */
    const latestOf = (vm: VmState, index: number) => {
      const latest = forecast ? forecast.latestCores[index]! : vm.cpuUsedWindowCores[vm.cpuUsedWindowCores.length - 1];
      return latest === undefined || Number.isNaN(latest) ? 0 : latest;
    };
    const rows = view.snapshot.vms
      .map((vm, index) => ({ vm, index }))
      .filter(({ vm }) => !options.host || vm.host === options.host)
      .map(({ vm, index }) => ({
        vm: vm.name,
        host: vm.host,
        vcpus: vm.vcpus,
        memBytes: vm.memBytes,
        memUsedBytes: vm.memUsedBytes,
        cpuUsedCores: latestOf(vm, index),
        cpuEstimateCores: forecast ? forecast.forecastCores[index]! : vmDemand(vm, settings.demand).cores,
        rules: rulesOf.get(vm.name) ?? [],
        lastMoveMs: vm.lastMoveMs ?? null,
        previousHost: vm.previousHost ?? null,
        quarantinedUntilMs: vm.quarantinedUntilMs ?? null,
        migrating: view.inFlight.some((job) => job.vm === vm.name),
      }));
    output(options, { timeMs: nowMs, source: view.source, vms: rows }, () =>
      rows.length === 0
        ? `no VM${options.host ? ` on ${options.host}` : ''} in the sample window (${sourceLine(view, nowMs)})`
        : `${sourceLine(view, nowMs)}\n` +
          table(
            ['VM', 'HOST', 'VCPUS', 'MEMORY', 'CPU NOW', 'CPU EST.', 'RULES', 'LAST MOVE'],
            rows.map((vm) => [
              vm.vm,
              vm.host,
              String(vm.vcpus),
              formatBytes(vm.memBytes),
              vm.cpuUsedCores.toFixed(2),
              vm.cpuEstimateCores.toFixed(2),
              vm.rules.join(' ') || '-',
              (vm.lastMoveMs ? `${ago(vm.lastMoveMs, nowMs)} from ${vm.previousHost}` : '-') +
                (vm.migrating ? ' (migrating)' : '') +
                (vm.quarantinedUntilMs ? ' (quarantined)' : ''),
            ]),
          ),
    );
  });
}

export function jobsCommand(): Command {
  const command = withCommon(new Command('jobs'))
    .option('--failed', 'only failed migrations')
    .option('--limit <n>', 'at most this many jobs', '50');
  teach(command, {
    summary: 'migrations queued, running, done and failed, newest first',
    examples: ['lbm jobs', 'lbm jobs --failed', 'lbm jobs --json --limit 500'],
  });
  return command.action(async (options: CommonOptions & { failed?: boolean; limit?: string }) => {
    const nowMs = Date.now();
    const limit = numberOption(options.limit ?? '50', '--limit', { integer: true, min: 1 });
    const jobs = await withContext(options, 'jobs', async (context) =>
      (await context.queue()).jobs(options.failed ? 1000 : limit),
    );
    const shown = (options.failed ? jobs.filter((job) => job.state === 'failed') : jobs).slice(0, limit);
    output(options, { timeMs: nowMs, jobs: shown }, () =>
      shown.length === 0
        ? options.failed
          ? 'no failed migration'
          : 'no migration job'
        : table(
            ['JOB', 'VM', 'MOVE', 'STATE', 'PROGRESS', 'BY', 'ENQUEUED', 'TOOK', 'DOWNTIME', 'ERROR'],
            shown.map((job) => [
              job.jobId.slice(0, 14),
              job.data.vm,
              `${job.data.from} → ${job.data.to}`,
              // A re-run that found the VM already moved took no migration's time.
              job.result?.outcome === 'already-there' ? `${job.state} (already there)` : job.state,
              job.progress ? `${Math.round(job.progress.fraction * 100)}%` : '-',
              job.data.requestedBy,
              ago(job.enqueuedMs, nowMs),
              job.result && job.result.outcome !== 'already-there' ? `${(job.result.totalMs / 1000).toFixed(1)}s` : '-',
              job.result?.downtimeMs !== undefined && job.result?.downtimeMs !== null
                ? `${Math.round(job.result.downtimeMs)}ms`
                : '-',
              (job.failedReason ?? '').slice(0, 60),
            ]),
          ),
    );
  });
}
