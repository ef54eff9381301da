/**
 * Fault 13: configuration errors: an unknown key, a wrong type, a bad URL, a negative threshold, a
 * missing file. What must hold: exit 2, one line per problem naming where it came from, the key, the
 * value and what was expected; every problem at once; never a stack trace. For every command.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { loadConfig } from '../../src/config/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { tmpDir } from '../helpers/tmp.ts';

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    assert.equal(error.exitCode, 2);
    return error.problems;
  }
  assert.fail('expected the config to be refused');
}

describe('fault 13: configuration errors', () => {
  it('reports every problem at once, one line each, naming key, value and expectation', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      file,
      [
        'monitor:',
        '  interval: soon',
        '  intervall: 5',
        'store:',
        '  url: http://influx:8086/db',
        'limits:',
        '  movesPerRound: "ten"',
        'policies:',
        '  overload:',
        '    highWatermark: -0.5',
        '',
      ].join('\n'),
    );
    const problems = problemsOf(() => loadConfig({ configPath: file, env: {} }));
    assert.equal(problems.length, 5, problems.join('\n'));
    const find = (key: string) =>
      problems.find((line) => line.includes(` ${key}:`)) ??
      assert.fail(`no line for ${key} in:\n${problems.join('\n')}`);
    assert.match(find('monitor.interval'), /"soon".*expected a duration/);
    assert.match(find('monitor.intervall'), /unknown key.*expected one of: interval,/);
    assert.match(find('store.url'), /"http:\/\/influx:8086\/db".*expected a URL like files:/);
    assert.match(find('limits.movesPerRound'), /"ten".*expected number/);
    assert.match(find('policies.overload.highWatermark'), /-0\.5.*between 0 and 1/);
    for (const line of problems) assert.ok(line.startsWith(`${file}: `), line);
  });

  it('names the variable when the bad value came from the environment, and refuses unknown LBVM_ variables', () => {
    // LBVM_FROM_SOURCE (bin/) and LBVM_INFLUX_PASSWORD (deploy/influxdb/setup.sh) are LBVM's own.
    const env = {
      LBVM_REDIS_URL: 'localhost:6379',
      LBVM_MONITOR_INTERVL: '5s',
      LBVM_FROM_SOURCE: '1',
      LBVM_INFLUX_PASSWORD: 'x',
    };
    const problems = problemsOf(() => loadConfig({ env, cwd: tmpDir() }));
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.ok(
      problems.some((line) =>
        /^LBVM_REDIS_URL: redis\.url: "localhost:6379": expected a URL like redis:\/\//.test(line),
      ),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((line) => /^LBVM_MONITOR_INTERVL: unknown LBVM_ environment variable/.test(line)),
      problems.join('\n'),
    );
  });

  it('refuses a missing config file given explicitly, and a YAML syntax error with its line', () => {
    const missing = problemsOf(() => loadConfig({ configPath: '/nonexistent/lbvm.yaml', env: {} }));
    assert.match(missing[0]!, /^\/nonexistent\/lbvm\.yaml: config file not found/);
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'broken.yaml'), 'monitor:\n  interval: [\n');
    const syntax = problemsOf(() => loadConfig({ configPath: path.join(dir, 'broken.yaml'), env: {} }));
    assert.match(syntax[0]!, /broken\.yaml:\d+:\d+: YAML syntax error/);
  });

  it('`lbvm config` exits 2 with one line per problem and no stack trace', async () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'lbvm.yaml'), 'redis:\n  url: 6379\nmonitor:\n  bogus: true\n');
    const result = await runCli('lbvm', ['config'], { cwd: dir, env: cleanEnv() });
    assert.equal(result.code, 2, result.stderr);
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 2, result.stderr);
    assert.match(result.stderr, /lbvm: \.\/lbvm\.yaml: redis\.url: 6379: expected string, got number/);
    assert.match(result.stderr, /lbvm: \.\/lbvm\.yaml: monitor\.bogus: unknown key/);
    assert.doesNotMatch(result.stderr, /\bat .*\.ts:\d+/);
  });

  it('every command refuses a bad config the same way: exit 2, one line per problem (key, value, expectation), nothing started', async () => {
    const dir = tmpDir();
    fs.writeFileSync(
      path.join(dir, 'lbvm.yaml'),
      [
        'monitr:',
        '  interval: 10s', // unknown key (a typo of a section)
        'monitor:',
        '  mode: [enforce]', // wrong type: a list for a word
        '  lease: 0s', // an interval or lease of nothing
        'store:',
        '  url: influx:/influx:8086', // a bad URL
        'policies:',
        '  balance:',
        '    weights:',
        '      cpu: -1', // negative
        '  overload:',
        '    highWatermark: -0.2', // negative threshold
        'limits:',
        '  movesPerHour: 2.5', // not a whole number
        '',
      ].join('\n'),
    );
    const expected: [string, RegExp][] = [
      ['monitr', /: monitr: unknown key \(value \{"interval":"10s"\}\); expected one of: .*monitor/],
      ['monitor.mode', /: monitor\.mode: \["enforce"\]: expected .*enforce.*report/],
      ['monitor.lease', /: monitor\.lease: "0s": expected a duration above 0/],
      ['store.url', /: store\.url: "influx:\/influx:8086": expected a URL like files:/],
      ['policies.balance.weights.cpu', /: policies\.balance\.weights\.cpu: -1: expected a number >= 0/],
      [
        'policies.overload.highWatermark',
        /: policies\.overload\.highWatermark: -0\.2: expected a number between 0 and 1/,
      ],
      ['limits.movesPerHour', /: limits\.movesPerHour: 2\.5: expected (a whole number|integer)/],
    ];
    const commands: ['lbvm' | 'lbm', string[]][] = [
      ['lbvm', ['config']],
      ['lbvm', ['collect', '--host-only']],
      ['lbvm', ['monitor', '--once']],
      ['lbvm', ['worker']],
      ['lbm', ['status']],
    ];
    const results = await Promise.all(
      commands.map(([tool, args]) =>
        runCli(tool, args, { cwd: dir, env: cleanEnv({ LBVM_REDIS_URL: 'redis://127.0.0.1:1' }) }),
      ),
    );
    results.forEach((result, index) => {
      const [tool, args] = commands[index]!;
      const what = `${tool} ${args.join(' ')}`;
      assert.equal(result.code, 2, `${what}: ${result.stderr}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, expected.length, `${what}: one line per problem, got:\n${result.stderr}`);
      for (const [key, pattern] of expected) {
        const line =
          lines.find((candidate) => candidate.startsWith(`${tool}: ./lbvm.yaml: ${key}:`)) ??
          assert.fail(`${what}: no line for ${key} in:\n${result.stderr}`);
        assert.match(line, pattern);
      }
      assert.equal(result.stdout, '', `${what} printed something: it must not have started`);
    });
    assert.ok(!fs.existsSync(path.join(dir, '.lbvm')), 'nothing was written');
    // A missing file, named by --config or by LBVM_CONFIG: the same, for a daemon too.
    const [byFlag, byEnv] = await Promise.all([
      runCli('lbvm', ['monitor', '--config', path.join(dir, 'nope.yaml')], { cwd: dir, env: cleanEnv() }),
      runCli('lbm', ['status'], { cwd: dir, env: cleanEnv({ LBVM_CONFIG: path.join(dir, 'nope.yaml') }) }),
    ]);
    for (const result of [byFlag, byEnv]) {
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(
          `${path.join(dir, 'nope.yaml').replace(/[.]/g, '\\.')}: config file not found \\(given by (--config|LBVM_CONFIG)\\); expected a readable YAML file`,
        ),
      );
    }
  });
});
