/** Help text every command shares: what it is for, examples, and where the config lives. */
import type { Command } from 'commander';

export const CONFIG_HELP = `Config: ./lbvm.yaml, or --config FILE, or $LBVM_CONFIG; every key can be overridden by an
LBVM_* variable named after its path (monitor.interval -> LBVM_MONITOR_INTERVAL).
See deploy/lbvm.example.yaml for every key with its default.`;

export interface HelpText {
  /** One line: what the command does. */
  summary: string;
  /** A paragraph: when to use it, what it reads and writes. */
  details?: string;
  examples: string[];
}

export function teach(command: Command, help: HelpText): Command {
  command.summary(help.summary);
  command.description(help.details ? `${help.summary}\n\n${help.details}` : help.summary);
  command.addHelpText(
    'after',
    `\nExamples:\n${help.examples.map((line) => `  $ ${line}`).join('\n')}\n\n${CONFIG_HELP}\n`,
  );
  return command;
}
