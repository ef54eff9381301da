/**
 * `lbm`: the operator's tool. Shows the cluster, its resource logs and what LBVM did and why;
 * triggers manual moves, pause, resume and maintenance. One file per command under ./commands/lbm.
 */
import { Command } from 'commander';
import { CONFIG_HELP } from './help.ts';
import { commandsToLoad, runProgram } from './run.ts';

/** Each command's module is loaded only when that command runs (or for the full --help). */
const COMMANDS: Record<string, () => Promise<Command>> = {
  status: async () => (await import('./commands/lbm/status.ts')).statusCommand(),
  hosts: async () => (await import('./commands/lbm/tables.ts')).hostsCommand(),
  vms: async () => (await import('./commands/lbm/tables.ts')).vmsCommand(),
  logs: async () => (await import('./commands/lbm/logs.ts')).logsCommand(),
  report: async () => (await import('./commands/lbm/report.ts')).reportCommand(),
  plan: async () => (await import('./commands/lbm/plan.ts')).planCommand(),
  migrate: async () => (await import('./commands/lbm/migrate.ts')).migrateCommand(),
  jobs: async () => (await import('./commands/lbm/tables.ts')).jobsCommand(),
  explain: async () => (await import('./commands/lbm/explain.ts')).explainCommand(),
  pause: async () => (await import('./commands/lbm/control.ts')).pauseCommand(),
  resume: async () => (await import('./commands/lbm/control.ts')).resumeCommand(),
  maintenance: async () => (await import('./commands/lbm/control.ts')).maintenanceCommand(),
};

/** The command names (bin/code-cache.js keeps a code cache per command). */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

/** The program with the commands named (all by default). */
export async function lbmProgram(names: readonly string[] = Object.keys(COMMANDS)): Promise<Command> {
  const program = new Command('lbm')
    .description(
      "LBM, the operator's tool for an LBVM cluster: is it balanced, what did LBVM do and why, " +
        'and move a VM by hand. Every command takes --json for scripts.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `\nExamples:\n  $ lbm status\n  $ lbm vms --host n3\n  $ lbm migrate vm-17 n5 --wait\n\n${CONFIG_HELP}\n`,
    );
  for (const name of names) program.addCommand(await COMMANDS[name]!());
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  await runProgram(await lbmProgram(commandsToLoad(argv, Object.keys(COMMANDS))), argv);
}
