import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lbmProgram } from '../../src/cli/lbm.ts';
import { lbvmProgram } from '../../src/cli/lbvm.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';

/**
 * Lines of the description (80 columns when not a terminal) that end a line early although the next
 * word would have fitted: a paragraph wrapped twice, once by hand and once by commander.
 */
function raggedLines(help: string): string[] {
  const lines = help.split('\n');
  const end = lines.findIndex((line) => /^(Options|Arguments|Commands):/.test(line));
  const description = lines.slice(1, end === -1 ? lines.length : end);
  const plain = (line: string | undefined) => line !== undefined && line !== '' && !/^(\s|[-*] )/.test(line);
  return description.filter((line, i) => {
    const next = description[i + 1];
    return plain(line) && plain(next) && line.length + 1 + next!.split(' ')[0]!.length <= 80;
  });
}

/** Lines wider than 80 columns (a terminal's default; commander's width when not a terminal), examples aside. */
function wideLines(help: string): string[] {
  return help.split('\n').filter((line) => [...line].length > 80 && !/^\s+\$ /.test(line));
}

const tools = { lbvm: await lbvmProgram(), lbm: await lbmProgram() } as const;

describe('--help teaches', () => {
  for (const [tool, program] of Object.entries(tools) as [keyof typeof tools, (typeof tools)[keyof typeof tools]][]) {
    it(`${tool} --help lists every command with examples and where the config lives`, async () => {
      const result = await runCli(tool, ['--help'], { env: cleanEnv() });
      assert.equal(result.code, 0, result.stderr);
      for (const command of program.commands) assert.match(result.stdout, new RegExp(`\\n  ${command.name()}\\b`));
      assert.match(result.stdout, /Examples:/);
      assert.match(result.stdout, /Config: \.\/lbvm\.yaml, or --config FILE, or \$LBVM_CONFIG/);
      assert.deepEqual(raggedLines(result.stdout), [], `${tool} --help wraps raggedly`);
      assert.deepEqual(wideLines(result.stdout), [], `${tool} --help is wider than 80 columns`);
    });

    it(`every ${tool} subcommand's --help prints usage, an example and the config location`, async () => {
      const results = await Promise.all(
        program.commands.map((command) => runCli(tool, [command.name(), '--help'], { env: cleanEnv() })),
      );
      program.commands.forEach((command, index) => {
        const result = results[index]!;
        assert.equal(result.code, 0, `${tool} ${command.name()} --help: ${result.stderr}`);
        assert.match(result.stdout, new RegExp(`^Usage: ${tool} ${command.name()}`), result.stdout);
        assert.match(
          result.stdout,
          new RegExp(`\\$ .*${tool} ${command.name()}\\b`),
          `${tool} ${command.name()} --help has no example`,
        );
        assert.match(result.stdout, /LBVM_CONFIG/);
        assert.deepEqual(raggedLines(result.stdout), [], `${tool} ${command.name()} --help wraps raggedly`);
        assert.deepEqual(wideLines(result.stdout), [], `${tool} ${command.name()} --help is wider than 80 columns`);
      });
    });
  }

  it('a bad number for an option fails at once naming the flag, the value and what was expected; nothing is queued', async () => {
    const cases: [keyof typeof tools, string[], RegExp][] = [
      ['lbm', ['jobs', '--limit', 'abc'], /^lbm: --limit: "abc": expected a whole number >= 1$/m],
      [
        'lbm',
        ['migrate', 'vm-1', 'h2', '--wait', '--timeout', 'soon'],
        /^lbm: --timeout: "soon": expected a number > 0$/m,
      ],
      ['lbvm', ['worker', '--concurrency', '0'], /^lbvm: --concurrency: "0": expected a whole number >= 1$/m],
    ];
    // No Redis answers here: each must be refused before anything connects (or queues a move).
    const env = cleanEnv({ LBVM_REDIS_URL: 'redis://127.0.0.1:1' });
    for (const [tool, args, expected] of cases) {
      const result = await runCli(tool, args, { env });
      assert.equal(result.code, 2, `${tool} ${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, expected);
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace for a user mistake');
    }
  });

  it('an unknown command fails with a hint, not a stack', async () => {
    const result = await runCli('lbm', ['stauts'], { env: cleanEnv() });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /unknown command 'stauts'/);
    assert.match(result.stderr, /Did you mean status\?/);
  });
});
