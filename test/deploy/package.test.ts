/**
 * The package an operator installs: `npm pack` (its prepack builds the bundle) gives a tarball whose
 * `lbvm` and `lbm` run from the compiled bundle with the production dependencies alone (pino; no tsx,
 * no TypeScript, no sources), installed into an empty prefix as the README's deployment steps say.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { cleanEnv, ROOT } from '../helpers/cli.ts';
import { influxQuery, startInflux } from '../helpers/influx.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';

const run = promisify(execFile);

interface Packed {
  filename: string;
  files: { path: string }[];
}

describe('npm pack, then npm install -g --prefix DIR', () => {
  let packed: Packed;
  let prefix: string;
  let redis: RedisServer;
  let cacheDir: string;
  const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

  /** Runs an installed command from a folder outside the clone, with a PATH that has node and nothing of ours. */
  async function installed(tool: 'lbvm' | 'lbm', args: string[], cwd: string) {
    try {
      const { stdout, stderr } = await run(path.join(prefix, 'bin', tool), args, {
        cwd,
        env: cleanEnv({
          PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`,
          NODE_PATH: '',
          LBVM_CACHE_DIR: cacheDir,
          LBVM_CODE_CACHE_DEBUG: '1',
        }),
        timeout: 60_000,
      });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? 1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? String(error) };
    }
  }

  before(async () => {
    const out = tmpDir('lbvm-pack-');
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', out], {
      cwd: ROOT,
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    packed = (JSON.parse(stdout) as Packed[])[0]!;
    prefix = path.join(tmpDir('lbvm-prefix-'), 'opt');
    // --prefer-offline: npm ci (deploy/setup.sh) left the production dependencies in npm's cache.
    await run(
      'npm',
      [
        'install',
        '-g',
        '--prefix',
        prefix,
        path.join(out, packed.filename),
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
      ],
      { cwd: out, timeout: 300_000 },
    );
    redis = await startRedis();
    cacheDir = path.join(tmpDir('lbvm-code-cache-'), 'lbvm');
  });
  after(async () => {
    await redis?.stop();
  });

  it('packs the bundle, the launchers and the deployment files, and no TypeScript source', () => {
    const files = packed.files.map((file) => file.path);
    const launchers = ['bin/lbvm.js', 'bin/lbm.js', 'bin/entry.js', 'bin/code-cache.js'];
    for (const file of [...launchers, 'dist/bundle/lbvm.cjs', 'dist/bundle/lbm.cjs']) {
      assert.ok(files.includes(file), `${file} is not in the package: ${files.join(', ')}`);
    }
    assert.ok(files.includes('deploy/systemd/lbvm-monitor.service') && files.includes('deploy/lbvm.example.yaml'));
    assert.deepEqual(
      files.filter((file) => file.endsWith('.ts') || file.startsWith('src/') || file.startsWith('test/')),
      [],
    );
  });

  it('installs with the production dependencies alone: pino and influx, no tsx, esbuild or TypeScript', () => {
    const modules = path.join(prefix, 'lib', 'node_modules', 'lbvm', 'node_modules');
    for (const dev of ['tsx', 'esbuild', 'typescript', 'prettier', 'bullmq', 'ioredis']) {
      assert.ok(!fs.existsSync(path.join(modules, dev)), `${dev} was installed`);
    }
    for (const kept of ['pino', 'influx'])
      assert.ok(fs.existsSync(path.join(modules, kept)), `${kept}, left out of the bundle, was not installed`);
    assert.ok(!fs.existsSync(path.join(prefix, 'lib', 'node_modules', 'lbvm', 'src')));
  });

  it('lbvm --version, lbm --help and lbvm config run from the bundle', async () => {
    const cwd = tmpDir();
    const versionResult = await installed('lbvm', ['--version'], cwd);
    assert.equal(versionResult.code, 0, versionResult.stderr);
    assert.equal(versionResult.stdout.trim(), version);
    // The installed bundle keeps its code cache too: written by the first run, taken by the next.
    assert.match(versionResult.stderr, /code cache: written .*lbvm-\w+-\w+-main\.v8/);
    const again = await installed('lbvm', ['--version'], cwd);
    assert.equal(again.stdout.trim(), version);
    assert.match(again.stderr, /code cache: accepted .*lbvm-\w+-\w+-main\.v8/);
    const help = await installed('lbm', ['--help'], cwd);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^ {2}plan\b/m);
    assert.match(help.stdout, /^ {2}migrate\b/m);
    const config = await installed('lbvm', ['config', '--json'], cwd);
    assert.equal(config.code, 0, config.stderr);
    const shown = JSON.parse(config.stdout) as { config: { limits: { movesPerRound: number } } };
    assert.equal(shown.config.limits.movesPerRound, 10);
    fs.writeFileSync(path.join(cwd, 'lbvm.yaml'), 'monitor:\n  interval: soon\n');
    const refused = await installed('lbvm', ['config'], cwd);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /monitor\.interval: "soon": expected a duration/);
  });

  it('a collect round writes the host sample to a files store and to InfluxDB, and lbm reads the queue in Redis', async () => {
    const cwd = tmpDir();
    const samples = path.join(cwd, 'samples');
    const collect = await installed('lbvm', ['collect', '--host-only', '--store', `files:${samples}`, '--json'], cwd);
    assert.equal(collect.code, 0, collect.stderr);
    const day = fs.readdirSync(samples).find((entry) => /^\d{4}-\d\d-\d\d$/.test(entry));
    assert.ok(day, `no day folder in ${samples}`);
    const lines = fs
      .readdirSync(path.join(samples, day))
      .flatMap((file) =>
        fs
          .readFileSync(path.join(samples, day, file), 'utf8')
          .trim()
          .split('\n'),
      )
      .map((line) => JSON.parse(line) as { kind: string; cpuCores: number });
    assert.ok(
      lines.some((sample) => sample.kind === 'host' && sample.cpuCores > 0),
      JSON.stringify(lines),
    );
    // An InfluxDB store too: its client (loaded when first used, outside the bundle) is installed with it.
    const influx = await startInflux();
    try {
      const written = await installed(
        'lbvm',
        ['collect', '--host-only', '--store', influx.storeUrl('lbvm_package'), '--json'],
        cwd,
      );
      assert.equal(written.code, 0, written.stderr);
      const answer = await influxQuery(
        influx,
        'lbvm_package',
        'SELECT count("cpuCores") FROM "lbvm_raw"."host_sample"',
      );
      assert.equal(answer.results[0]?.series?.[0]?.values[0]?.[1], 1, JSON.stringify(answer));
    } finally {
      await influx.stop();
    }
    // BullMQ and ioredis live in the bundle too: lbm jobs reads the (empty) queue.
    fs.writeFileSync(path.join(cwd, 'lbvm.yaml'), `redis:\n  url: ${redis.url}\nstore:\n  url: files:${samples}\n`);
    const jobs = await installed('lbm', ['jobs', '--json'], cwd);
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.deepEqual((JSON.parse(jobs.stdout) as { jobs: unknown[] }).jobs, []);
  });
});
