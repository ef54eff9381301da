/** Help text every command shares: what it is for, examples, and where the config lives. */
import type { Command } from 'commander';

export const CONFIG_HELP = `Config: ./lbvm.yaml, or --config FILE, or $LBVM_CONFIG; every key can be
overridden by an LBVM_* variable named after its path (monitor.interval ->
LBVM_MONITOR_INTERVAL). See deploy/lbvm.example.yaml for every key with its
default.`;

export interface HelpText {
  /** One line: what the command does. */
  summary: string;
  /** A paragraph: when to use it, what it reads and writes. */
  details?: string;
  examples: string[];
}

/**
 * Details are written wrapped near 100 columns; commander wraps every line again to the terminal's
 * width (80 when not a terminal), which left a short line after each long one. A paragraph's lines
 * are joined here so commander wraps them once. Kept as written: blank lines, indented lines (examples,
 * crontab lines) and list items (`- `, `* `).
 */
export function reflow(text: string): string {
  const out: string[] = [];
  const keepsItsLine = (line: string) => line === '' || /^(\s|[-*] )/.test(line);
  for (const line of text.split('\n')) {
    const previous = out.at(-1);
    if (previous !== undefined && !keepsItsLine(previous) && !keepsItsLine(line))
      out[out.length - 1] = `${previous} ${line}`;
    else out.push(line);
  }
  return out.join('\n');
}

export function teach(command: Command, help: HelpText): Command {
  command.summary(help.summary);
  command.description(help.details ? `${help.summary}\n\n${reflow(help.details)}` : help.summary);
  command.addHelpText(
    'after',
    `\nExamples:\n${help.examples.map((line) => `  $ ${line}`).join('\n')}\n\n${CONFIG_HELP}\n`,
  );
  return command;
}
