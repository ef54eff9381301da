/**
 * What every command shares: loading the config from `--config` and flags, printing `--json`
 * or text from the same data, and exiting through typed errors (a message and a code for expected
 * failures, a stack only for bugs).
 */
import type { Command } from 'commander';
import { loadConfig, redactConfig, type LoadedConfig } from '../config/load.ts';
import type { LbvmConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { ExitError } from '../errors.ts';
import { safeJsonPieces, safeOutput } from './render.ts';

export interface CommonOptions {
  config?: string;
  json?: boolean;
}

/**
 * Which commands a run needs loaded: none to print the version, the one named, else all of them
 * (for --help, and to suggest the closest name for an unknown one).
 */
export function commandsToLoad(argv: string[], names: readonly string[]): string[] {
  const first = argv[2];
  if (first === '--version' || first === '-V') return [];
  return first && names.includes(first) ? [first] : [...names];
}

/** Adds `--config FILE` and `--json` to a command. */
export function withCommon(command: Command): Command {
  return command
    .option('-c, --config <file>', 'config file (default: $LBVM_CONFIG, else ./lbvm.yaml)')
    .option('--json', 'print one JSON object instead of text (for scripts)');
}

export function loadFor(options: CommonOptions, overrides: Record<string, unknown> = {}): LoadedConfig {
  return loadConfig({ configPath: options.config, overrides });
}

/**
 * Prints a result: JSON when asked for, else the text rendering of the same data. Either way nothing
 * that came from outside (a VM named with an escape sequence) reaches the terminal as a control.
 */
export function output<T>(options: CommonOptions, data: T, text: (data: T) => string): void {
  if (options.json) {
    // Written in pieces of about 64 KiB at least (safeJsonPieces): `lbm vms --json` is 10 MB.
    let pending = '';
    for (const piece of safeJsonPieces(data)) {
      pending += piece;
      if (pending.length >= 65_536) {
        process.stdout.write(pending);
        pending = '';
      }
    }
    process.stdout.write(`${pending}\n`);
  } else process.stdout.write(safeOutput(text(data)).replace(/\n?$/, '\n'));
}

/** Runs a CLI program: typed errors print their message and exit with their code; bugs print a stack. */
export async function runProgram(program: Command, argv: string[]): Promise<void> {
  program.exitOverride();
  program.configureOutput({ outputError: (text, write) => write(text) });
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      const exitCode = (error as { exitCode?: number }).exitCode ?? 2;
      // help and version are successful exits
      process.exitCode =
        code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help'
          ? 0
          : exitCode === 1
            ? 2
            : exitCode;
      return;
    }
    if (error instanceof ExitError) {
      process.stderr.write(
        `${program.name()}: ${safeOutput(error.message).split('\n').join(`\n${program.name()}: `)}\n`,
      );
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(
      `${program.name()}: internal error (a bug in LBVM; please report it with this output):\n${(error as Error)?.stack ?? String(error)}\n`,
    );
    process.exitCode = 70;
  }
}

/** The first line of every daemon: what it runs with (secrets redacted). */
export function logStartup(log: Logger, config: LbvmConfig, file: string | null): void {
  log.info({ configFile: file ?? '(none: defaults and environment)', config: redactConfig(config) }, 'starting');
}
