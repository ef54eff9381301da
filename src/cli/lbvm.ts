/**
 * `lbvm`: the runtime. Daemons and rounds that run on hosts: collect, monitor, worker, agent;
 * and the simulator and demo. One file per command under ./commands.
 */
import { Command } from 'commander';
import { CONFIG_HELP } from './help.ts';
import { commandsToLoad, runProgram } from './run.ts';

/**
 * Each command's module is loaded only when that command runs (or for the full --help): a cron
 * `lbvm collect` should not pay for BullMQ, the policies and the demo.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  config: async () => (await import('./commands/config.ts')).configCommand(),
  collect: async () => (await import('./commands/collect.ts')).collectCommand(),
  monitor: async () => (await import('./commands/monitor.ts')).monitorCommand(),
  worker: async () => (await import('./commands/worker.ts')).workerCommand(),
  agent: async () => (await import('./commands/agent.ts')).agentCommand(),
  simulate: async () => (await import('./commands/simulate.ts')).simulateCommand(),
  demo: async () => (await import('./commands/demo.ts')).demoCommand(),
};

/** The command names (bin/code-cache.js keeps a code cache per command). */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

/** The program with the commands named (all by default). */
export async function lbvmProgram(names: readonly string[] = Object.keys(COMMANDS)): Promise<Command> {
  const program = new Command('lbvm')
    .description(
      'LBVM keeps a cluster of hypervisor hosts balanced by moving running VMs live. ' +
        'This is the runtime: collectors on every host, one active monitor, workers and agents. ' +
        "The operator's tool is `lbm`.",
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `\nExamples:\n  $ lbvm collect --every 10s        sample this host and its VMs in a ` +
        `loop\n  $ lbvm monitor                    the long-running balancer\n  $ lbvm simulate ` +
        `--trace ../shared/traces/planetlab/20110303 --format planetlab --hosts 60 --host-cores ` +
        `4\n  $ lbvm demo                       a local cluster balanced live\n\n${CONFIG_HELP}\n`,
    );
  for (const name of names) program.addCommand(await COMMANDS[name]!());
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  await runProgram(await lbvmProgram(commandsToLoad(argv, Object.keys(COMMANDS))), argv);
}
