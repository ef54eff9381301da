import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.ts';
import { envKeys, loadConfig, redactConfig } from '../../src/config/index.ts';
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

describe('config', () => {
  it('runs on one machine with no file: files store under ./.lbvm, Redis on localhost', () => {
    const dir = tmpDir();
    const { config, file } = loadConfig({ env: {}, cwd: dir });
    assert.equal(file, null);
    assert.equal(config.store.url, 'files:./.lbvm/samples');
    assert.equal(config.redis.url, 'redis://127.0.0.1:6379');
    assert.equal(config.monitor.interval, 60_000);
    assert.equal(config.monitor.lease, 15_000);
    assert.equal(config.policies.balance.threshold, 3);
  });

  it('reads ./lbvm.yaml, and LBVM_* variables override its keys', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'lbvm.yaml'), 'monitor:\n  interval: 30s\n  mode: report\nstore:\n  spoolMaxBytes: 8MiB\n');
    const { config, file } = loadConfig({ env: { LBVM_MONITOR_MODE: 'enforce', LBVM_LIMITS_MOVES_PER_ROUND: '3' }, cwd: dir });
    assert.equal(file, path.join(dir, 'lbvm.yaml'));
    assert.equal(config.monitor.interval, 30_000);
    assert.equal(config.monitor.mode, 'enforce');
    assert.equal(config.limits.movesPerRound, 3);
    assert.equal(config.store.spoolMaxBytes, 8 * 1024 * 1024);
  });

  it('derives an environment variable for every key', () => {
    const keys = envKeys();
    assert.deepEqual(keys.get('LBVM_STORE_SPOOL_MAX_BYTES'), ['store', 'spoolMaxBytes']);
    assert.deepEqual(keys.get('LBVM_POLICIES_BALANCE_WEIGHTS_CPU'), ['policies', 'balance', 'weights', 'cpu']);
    assert.deepEqual(keys.get('LBVM_REDIS_URL'), ['redis', 'url']);
  });

  it('reports every problem at once, one line each, naming key, value and expectation', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(
      file,
      ['monitor:', '  interval: soon', '  intervall: 5', 'store:', '  url: http://influx:8086/db', 'limits:', '  movesPerRound: "ten"', 'policies:', '  overload:', '    highWatermark: -0.5', ''].join('\n'),
    );
    const problems = problemsOf(() => loadConfig({ configPath: file, env: {} }));
    assert.equal(problems.length, 5, problems.join('\n'));
    const find = (key: string) => problems.find((line) => line.includes(` ${key}:`)) ?? assert.fail(`no line for ${key} in:\n${problems.join('\n')}`);
    assert.match(find('monitor.interval'), /"soon".*expected a duration/);
    assert.match(find('monitor.intervall'), /unknown key.*expected one of: interval,/);
    assert.match(find('store.url'), /"http:\/\/influx:8086\/db".*expected a URL like files:/);
    assert.match(find('limits.movesPerRound'), /"ten".*expected number/);
    assert.match(find('policies.overload.highWatermark'), /-0\.5.*between 0 and 1/);
    for (const line of problems) assert.ok(line.startsWith(`${file}: `), line);
  });

  it('names the variable when the bad value came from the environment, and refuses unknown LBVM_ variables', () => {
    const problems = problemsOf(() => loadConfig({ env: { LBVM_REDIS_URL: 'localhost:6379', LBVM_MONITOR_INTERVL: '5s' }, cwd: tmpDir() }));
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.ok(problems.some((line) => /^LBVM_REDIS_URL: redis\.url: "localhost:6379": expected a URL like redis:\/\//.test(line)), problems.join('\n'));
    assert.ok(problems.some((line) => /^LBVM_MONITOR_INTERVL: unknown LBVM_ environment variable/.test(line)), problems.join('\n'));
  });

  it('refuses a missing config file given explicitly, and a YAML syntax error with its line', () => {
    const missing = problemsOf(() => loadConfig({ configPath: '/nonexistent/lbvm.yaml', env: {} }));
    assert.match(missing[0]!, /^\/nonexistent\/lbvm\.yaml: config file not found/);
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'broken.yaml'), 'monitor:\n  interval: [\n');
    const syntax = problemsOf(() => loadConfig({ configPath: path.join(dir, 'broken.yaml'), env: {} }));
    assert.match(syntax[0]!, /broken\.yaml:\d+:\d+: YAML syntax error/);
  });

  it('redacts passwords in URLs and secret keys before anything logs the config', () => {
    const { config } = loadConfig({ env: { LBVM_REDIS_URL: 'redis://:hunter2@db:6379', LBVM_STORE_URL: 'influx://lbvm:s3cret@influx:8086/lbvm' }, cwd: tmpDir() });
    const shown = JSON.stringify(redactConfig(config));
    assert.ok(!shown.includes('hunter2') && !shown.includes('s3cret'), shown);
    assert.match(shown, /redis:\/\/:\*\*\*@db:6379/);
    assert.match(shown, /influx:\/\/lbvm:\*\*\*@influx:8086\/lbvm/);
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

  it('`lbvm config --json` prints the effective config with secrets redacted', async () => {
    const result = await runCli('lbvm', ['config', '--json'], { cwd: tmpDir(), env: cleanEnv({ LBVM_REDIS_URL: 'redis://:topsecret@127.0.0.1:6379' }) });
    assert.equal(result.code, 0, result.stderr);
    const shown = JSON.parse(result.stdout) as { config: { redis: { url: string } } };
    assert.equal(shown.config.redis.url, 'redis://:***@127.0.0.1:6379');
    assert.ok(!result.stdout.includes('topsecret'));
  });
});

describe('deploy/lbvm.example.yaml', () => {
  it('is a valid config that names every key', async () => {
    const { ROOT } = await import('../helpers/cli.ts');
    const file = path.join(ROOT, 'deploy/lbvm.example.yaml');
    assert.doesNotThrow(() => loadConfig({ configPath: file, env: {} }));
    const text = fs.readFileSync(file, 'utf8');
    const missing = [...envKeys().values()].filter((keyPath) => !new RegExp(`^\\s*#?\\s*${keyPath[keyPath.length - 1]}:`, 'm').test(text) && !text.includes(`${keyPath[keyPath.length - 1]}:`));
    assert.deepEqual(missing, [], `keys not documented in the example: ${missing.map((p) => p.join('.')).join(', ')}`);
  });
});
