/**
 * Loggers load pino on their first line at an enabled level: a cron `lbvm collect` round with
 * nothing to warn about never pays for it. Each case runs in a fresh process (pino must not be
 * loaded yet) and reads what the logger wrote to stderr, as an operator's journal would.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs `body` (with `createLogger`, `pinoLoaded()` in scope) and returns its stdout and stderr lines. */
function run(body: string): { stdout: string; lines: Record<string, unknown>[] } {
  const script = `
    import { createRequire } from 'node:module';
    import { createLogger } from './src/log.ts';
    const require = createRequire(import.meta.url);
    const pinoLoaded = () => Object.keys(require.cache).some((file) => file.includes('/node_modules/pino/'));
    ${body}`;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(result.status, 0, result.stderr);
  const lines = result.stderr
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stdout: result.stdout, lines };
}

describe('logger', () => {
  it('writes nothing and loads no pino while every line is below its level', () => {
    const { stdout, lines } = run(`
      const log = createLogger({ level: 'info', format: 'json', name: 'collect' });
      log.debug({ vms: 3 }, 'collected');
      log.child({ job: 1 }).trace('step');
      process.stdout.write(JSON.stringify({ loaded: pinoLoaded(), level: log.level, debug: log.isLevelEnabled('debug'), warn: log.isLevelEnabled('warn') }));`);
    assert.deepEqual(JSON.parse(stdout), { loaded: false, level: 'info', debug: false, warn: true });
    assert.deepEqual(lines, []);
  });

  it('writes the first enabled line (and every later one) as pino JSON, with children bindings and secrets redacted', () => {
    const { stdout, lines } = run(`
      const log = createLogger({ level: 'info', format: 'json', name: 'worker' });
      const job = log.child({ jobId: '7', vm: 'web-1' });
      log.debug('not shown');
      job.warn({ redis: { password: 'hunter2' } }, 'redis away');
      log.info('after');
      log.debug('still not shown');
      process.stdout.write(JSON.stringify({ loaded: pinoLoaded() }));`);
    assert.deepEqual(JSON.parse(stdout), { loaded: true });
    assert.deepEqual(
      lines.map((line) => [line.level, line.name, line.jobId, line.msg]),
      [
        [40, 'worker', '7', 'redis away'],
        [30, 'worker', undefined, 'after'],
      ],
    );
    assert.deepEqual(lines[0]!.redis, { password: '***' });
  });

  it('a silent logger writes nothing; a level pino does not know is refused at once', () => {
    const { lines } = run(`
      createLogger({ level: 'silent', format: 'json' }).fatal('never');
      let refused = '';
      try { createLogger({ level: 'loud', format: 'json' }); } catch (error) { refused = error.message; }
      console.error(JSON.stringify({ refused }));`);
    assert.equal(lines.length, 1);
    assert.match(String(lines[0]!.refused), /loud/);
  });
});
