/**
 * `lbvm`: the runtime. Daemons and rounds that run on hosts: collect, monitor, worker, agent;
 * and the simulator and demo. One file per command under ./commands.
 */
import { Command } from 'commander';
import { agentCommand } from './commands/agent.ts';
import { collectCommand } from './commands/collect.ts';
import { configCommand } from './commands/config.ts';
import { demoCommand } from './commands/demo.ts';
import { monitorCommand } from './commands/monitor.ts';
import { simulateCommand } from './commands/simulate.ts';
import { workerCommand } from './commands/worker.ts';
import { CONFIG_HELP } from './help.ts';
import { runProgram } from './run.ts';

export function lbvmProgram(): Command {
  const program = new Command('lbvm')
    .description(
      'LBVM keeps a cluster of hypervisor hosts balanced by moving running VMs live.\n' +
        'This is the runtime: collectors on every host, one active monitor, workers and agents.\n' +
        'The operator\'s tool is `lbm`.',
    )
    .version('0.1.0')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `\nExamples:\n  $ lbvm collect --every 10s        sample this host and its VMs in a loop\n  $ lbvm monitor                    the long-running balancer\n  $ lbvm simulate --trace ../shared/traces/planetlab/20110303 --format planetlab --hosts 60 --host-cores 4\n  $ lbvm demo                       a local cluster balanced live\n\n${CONFIG_HELP}\n`,
    );
  program.addCommand(configCommand());
  program.addCommand(collectCommand());
  program.addCommand(monitorCommand());
  program.addCommand(workerCommand());
  program.addCommand(agentCommand());
  program.addCommand(simulateCommand());
  program.addCommand(demoCommand());
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  await runProgram(lbvmProgram(), argv);
}
