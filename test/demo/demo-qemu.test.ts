/**
 * The README's first command on real parts: the QEMU demo with real guests and live migrations on a
 * network of namespaces with TLS (`--netns`, root), with a short duration: the cluster's imbalance falls,
 * at least one live migration completes, no process it started is left behind, and (`ss -ltnp` in every
 * namespace while it runs) none of its processes listens on 0.0.0.0 or on an address it was not given.
 * @lane qemu: npm test runs this file in its QEMU lane (test/lanes.mjs).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { ROOT, cleanEnv } from '../helpers/cli.ts';
import { demoProcesses, demoTmp, lastJson } from '../helpers/demo.ts';
import { spawnTracked } from '../helpers/processes.ts';
import { tmpDir } from '../helpers/tmp.ts';

/** A listening TCP socket as `ss -ltnpH` shows it: its local address and port, and its processes. */
interface Listener {
  namespace: string;
  address: string;
  port: number;
  processes: { name: string; pid: number }[];
}

/** `ss -ltnpH` in the root namespace (no `namespace`) or in `namespace`. */
function listeners(namespace?: string): Listener[] {
  const argv = namespace ? ['ip', ['netns', 'exec', namespace, 'ss', '-ltnpH']] : ['ss', ['-ltnpH']];
  const out = execFileSync(argv[0] as string, argv[1] as string[], { encoding: 'utf8', stdio: 'pipe' });
  return out
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => {
      const local = line.trim().split(/\s+/)[3]!;
      const at = local.lastIndexOf(':');
      return {
        namespace: namespace ?? 'root',
        address: local
          .slice(0, at)
          .replace(/^\[|\]$/g, '')
          .replace(/%.*$/, ''),
        port: Number(local.slice(at + 1)),
        processes: [...line.matchAll(/\("([^"]+)",pid=(\d+)/g)].map((match) => ({
          name: match[1]!,
          pid: Number(match[2]),
        })),
      };
    });
}

/** Whether `pid` descends from `ancestor` (through /proc's parent links). */
function descendsFrom(pid: number, ancestor: number): boolean {
  for (let current = pid, hops = 0; current > 1 && hops < 64; hops++) {
    if (current === ancestor) return true;
    try {
      current = Number(fs.readFileSync(`/proc/${current}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
    } catch {
      return false;
    }
  }
  return false;
}

describe('npm run demo --netns (QEMU)', () => {
  it('with QEMU on namespaces (--netns, TLS): 6 real guests on 3 agent hosts balanced by live migration; nothing listens wider than told', async (t) => {
    const reportDir = tmpDir('lbvm-demo-report-');
    const tmp = demoTmp();
    const demo = spawnTracked(
      process.execPath,
      [path.join(ROOT, 'bin/lbvm.js'), 'demo', '--netns', '--json', '--duration', '150', '--report-dir', reportDir],
      { env: cleanEnv({ TMPDIR: tmp }) },
    );
    let stdout = '';
    demo.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    let exited = false;
    void demo.exited.then(() => (exited = true));
    // Every listening socket of the demo's processes, sampled every 300 ms while it runs: in the root
    // namespace those of its descendants, in its namespaces (lbvm-<its pid>-...) all of them.
    const demoPid = demo.child.pid!;
    const seen = new Map<string, Listener>();
    const ownAddress = new Map<string, string>();
    const deadline = Date.now() + 300_000;
    while (!exited && Date.now() < deadline) {
      const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
        .split('\n')
        .map((line) => line.split(' ')[0]!)
        .filter((name) => name.startsWith(`lbvm-${demoPid}-`));
      const found = listeners().filter((entry) => entry.processes.some((proc) => descendsFrom(proc.pid, demoPid)));
      for (const namespace of namespaces) {
        try {
          if (!ownAddress.has(namespace)) {
            const addr = execFileSync('ip', ['-n', namespace, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], {
              encoding: 'utf8',
              stdio: 'pipe',
            });
            const match = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(addr);
            if (match) ownAddress.set(namespace, match[1]!);
          }
          found.push(...listeners(namespace));
        } catch {
          /* made or removed meanwhile */
        }
      }
      for (const entry of found)
        seen.set(`${entry.namespace} ${entry.address}:${entry.port} ${entry.processes.map((p) => p.name)}`, entry);
      await sleep(300);
    }
    const exit = await demo.exited;
    assert.equal(exit.code, 0, demo.output().slice(-3000));
    const result = lastJson(stdout);
    assert.equal(result.driver, 'qemu', demo.output().slice(-2000));
    assert.ok(result.migrations.length >= 1, `no live migration completed:\n${demo.output().slice(-3000)}`);
    assert.ok(
      result.migrations.every((m) => m.mode === 'live' && m.totalMs > 0),
      `a migration not live or without its time: ${JSON.stringify(result.migrations)}\n${demo.output().slice(-3000)}`,
    );
    assert.ok(
      result.imbalanceAfter < result.imbalanceBefore,
      `imbalance did not fall: ${result.imbalanceBefore} → ${result.imbalanceAfter}\n${demo.output().slice(-3000)}`,
    );
    assert.equal(result.leftoverProcesses, 0);
    assert.deepEqual(demoProcesses(tmp), []);
    assert.match(demo.output(), /migrated vm-\d h1 → h[23] in .*, downtime \d+ ms/);
    assert.match(demo.output(), /mutual TLS/);

    // What listened: in the root namespace only on 127.0.0.1 (Redis, the monitor's metrics); in a
    // host's namespace only on its own address (its agent, its guests' incoming migrations).
    const sockets = [...seen.keys()].sort();
    const listing = sockets.join('\n');
    t.diagnostic(`listening while the demo ran:\n${listing}`);
    assert.equal(ownAddress.size, 3, `namespaces of the demo: ${[...ownAddress.keys()]}`);
    for (const entry of seen.values()) {
      const allowed = entry.namespace === 'root' ? '127.0.0.1' : ownAddress.get(entry.namespace);
      assert.equal(entry.address, allowed, `listening wider than told (${entry.namespace}):\n${listing}`);
    }
    const inHosts = [...seen.values()].filter((entry) => entry.namespace !== 'root');
    for (const namespace of ownAddress.keys())
      assert.ok(
        inHosts.some(
          (entry) => entry.namespace === namespace && entry.port === 7300 && entry.processes[0]?.name === 'node',
        ),
        `no agent seen listening in ${namespace}:\n${listing}`,
      );
    assert.ok(
      inHosts.some((entry) => entry.processes.some((proc) => proc.name.startsWith('qemu-system'))),
      `no incoming migration seen listening:\n${listing}`,
    );
    const inRoot = [...seen.values()].filter((entry) => entry.namespace === 'root');
    for (const name of ['redis-server', 'node'])
      assert.ok(
        inRoot.some((entry) => entry.processes.some((proc) => proc.name === name)),
        `no ${name} seen in the root namespace:\n${listing}`,
      );
  });
});
