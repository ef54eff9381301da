/** `lbvm config`: validates the configuration and prints it as it will be used (secrets redacted). */
import { Command } from 'commander';
import YAML from 'yaml';
import { redactConfig } from '../../config/load.ts';
import { teach } from '../help.ts';
import { loadFor, output, withCommon, type CommonOptions } from '../run.ts';

export function configCommand(): Command {
  const command = withCommon(new Command('config'));
  teach(command, {
    summary: 'check the configuration and print it with every default filled in',
    details:
      'Reads the config file and LBVM_* variables exactly as the daemons do. Exits 2 with one line per\n' +
      'problem (key, value, what was expected) when something is wrong. Secrets are printed as ***.',
    examples: [
      'lbvm config',
      'LBVM_MONITOR_INTERVAL=30s lbvm config --json',
      'lbvm config --config /etc/lbvm/lbvm.yaml',
    ],
  });
  return command.action((options: CommonOptions) => {
    const { config, file } = loadFor(options);
    const shown = { file, config: redactConfig(config) };
    output(
      options,
      shown,
      (data) => `# config file: ${data.file ?? '(none: defaults and environment)'}\n${YAML.stringify(data.config)}`,
    );
  });
}
