/**
 * `lbm`: the operator's tool. Shows the cluster, its resource logs and what LBVM did and why;
 * triggers manual moves, pause, resume and maintenance. One file per command under ./commands.
 */
import { Command } from 'commander';
import { pendingCommand } from './commands/pending.ts';
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
  const pending: [string, string, string, string[]][] = [
    ['status', '', 'the cluster in one screen: hosts with CPU and memory bars, imbalance, monitor, migrations', ['lbm status', 'lbm status --json']],
    ['hosts', '', 'a table of hosts: capacity, use, VM count, flags', ['lbm hosts']],
    ['vms', '', 'a table of balanced VMs: host, size, smoothed use, rules, last move', ['lbm vms --host n3']],
    ['logs', '<host-or-vm>', 'the resource log of a host or VM as a table or a terminal chart', ['lbm logs n3 --since 6h --metric cpu']],
    ['report', '', 'what happened: imbalance over time, migrations, failures, overloaded hosts', ['lbm report --since 24h --html report.html']],
    ['plan', '', 'what the monitor would do now, each move with its reason, gain and cost', ['lbm plan --policy balance']],
    ['migrate', '<vm> <host>', 'move a VM by hand through the same queue and rule checks', ['lbm migrate vm-17 n5 --wait']],
    ['jobs', '', 'migrations queued, running, done and failed', ['lbm jobs --failed']],
    ['explain', '<vm>', 'why a VM is where it is: its last moves and their reasons', ['lbm explain vm-17']],
    ['pause', '', 'stop the monitor from starting new moves (takes effect within one interval)', ['lbm pause']],
    ['resume', '', 'let the monitor move VMs again', ['lbm resume']],
    ['maintenance', '<host> <on|off>', 'flag a host for maintenance (optionally evacuate it)', ['lbm maintenance n3 on --evacuate']],
  ];
  for (const [name, args, summary, examples] of pending) {
    program.addCommand(pendingCommand(name, args, { summary, examples }, 'issue #7'));
  }
  return program;
}

export async function main(argv = process.argv): Promise<void> {
  await runProgram(lbmProgram(), argv);
}
