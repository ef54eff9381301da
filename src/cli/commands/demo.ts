/** `lbvm demo`: a throwaway local cluster balanced live (QEMU guests, or the sim driver). */
import path from 'node:path';
import { Command } from 'commander';
import { UsageError } from '../../errors.ts';
import { parseRate } from '../../util/netns.ts';
import { formatDuration } from '../../units.ts';
import { runDemo, type DemoResult } from '../demo/run.ts';
import { teach } from '../help.ts';

interface DemoCommandOptions {
  sim?: boolean;
  json?: boolean;
  duration?: string;
  reportDir?: string;
  keep?: boolean;
  netns?: boolean;
  linkRate: string;
}

export function demoCommand(): Command {
  const command = new Command('demo')
    .option('--sim', 'use the sim driver (20 hosts, 300 VMs) instead of real QEMU guests')
    .option('--duration <seconds>', 'stop after this many seconds even if not yet balanced', '170')
    .option('--report-dir <dir>', 'where the HTML report is written', './.lbvm/demo')
    .option('--netns', 'QEMU mode: each host in its own network namespace with TLS everywhere (needs root)')
    .option('--link-rate <rate>', "with --netns, every host's link rate (tc): 100mbit, 1gbit, 10gbit", '1gbit')
    .option('--keep', 'keep the temporary folder (daemon logs, samples, config) to look at afterwards')
    .option('--json', 'print one JSON object at the end (the live view goes to stderr)');
  teach(command, {
    summary: 'start a throwaway local cluster and watch LBVM balance it live',
    details:
      'Starts its own redis-server, a files store and the LBVM daemons in a temporary folder, then\n' +
      "shows hosts' CPU bars, each decision with its reason and each live migration with its progress\n" +
      'and downtime, until the cluster is balanced or --duration is up; prints the report, writes the\n' +
      'HTML report, and tears everything down (also on Ctrl-C).\n\n' +
      'QEMU mode: 3 agent hosts (1 core, 2 GiB each) with 6 TCG guests started on h1 on purpose.\n' +
      'Sim mode (--sim, or automatically when QEMU or the test guest is missing): 20 hosts, 300 VMs.\n\n' +
      'With --netns (root, iproute2), each QEMU host is a network namespace on a bridge, its link shaped\n' +
      'by tc to --link-rate, its agent and collector on its own address; the cluster gets its own CA\n' +
      '(deploy/certs.sh): the agents speak mutual TLS and migrations stream over TLS.\n\n' +
      'It uses no config file: everything it needs is in its temporary folder.',
    examples: ['lbvm demo', 'lbvm demo --sim --json', 'npm run demo -- --duration 60', 'sudo npm run demo -- --netns'],
  });
  return command.action(async (options: DemoCommandOptions) => {
    const seconds = Number(options.duration);
    if (!Number.isFinite(seconds) || seconds < 10)
      throw new UsageError(`--duration ${JSON.stringify(options.duration)}: expected a number of seconds >= 10`);
    if (options.netns && options.sim) throw new UsageError('--netns runs the QEMU demo; it does not go with --sim');
    if (options.netns && process.getuid?.() !== 0)
      throw new UsageError('--netns makes network namespaces (ip netns, tc): run it as root');
    if (parseRate(options.linkRate) === null)
      throw new UsageError(
        `--link-rate ${JSON.stringify(options.linkRate)}: expected a rate like 100mbit, 1gbit or 10gbit`,
      );
    const abort = new AbortController();
    const onSignal = () => {
      process.stderr.write('\nstopping the demo: tearing everything down...\n');
      abort.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const out = options.json ? process.stderr : process.stdout;
    let result: DemoResult;
    try {
      result = await runDemo({
        sim: options.sim === true,
        durationMs: seconds * 1000,
        out,
        reportDir: path.resolve(options.reportDir ?? './.lbvm/demo'),
        signal: abort.signal,
        keep: options.keep === true,
        netns: options.netns ? { rate: options.linkRate } : undefined,
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    if (options.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else {
      out.write(`\n${summary(result)}\n`);
    }
    if (result.leftoverProcesses > 0) process.exitCode = 1;
  });
}

function summary(result: DemoResult): string {
  const lines = [
    `LBVM demo (${result.driver} driver) done in ${formatDuration(result.durationMs)}: ` +
      `${result.balanced ? 'balanced' : 'not balanced'}${result.stopReason ? ` (${result.stopReason})` : ''}.`,
    `  imbalance ${result.imbalanceBefore?.toFixed(3) ?? '-'} → ${result.imbalanceAfter?.toFixed(3) ?? '-'} ` +
      `(standard deviation of hosts' measured CPU share, after: mean of the last 5 measurements; lower is flatter)`,
    `  ${result.migrations.length} live migrations${result.failedMigrations ? `, ${result.failedMigrations} failed attempts` : ''}` +
      `${result.alreadyThere ? `, ${result.alreadyThere} jobs found their VM already moved` : ''}:`,
    ...result.migrations
      .slice(0, 15)
      .map(
        (m) =>
          `    ${m.vm} ${m.from} → ${m.to}  ${m.totalMs === null ? '' : formatDuration(m.totalMs)} ` +
          ` downtime ${m.downtimeMs === null ? 'unknown' : `${Math.round(m.downtimeMs)} ms`}`,
      ),
    ...(result.migrations.length > 15 ? [`    ... ${result.migrations.length - 15} more`] : []),
    `  HTML report: ${result.reportHtml ?? '(not written)'}`,
    `  processes left behind: ${result.leftoverProcesses}`,
    ...result.notes.map((note) => `  note: ${note}`),
  ];
  return lines.join('\n');
}
