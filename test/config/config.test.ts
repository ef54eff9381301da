/** The configuration: defaults, file and environment, env names, redaction. Its errors are fault 13 (test/faults/13-config-errors.test.ts). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { envKeys, loadConfig, redactConfig } from '../../src/config/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { tmpDir } from '../helpers/tmp.ts';

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




  it('redacts passwords in URLs and secret keys before anything logs the config', () => {
    const { config } = loadConfig({ env: { LBVM_REDIS_URL: 'redis://:hunter2@db:6379', LBVM_STORE_URL: 'influx://lbvm:s3cret@influx:8086/lbvm' }, cwd: tmpDir() });
    const shown = JSON.stringify(redactConfig(config));
    assert.ok(!shown.includes('hunter2') && !shown.includes('s3cret'), shown);
    assert.match(shown, /redis:\/\/:\*\*\*@db:6379/);
    assert.match(shown, /influx:\/\/lbvm:\*\*\*@influx:8086\/lbvm/);
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
