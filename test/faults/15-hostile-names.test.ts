/**
 * Fault 15: hostile names: a VM or host named `x; rm -rf /`, `$(reboot)`, `../../etc`, 10 KB long,
 * with terminal escape sequences, a newline, or bytes that are not UTF-8. What must hold: passed as
 * plain arguments everywhere (nothing runs), stored and shown safely (no control character reaches the
 * terminal, a name stays on its line, a 10 KB name does not wreck a table), no file written outside
 * the store. From the collector through the files store to `lbm`'s text and JSON, and a manual move
 * of such a VM to such a host through the real queue and worker (sim driver). The QEMU side (names
 * never on QEMU's command line) is test/agent/agent.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import YAML from 'yaml';
import { FilesStore } from '../../src/store/index.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { simClusterFixture, simVm } from '../monitor/sim-cluster.ts';
import { hostSample, readWindow, vmSample } from '../store/builders.ts';

const T0 = Date.UTC(2026, 0, 10, 23, 30);

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
}

/** Characters a terminal acts on (C0 but newline, DEL, C1, bidi overrides). */
// eslint-disable-next-line no-control-regex
const TERMINAL_CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe('fault 15: hostile VM and host names', () => {
  const fixture = simClusterFixture();

  it('the files store keeps hostile host and VM names inside its folder (encoded file names under 255 bytes) and gives them back unchanged', async () => {
    const base = tmpDir();
    const dir = path.join(base, 'store');
    const store = new FilesStore({ dir, retentionMs: 14 * 86_400_000 });
    const hostile = [
      'x; rm -rf /',
      '$(reboot)',
      '../../etc',
      '..',
      '.hidden',
      'a/b\\c',
      'n'.repeat(10_240),
      'caf\u00e9-\ud800-\udfff',
      'tab\tnew\nline',
    ];
    await store.writeSamples(hostile.flatMap((name) => [hostSample(name, T0), vmSample(name, name, T0)]));
    const files = filesUnder(base);
    assert.equal(files.length, hostile.length);
    for (const file of files) {
      assert.ok(path.resolve(file).startsWith(`${dir}${path.sep}`), `${file} is outside the store`);
      assert.ok(Buffer.byteLength(path.basename(file)) <= 255, `${path.basename(file).length}-byte file name`);
    }
    const { samples } = await readWindow(store, { fromMs: T0, toMs: T0, nowMs: T0 });
    assert.deepEqual(new Set(samples.map((sample) => sample.host)), new Set(hostile));
    assert.deepEqual(new Set(samples.flatMap((sample) => (sample.kind === 'vm' ? [sample.vm] : []))), new Set(hostile));
    const only = await readWindow(store, { fromMs: T0, toMs: T0, hosts: ['../../etc'], nowMs: T0 });
    assert.deepEqual(
      only.samples.map((sample) => sample.host),
      ['../../etc', '../../etc'],
    );
    assert.deepEqual(new Set((await store.lastSampleTimes({ nowMs: T0 })).keys()), new Set(hostile));
  });

  it('from the collector through the store to lbm: shown safely, moved by hand as plain data, nothing written outside the store', async () => {
    const marker = path.join(tmpDir(), 'pwned');
    const longHost = `h${'n'.repeat(10_240)}`;
    const hosts = [
      'h1',
      '../../etc',
      `x; rm -rf ${path.dirname(marker)}; touch ${marker}`,
      'h\u001b]0;pwned\u0007\u001b[2J',
      longHost,
    ];
    const vmNames = [
      `$(touch ${marker})`,
      '`reboot`',
      '../../etc/passwd',
      'red\u001b[31m\u009b2J',
      'vm\nh9  up  fake line',
      '\u202eevil',
      `v${'x'.repeat(10_240)}`,
    ];
    const c = await fixture.cluster({ hosts, vms: vmNames.map((name) => simVm(name, 0.1)), worker: true });
    await c.collect();
    // A collector on another machine wrote a VM name that is not UTF-8 (raw bytes 0xff 0xfe).
    const store = c.store as FilesStore;
    const h1File = store.fileFor('h1', Date.now());
    const line = Buffer.from(`${JSON.stringify(vmSample('bad-@@', 'h1', Date.now()))}\n`, 'utf8');
    const at = line.indexOf('@@');
    line[at] = 0xff;
    line[at + 1] = 0xfe;
    fs.appendFileSync(h1File, line);

    const configFile = path.join(c.dir, 'lbm.yaml');
    fs.writeFileSync(
      configFile,
      YAML.stringify({
        redis: { url: fixture.redisUrl(), prefix: c.config.redis.prefix },
        store: { url: c.config.store.url, spoolDir: c.config.store.spoolDir },
        monitor: { interval: '1m', window: '10m' },
        limits: { cooldown: '1s' },
        migration: { slotWait: '200ms' },
      }),
    );
    const lbm = async (...args: string[]) => {
      const result = await runCli('lbm', [...args, '--config', configFile], { env: cleanEnv() });
      assert.equal(result.code, 0, `lbm ${args.join(' ')}: ${result.stderr}`);
      return result;
    };
    const [status, hostsText, vmsText, vmsJson] = await Promise.all([
      lbm('status'),
      lbm('hosts'),
      lbm('vms'),
      lbm('vms', '--json'),
    ]);
    for (const result of [status, hostsText, vmsText]) {
      assert.doesNotMatch(
        result.stdout + result.stderr,
        TERMINAL_CONTROLS,
        `a control character reached the terminal:\n${JSON.stringify(result.stdout)}`,
      );
      assert.doesNotMatch(result.stdout, /^h9  up  fake line/m, 'a name broke out of its line');
      for (const text of result.stdout.split('\n')) assert.ok(text.length < 400, `a ${text.length}-character line`);
    }
    assert.ok(hostsText.stdout.includes('h\\u001b]0;pwned\\u0007\\u001b[2J'), hostsText.stdout);
    assert.ok(hostsText.stdout.includes('../../etc'));
    assert.match(hostsText.stdout, /^hnnnn.*…\(10241 chars\)/m);
    assert.ok(vmsText.stdout.includes('vm\\u000ah9  up  fake line'), vmsText.stdout);
    assert.ok(vmsText.stdout.includes('red\\u001b[31m\\u009b2J'));
    assert.ok(vmsText.stdout.includes('bad-\ufffd\ufffd'), 'bytes that are not UTF-8 are shown as U+FFFD');
    // JSON gives every name back exactly (and is valid JSON with the controls escaped).
    assert.doesNotMatch(vmsJson.stdout, TERMINAL_CONTROLS);
    const listed = (JSON.parse(vmsJson.stdout) as { vms: { vm: string; host: string }[] }).vms;
    assert.deepEqual(new Set(listed.map((vm) => vm.vm)), new Set([...vmNames, 'bad-\ufffd\ufffd']));

    // A manual move of a VM named like a command to a host named like a path: plain data all the way.
    const moved = await lbm('migrate', vmNames[0]!, '../../etc', '--wait');
    assert.match(moved.stdout, /^done: \$\(touch .*\) h1 → \.\.\/\.\.\/etc in /m);
    assert.equal(await c.driver.locate(vmNames[0]!), '../../etc');
    const toLong = await lbm('migrate', vmNames[3]!, longHost, '--wait');
    assert.doesNotMatch(toLong.stdout + toLong.stderr, TERMINAL_CONTROLS);
    assert.equal(await c.driver.locate(vmNames[3]!), longHost);
    await c.collect();
    const after = JSON.parse((await lbm('vms', '--json')).stdout) as { vms: { vm: string; host: string }[] };
    assert.equal(after.vms.find((vm) => vm.vm === vmNames[0])?.host, '../../etc');

    assert.ok(!fs.existsSync(marker), 'a command in a name ran');
    assert.ok(fs.existsSync(path.dirname(marker)), 'the folder named in a host name is still there');
    const samples = path.join(c.dir, 'samples');
    for (const file of filesUnder(c.dir)) {
      const inside =
        file.startsWith(`${samples}${path.sep}`) ||
        file.startsWith(`${c.config.store.spoolDir}${path.sep}`) ||
        file === c.config.collect.stateFile ||
        file === configFile;
      assert.ok(inside, `${file} was written outside the store`);
      assert.ok(
        Buffer.byteLength(path.basename(file)) <= 255,
        `a ${Buffer.byteLength(path.basename(file))}-byte file name`,
      );
    }
    assert.deepEqual(
      fs.readdirSync(path.dirname(c.dir)).filter((name) => name === 'etc'),
      [],
      'nothing next to the cluster folder',
    );
  });
});
