/**
 * The network-namespace test bed (src/util/netns.ts): hosts in their own namespaces with their own
 * addresses on a bridge, reachable from each other and from the root namespace, links shaped by tc to
 * the rate asked for, and nothing left behind: not after a teardown, and not after its maker was
 * SIGKILLed (the next maker removes what it left, killing what still ran inside). Needs root.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createNetnsCluster, parseRate, type NetnsCluster } from '../../src/util/netns.ts';
import { ROOT } from '../helpers/cli.ts';
import { runFile, spawnTracked, waitFor } from '../helpers/processes.ts';

const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
/** Namespaces and links whose names say this module made them for process `pid`. */
function madeBy(pid: number): string[] {
  const namespaces = ip('netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter((name) => name.startsWith(`lbvm-${pid}-`));
  const links = [...ip('-o', 'link', 'show').matchAll(/^\d+:\s+([^:@\s]+)/gm)]
    .map((match) => match[1]!)
    .filter((name) => name.startsWith(`lbvm${pid.toString(36)}.`));
  return [...namespaces, ...links];
}

/** Whether `pid` runs (a zombie waiting for its parent does not). */
function running(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/** A node one-liner run inside a host's namespace (argv, no shell). */
function inside(net: NetnsCluster, host: string, script: string) {
  return net.exec(host, process.execPath, ['-e', script]);
}

describe('network-namespace test bed', () => {
  let net: NetnsCluster | null = null;
  after(async () => {
    await net?.teardown();
  });

  it('gives each host its own address on a bridge, shapes both directions of each link with tbf, and tears down to nothing', async () => {
    assert.equal(parseRate('10gbit'), 1e10);
    assert.equal(parseRate('250mbit'), 2.5e8);
    assert.equal(parseRate('fast'), null);
    net = await createNetnsCluster({ hosts: ['a', 'b'], rate: '100mbit' });
    const [a, b] = net.hosts;
    assert.notEqual(a!.address, b!.address);
    // Each side of each link is shaped: the host's eth0 (what it sends) and its port on the bridge (what it gets).
    for (const host of net.hosts) {
      assert.match(
        (await runFile('tc', ['-n', host.namespace, 'qdisc', 'show', 'dev', 'eth0'])).stdout,
        /tbf .*rate 100Mbit/,
      );
      assert.match((await runFile('tc', ['qdisc', 'show', 'dev', host.link])).stdout, /tbf .*rate 100Mbit/);
    }
    // b listens on its address; a sends it 25 MB. The shaper holds: not faster than 100 Mbit/s.
    const bytes = 25_000_000;
    const server = inside(
      net,
      'b',
      `const n=require('net');let got=0;n.createServer(s=>{s.on('data',d=>got+=d.length);s.on('end',()=>{console.log('got '+got);process.exit(0)})}).listen(9000,'${b!.address}',()=>console.log('listening'))`,
    );
    const listener = spawnTracked(server.command, server.args);
    await waitFor('the listener in b', () => listener.output().includes('listening'), { process: listener });
    const startedMs = Date.now();
    const client = inside(
      net,
      'a',
      `const s=require('net').connect(9000,'${b!.address}',()=>{s.end(Buffer.alloc(${bytes},7))})`,
    );
    await runFile(client.command, client.args);
    await listener.exited;
    const seconds = (Date.now() - startedMs) / 1000;
    assert.match(listener.output(), new RegExp(`got ${bytes}`));
    assert.ok(seconds >= ((bytes * 8) / 100e6) * 0.9, `25 MB crossed a 100 Mbit/s link in ${seconds} s`);
    // The root namespace reaches a host through the bridge (connection refused: reached, nobody listens).
    const reach = await runFile(process.execPath, [
      '-e',
      `require('net').connect(9,'${a!.address}').on('error',e=>console.log(e.code)).on('connect',()=>console.log('open'))`,
    ]);
    assert.equal(reach.stdout.trim(), 'ECONNREFUSED');
    await net.teardown();
    net = null;
    assert.deepEqual(madeBy(process.pid), []);
  });

  it('what a SIGKILLed maker left (namespaces, links, a process inside) is removed by the next maker', async () => {
    // A maker that sets up two hosts, starts a process inside one, and is killed before it can clean up.
    const maker = spawnTracked(process.execPath, [
      '--import',
      'tsx',
      '-e',
      `import('${path.join(ROOT, 'src/util/netns.ts')}').then(async ({ createNetnsCluster }) => {
        const net = await createNetnsCluster({ hosts: ['x', 'y'] });
        const { spawn } = await import('node:child_process');
        const run = net.exec('x', 'sleep', ['600']);
        const child = spawn(run.command, run.args, { detached: true, stdio: 'ignore' });
        child.unref();
        setTimeout(() => console.log('ready ' + child.pid), 500);
        setInterval(() => {}, 1000);
      })`,
    ]);
    await waitFor('the maker to set up its hosts', () => /ready \d+/.test(maker.output()), {
      process: maker,
      timeoutMs: 30_000,
    });
    const sleeper = Number(/ready (\d+)/.exec(maker.output())![1]);
    // setpriv execs node: the maker's pid is the node process's, which names what it made.
    const nodePid = maker.child.pid!;
    assert.ok(madeBy(nodePid).length >= 5, `the maker made ${madeBy(nodePid).join(', ')}`);
    process.kill(nodePid, 'SIGKILL');
    await maker.exited;
    assert.ok(madeBy(nodePid).length >= 5, 'a SIGKILLed maker cannot clean up: its namespaces are still there');
    net = await createNetnsCluster({ hosts: ['z'] });
    assert.deepEqual(madeBy(nodePid), [], 'the next maker removed them');
    await waitFor('the process left inside a namespace to be killed', () => !running(sleeper), { timeoutMs: 5000 });
    await net.teardown();
    net = null;
  });
});
