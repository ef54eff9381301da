/** The configuration: defaults, file and environment, env names, redaction. Its errors are fault 13 (test/faults/13-config-errors.test.ts). */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { envKeys, loadConfig, redactConfig } from '../../src/config/index.ts';
import { ConfigError } from '../../src/errors.ts';
import { makeClusterCerts } from '../../src/util/certs.ts';
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

  it('reads ./lbvm.yaml, and LBVM_* variables override its keys; an empty one counts as unset', () => {
    const dir = tmpDir();
    fs.writeFileSync(
      path.join(dir, 'lbvm.yaml'),
      'monitor:\n  interval: 30s\n  mode: report\nstore:\n  spoolMaxBytes: 8MiB\n',
    );
    const { config, file } = loadConfig({
      env: {
        LBVM_MONITOR_MODE: 'enforce',
        LBVM_LIMITS_MOVES_PER_ROUND: '3',
        LBVM_STORE_SPOOL_MAX_BYTES: '',
        LBVM_REDIS_SENTINEL_PASSWORD: ' ',
      },
      cwd: dir,
    });
    assert.equal(config.redis.sentinelPassword, '');
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
    const { config } = loadConfig({
      env: { LBVM_REDIS_URL: 'redis://:hunter2@db:6379', LBVM_STORE_URL: 'influx://lbvm:s3cret@influx:8086/lbvm' },
      cwd: tmpDir(),
    });
    const shown = JSON.stringify(redactConfig(config));
    assert.ok(!shown.includes('hunter2') && !shown.includes('s3cret'), shown);
    assert.match(shown, /redis:\/\/:\*\*\*@db:6379/);
    assert.match(shown, /influx:\/\/lbvm:\*\*\*@influx:8086\/lbvm/);
  });

  it('Redis Sentinel: redis.sentinels (a list, or one string with commas) and redis.name; a bad entry or a missing name stops at start naming it', async () => {
    const { config } = loadConfig({
      env: {
        LBVM_REDIS_SENTINELS: '10.0.0.1:26379, [fd00::2]:26379,s3:26380',
        LBVM_REDIS_NAME: 'lbvm',
        LBVM_REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      },
      cwd: tmpDir(),
    });
    assert.deepEqual(config.redis.sentinels, ['10.0.0.1:26379', '[fd00::2]:26379', 's3:26380']);
    assert.equal(config.redis.name, 'lbvm');
    assert.ok(!JSON.stringify(redactConfig(config)).includes('sentinel-secret'), "the sentinels' password is redacted");
    const problems = (env: Record<string, string>): string[] => {
      try {
        loadConfig({ env, cwd: tmpDir() });
        return [];
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return error.problems;
      }
    };
    assert.deepEqual(problems({ LBVM_REDIS_SENTINELS: '[h1:26379, h2, "h3:99999"]', LBVM_REDIS_NAME: 'm' }), [
      'LBVM_REDIS_SENTINELS: redis.sentinels: ["h1:26379","h2","h3:99999"]: expected a sentinel address host:port, like 10.0.0.1:26379 or [fd00::1]:26379; not one: "h2", "h3:99999"',
    ]);
    assert.match(
      problems({ LBVM_REDIS_SENTINELS: 'h1:26379' }).join('\n'),
      /^\.\/lbvm\.yaml: redis\.name: \(missing\): expected the master's name as the sentinels know it/,
    );
    assert.match(problems({ LBVM_REDIS_NAME: 'm' }).join('\n'), /redis\.sentinels: .*expected a list of sentinels/);
    // The command: exit 2, the entry named, no stack.
    const result = await runCli('lbvm', ['config'], {
      cwd: tmpDir(),
      env: cleanEnv({ LBVM_REDIS_SENTINELS: 'h1:26379,h2:x', LBVM_REDIS_NAME: 'm' }),
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /redis\.sentinels: "h1:26379,h2:x": .*not one: "h2:x"/);
    assert.doesNotMatch(result.stderr, /    at /);
  });

  it('power curves: a list of watts or a known model; a falling or empty curve, or an unknown name, stops at start naming the key', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'lbvm.yaml'), 'power:\n  hosts:\n    n1: hp-ml110-g4\n    n2: [60, 140]\n');
    const { config } = loadConfig({ env: {}, cwd: dir });
    assert.equal(config.power.hosts.n1!.length, 11);
    assert.deepEqual(config.power.hosts.n2, [60, 140]);
    fs.writeFileSync(path.join(dir, 'lbvm.yaml'), 'power:\n  hosts:\n    n1: [120, 90]\n    n2: []\n');
    assert.throws(
      () => loadConfig({ env: { LBVM_POWER_DEFAULT: 'fast' }, cwd: dir }),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.exitCode === 2 &&
        /power\.hosts\.n1: \[120,90\]: expected watts that never fall .*90 at 100% is below 120/.test(error.message) &&
        /power\.hosts\.n2: \[\]: expected at least two watt values/.test(error.message) &&
        /LBVM_POWER_DEFAULT: power\.default: "fast": expected watts at evenly spaced CPU use .* or one of: hp-ml110-g4, hp-ml110-g5/.test(
          error.message,
        ),
    );
  });

  it('`lbvm config --json` prints the effective config with secrets redacted', async () => {
    const result = await runCli('lbvm', ['config', '--json'], {
      cwd: tmpDir(),
      env: cleanEnv({ LBVM_REDIS_URL: 'redis://:topsecret@127.0.0.1:6379' }),
    });
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
    const missing = [...envKeys().values()].filter(
      (keyPath) =>
        !new RegExp(`^\\s*#?\\s*${keyPath[keyPath.length - 1]}:`, 'm').test(text) &&
        !text.includes(`${keyPath[keyPath.length - 1]}:`),
    );
    assert.deepEqual(missing, [], `keys not documented in the example: ${missing.map((p) => p.join('.')).join(', ')}`);
  });
});

describe('tls', () => {
  it('checks the files at start, all at once: missing, not PEM, a key others can read, a key of another certificate, another CA', async () => {
    const dir = tmpDir('lbvm-config-tls-');
    const certs = await makeClusterCerts(path.join(dir, 'cluster'), { agents: { n1: ['10.0.0.1'], n2: ['10.0.0.2'] } });
    const other = await makeClusterCerts(path.join(dir, 'other'), { agents: { n1: ['10.0.0.1'] } });
    const n1 = certs.files('n1');
    const { config } = loadConfig({
      env: { LBVM_TLS_CA: certs.ca, LBVM_TLS_CERT: n1.cert, LBVM_TLS_KEY: n1.key },
      cwd: dir,
    });
    assert.deepEqual(config.tls, { ca: certs.ca, cert: n1.cert, key: n1.key, migration: true });
    const problems = (env: Record<string, string>): string[] => {
      try {
        loadConfig({ env, cwd: dir });
        return [];
      } catch (error) {
        assert.ok(error instanceof ConfigError);
        return error.problems;
      }
    };
    const readable = path.join(dir, 'readable-key.pem');
    fs.copyFileSync(n1.key, readable);
    fs.chmodSync(readable, 0o644);
    assert.deepEqual(
      problems({ LBVM_TLS_CA: path.join(dir, 'none.pem'), LBVM_TLS_CERT: n1.key, LBVM_TLS_KEY: readable }),
      [
        `LBVM_TLS_CA: tls.ca: "${dir}/none.pem": expected a readable PEM certificate file (no such file)`,
        `LBVM_TLS_CERT: tls.cert: "${n1.key}": expected a PEM certificate file (-----BEGIN CERTIFICATE-----); none found in it`,
        `LBVM_TLS_KEY: tls.key: "${readable}": expected a private key only its owner (and group) can read, mode 0600 or 0640; ` +
          `mode 0644 lets every user read it (chmod 600 ${readable})`,
      ],
    );
    const mixed = problems({ LBVM_TLS_CA: other.ca, LBVM_TLS_CERT: n1.cert, LBVM_TLS_KEY: certs.files('n2').key });
    assert.equal(mixed.length, 2, mixed.join('\n'));
    assert.match(
      mixed[0]!,
      /^LBVM_TLS_KEY: tls\.key: .*n2-key\.pem": expected the private key of the certificate .*n1\.pem \(O=LBVM, CN=n1\); this is another key$/,
    );
    assert.match(
      mixed[1]!,
      /^LBVM_TLS_CERT: tls\.cert: .*n1\.pem": expected a certificate signed by the CA in .*other\/ca\.pem; its issuer is O=LBVM, CN=LBVM cluster CA/,
    );
    const alone = problems({ LBVM_TLS_CERT: n1.cert });
    assert.equal(alone.length, 2, alone.join('\n'));
    assert.ok(
      alone.some((line) =>
        /tls\.key: \(missing\): expected the private key of the certificate .*n1\.pem too/.test(line),
      ),
    );
    assert.ok(alone.some((line) => /tls\.ca: \(missing\): expected the CA file too/.test(line)));
    // The command: exit 2, every problem named, no stack.
    const result = await runCli('lbvm', ['config'], {
      cwd: dir,
      env: cleanEnv({ LBVM_TLS_CA: path.join(dir, 'none.pem') }),
    });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /tls\.ca: ".*none\.pem": expected a readable PEM certificate file \(no such file\)/);
    assert.doesNotMatch(result.stderr, /    at /);
  });
});
