/**
 * `lbm`: the operator's tool. Shows the cluster, its resource logs and what LBVM did and why;
 * triggers manual moves, pause, resume and maintenance. One file per command under ./commands/lbm.
 */
import { Command } from 'commander';
import { maintenanceCommand, pauseCommand, resumeCommand } from './commands/lbm/control.ts';
import { explainCommand } from './commands/lbm/explain.ts';
import { logsCommand } from './commands/lbm/logs.ts';
import { migrateCommand } from './commands/lbm/migrate.ts';
import { planCommand } from './commands/lbm/plan.ts';
import { reportCommand } from './commands/lbm/report.ts';
import { statusCommand } from './commands/lbm/status.ts';
import { hostsCommand, jobsCommand, vmsCommand } from './commands/lbm/tables.ts';
import { CONFIG_HELP } from './help.ts';
import { runProgram } from './run.ts';

export function lbmProgram(): Command {
  const program = new Command('lbm')
    .description(
      'LBM, the operator\'s tool for an LBVM cluster: is it balanced, what did LBVM do and why,\n' +
        'and move a VM by hand. Every command takes --json for scripts.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', `\nExamples:\n  $ lbm status\n  $ lbm vms --host n3\n  $ lbm migrate vm-17 n5 --wait\n\n${CONFIG_HELP}\n`);
  for (const command of [
    statusCommand(), hostsCommand(), vmsCommand(), logsCommand(), reportCommand(), planCommand(), migrateCommand(),
    jobsCommand(), explainCommand(), pauseCommand(), resumeCommand(), maintenanceCommand(),
  ]) {
    program.addCommand(command);
  }
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  await runProgram(lbmProgram(), argv);
}
