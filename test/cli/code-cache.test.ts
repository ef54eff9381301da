/**
 * bin/code-cache.js: `lbvm` and `lbm` run their bundle with the V8 code cache an earlier run of the
 * same command wrote. Real processes from the built bundle (deploy/build.sh first), each with its own
 * cache folder; LBVM_CODE_CACHE_DEBUG=1 has each say on stderr what it did with the cache.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { ROOT, cleanEnv, runCli } from '../helpers/cli.ts';
import { spawnTracked, waitFor } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
// @ts-expect-error bin/entry.js is plain JavaScript without types
import { compiledIsFresh as entryCompiledIsFresh } from '../../bin/entry.js';

const run = promisify(execFile);
const compiledIsFresh = entryCompiledIsFresh as () => boolean;

/** What each `code cache:` line of stderr says: `none`, `written`, `accepted`, `rejected`, `not`, `off`. */
function said(stderr: string): string[] {
  return [...stderr.matchAll(/^code cache: (\w+)/gm)].map((match) => match[1]!);
}

/** The cache files in `dir` (no temporary ones are expected). */
function files(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

function cli(tool: 'lbvm' | 'lbm', args: string[], cacheDir: string, env: Record<string, string> = {}) {
  return runCli(tool, args, {
    env: cleanEnv({ LBVM_CACHE_DIR: cacheDir, LBVM_CODE_CACHE_DEBUG: '1', ...env }),
    cwd: tmpDir(),
  });
}

describe('code cache of the bundled commands', () => {
  let redis: RedisServer;
  let configFile: string;
  /** `lbvm config --json` without any cache: what every run below must print. */
  let expected: string;

  before(async () => {
    await run('bash', [path.join(ROOT, 'deploy', 'build.sh')], { cwd: ROOT, timeout: 300_000 });
    assert.ok(compiledIsFresh(), 'dist/ is older than the sources after deploy/build.sh: the bundle would not run');
    redis = await startRedis();
    const dir = tmpDir('lbvm-code-cache-');
    configFile = path.join(dir, 'lbvm.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        redis: { url: redis.url, prefix: 'cc' },
        store: { url: `files:${path.join(dir, 'samples')}` },
        monitor: { interval: '1s', listen: '127.0.0.1:0' },
        log: { level: 'info', format: 'json' },
      }),
    );
    const plain = await cli('lbvm', ['config', '--json', '--config', configFile], tmpDir(), { LBVM_CODE_CACHE: '0' });
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(said(plain.stderr), ['off']);
    expected = plain.stdout;
  });
  after(async () => {
    await redis?.stop();
  });

  const config = (dir: string, env: Record<string, string> = {}) =>
    cli('lbvm', ['config', '--json', '--config', configFile], dir, env);

  it('makes a private folder, writes a file for the command, and the next run takes it', async () => {
    // Two levels missing, as ~/.cache/lbvm on a new account.
    const dir = path.join(tmpDir(), 'cache', 'lbvm');
    const first = await config(dir);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, expected);
    assert.deepEqual(said(first.stderr), ['none', 'written'], first.stderr);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    const [file, ...others] = files(dir);
    assert.match(file ?? '', /^lbvm-\w{12}-\w{24}-config\.v8$/);
    assert.deepEqual(others, []);
    assert.equal(fs.statSync(path.join(dir, file!)).mode & 0o777, 0o600);
    const writtenMs = fs.statSync(path.join(dir, file!)).mtimeMs;

    const second = await config(dir);
    assert.equal(second.stdout, expected);
    assert.deepEqual(said(second.stderr), ['accepted'], second.stderr);
    assert.deepEqual(files(dir), [file]);
    assert.equal(fs.statSync(path.join(dir, file!)).mtimeMs, writtenMs);
    // Another command gets its own file; a run without a known command shares `main`.
    const version = await cli('lbvm', ['--version'], dir);
    assert.deepEqual(said(version.stderr), ['none', 'written'], version.stderr);
    assert.deepEqual(
      files(dir).map((name) => name.replace(/-\w+-\w+-/, '-')),
      ['lbvm-config.v8', 'lbvm-main.v8'],
    );
    // Quiet unless asked.
    const quiet = await cli('lbvm', ['config', '--json', '--config', configFile], dir, { LBVM_CODE_CACHE_DEBUG: '' });
    assert.equal(quiet.stdout, expected);
    assert.equal(quiet.stderr, '');
  });

  it("lbm's explicit end after a command (status against Redis) writes the command's file", async () => {
    const dir = path.join(tmpDir(), 'lbvm');
    const first = await cli('lbm', ['status', '--json', '--config', configFile], dir);
    assert.equal(first.code, 0, first.stderr);
    assert.deepEqual((JSON.parse(first.stdout) as { hosts: unknown[] }).hosts, []);
    assert.deepEqual(said(first.stderr), ['none', 'written'], first.stderr);
    assert.match(files(dir).join(), /^lbm-\w+-\w+-status\.v8$/);
    const second = await cli('lbm', ['status', '--json', '--config', configFile], dir);
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(said(second.stderr), ['accepted'], second.stderr);
  });

  it('a corrupt file, or one of the other bundle, changes nothing in the output and is replaced', async () => {
    const dir = path.join(tmpDir(), 'lbvm');
    await config(dir);
    const [file] = files(dir);
    const full = path.join(dir, file!);
    const corrupt = Buffer.alloc(fs.statSync(full).size, 0x5a);
    fs.writeFileSync(full, corrupt);
    const rejected = await config(dir);
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.equal(rejected.stdout, expected);
    assert.deepEqual(said(rejected.stderr), ['rejected', 'written'], rejected.stderr);
    assert.notDeepEqual(fs.readFileSync(full), corrupt);
    assert.deepEqual(said((await config(dir)).stderr), ['accepted']);

    // `lbm --version`'s cache, of another source, put where lbvm config looks.
    const lbmDir = path.join(tmpDir(), 'lbvm');
    await cli('lbm', ['--version'], lbmDir);
    fs.copyFileSync(path.join(lbmDir, files(lbmDir)[0]!), full);
    const other = await config(dir);
    assert.equal(other.stdout, expected);
    assert.deepEqual(said(other.stderr), ['rejected', 'written'], other.stderr);
    assert.deepEqual(said((await config(dir)).stderr), ['accepted']);

    fs.writeFileSync(full, 'short');
    const truncated = await config(dir);
    assert.equal(truncated.stdout, expected);
    assert.deepEqual(said(truncated.stderr), ['rejected', 'written'], truncated.stderr);
  });

  it("writing removes this bundle's other builds and keeps everything else", async () => {
    const dir = path.join(tmpDir(), 'lbvm');
    await config(dir);
    const [file] = files(dir);
    const [, slot, build] = /^lbvm-(\w+)-(\w+)-config\.v8$/.exec(file!)!;
    const oldBuild = `lbvm-${slot}-${'0'.repeat(24)}-config.v8`;
    const otherSlot = `lbvm-${'1'.repeat(12)}-${build}-config.v8`;
    for (const name of [oldBuild, otherSlot, 'notes.txt']) fs.writeFileSync(path.join(dir, name), 'x');
    fs.rmSync(path.join(dir, file!));
    const again = await config(dir);
    assert.deepEqual(said(again.stderr), ['none', 'written'], again.stderr);
    assert.deepEqual(files(dir), [file, otherSlot, 'notes.txt'].sort());
  });

  it('a folder writable by others, or owned by another user, is not used', async () => {
    const open = path.join(tmpDir(), 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    const result = await config(open);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, expected);
    assert.match(result.stderr, /code cache: not used: .*open is writable by group or others \(mode 777\)/);
    assert.deepEqual(files(open), []);

    // As root: a folder given to nobody. Otherwise: / (root's).
    let foreign = '/';
    if (process.getuid!() === 0) {
      foreign = path.join(tmpDir(), 'foreign');
      fs.mkdirSync(foreign, { mode: 0o700 });
      fs.chownSync(foreign, 65534, 65534);
    }
    const refused = await config(foreign);
    assert.equal(refused.stdout, expected);
    assert.match(refused.stderr, /code cache: not used: .* is owned by uid \d+, not \d+/);
    if (foreign !== '/') assert.deepEqual(files(foreign), []);
  });

  it("LBVM_CODE_CACHE=0 turns it off; else LBVM_CACHE_DIR, systemd's $CACHE_DIRECTORY, $XDG_CACHE_HOME/lbvm, ~/.cache/lbvm", async () => {
    const off = path.join(tmpDir(), 'lbvm');
    const result = await config(off, { LBVM_CODE_CACHE: '0' });
    assert.equal(result.stdout, expected);
    assert.deepEqual(said(result.stderr), ['off']);
    assert.ok(!fs.existsSync(off));

    const xdg = tmpDir();
    const unitCache = path.join(tmpDir(), 'lbvm');
    await config('', { LBVM_CACHE_DIR: '', CACHE_DIRECTORY: unitCache, XDG_CACHE_HOME: xdg });
    assert.equal(files(unitCache).length, 1);
    assert.ok(!fs.existsSync(path.join(xdg, 'lbvm')));
    await config('', { LBVM_CACHE_DIR: '', CACHE_DIRECTORY: '', XDG_CACHE_HOME: xdg });
    assert.equal(files(path.join(xdg, 'lbvm')).length, 1);
    const home = tmpDir();
    await config('', { LBVM_CACHE_DIR: '', CACHE_DIRECTORY: '', XDG_CACHE_HOME: '', HOME: home });
    assert.equal(files(path.join(home, '.cache', 'lbvm')).length, 1);
  });

  it('six processes started at once on an empty folder all answer, and leave one whole file', async () => {
    const dir = path.join(tmpDir(), 'lbvm');
    const results = await Promise.all(Array.from({ length: 6 }, () => config(dir)));
    for (const result of results) {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, expected);
    }
    assert.equal(files(dir).length, 1, files(dir).join(', '));
    assert.deepEqual(said((await config(dir)).stderr), ['accepted']);
  });

  it('a daemon stopped by SIGTERM (lbvm monitor) exits as before and writes its file', async () => {
    const dir = path.join(tmpDir(), 'lbvm');
    const monitor = spawnTracked(
      process.execPath,
      [path.join(ROOT, 'bin', 'lbvm.js'), 'monitor', '--config', configFile],
      {
        env: cleanEnv({ LBVM_CACHE_DIR: dir, LBVM_CODE_CACHE_DEBUG: '1' }),
        cwd: tmpDir(),
      },
    );
    await waitFor('the monitor finishes a round', () => /"msg":"round /.test(monitor.output()), { process: monitor });
    await monitor.stop(20_000);
    const { code, signal } = await monitor.exited;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, monitor.output().slice(-3000));
    assert.match(monitor.output(), /code cache: written .*lbvm-\w+-\w+-monitor\.v8/);
    assert.match(files(dir).join(), /^lbvm-\w+-\w+-monitor\.v8$/);
  });
});
