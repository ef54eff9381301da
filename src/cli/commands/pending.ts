/**
 * Commands whose part is not built yet. They exist so `--help` shows the whole tool, and they say
 * loudly that they do nothing yet (exit 70) instead of pretending. Each names the issue that builds it.
 */
import { Command } from 'commander';
import { NotImplemented } from '../../errors.ts';
import { teach, type HelpText } from '../help.ts';
import { withCommon } from '../run.ts';

export function pendingCommand(name: string, args: string, help: HelpText, issue: string): Command {
  const command = withCommon(new Command(name));
  if (args) command.arguments(args);
  teach(command, { ...help, details: `${help.details ? `${help.details}\n\n` : ''}NOT BUILT YET (${issue}): this command only says so and exits 70.` });
  command.allowUnknownOption(true);
  return command.action(() => {
    throw new NotImplemented(`\`${name}\` (${issue})`);
  });
}
