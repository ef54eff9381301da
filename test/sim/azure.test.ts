import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, it } from 'node:test';
import { readTrace } from '../../src/sim/traces.ts';
import { UsageError } from '../../src/errors.ts';
import { cleanEnv, runCli } from '../helpers/cli.ts';
import { tmpDir } from '../helpers/tmp.ts';

const GiB = 1024 ** 3;

/** A small folder in the Azure Public Dataset's layout: vmtable.csv and two readings files, one gzipped. */
function azureFolder(): string {
  const dir = tmpDir();
  fs.writeFileSync(
    path.join(dir, 'vmtable.csv'),
    [
      'big,sub,dep,0,86400,99,40,90,Interactive,>24,>64',
      'small,sub,dep,0,86400,50,10,30,Delay-insensitive,2,4',
      '',
    ].join('\n'),
  );
  // big: 50% of 30 cores; a duplicate reading on step 1 (averaged), then a gap on step 2 (held).
  fs.writeFileSync(
    path.join(dir, 'vm_cpu_readings-file-1-of-2.csv'),
    ['0,big,10,90,50', '300,big,10,90,20', '300,big,10,90,40', '900,big,10,90,10', '0,small,1,2,25', ''].join('\n'),
  );
  // unsized starts late (not running before) and has no vmtable row; small stops after step 1.
  fs.writeFileSync(
    path.join(dir, 'vm_cpu_readings-file-2-of-2.csv.gz'),
    zlib.gzipSync(['300,small,1,2,75', '600,unsized,1,2,100', '900,unsized,1,2,150', ''].join('\n')),
  );
  return dir;
}

describe('Azure Public Dataset traces', () => {
  it('reads sizes from vmtable, demand as avg % of the VM cores, the life of each VM, gaps and gzipped files', () => {
    const trace = readTrace(azureFolder(), 'azure');
    assert.equal(trace.steps, 4);
    assert.equal(trace.stepMs, 300_000);
    const byName = new Map(trace.vms.map((v) => [v.name, v]));
    assert.deepEqual([...byName.keys()], ['big', 'small', 'unsized']);
    const big = byName.get('big')!;
    assert.equal(big.vcpus, 30);
    assert.equal(big.memBytes, 70 * GiB);
    assert.deepEqual(Array.from(big.cpuCores), [15, 9, 9, 3]);
    const small = byName.get('small')!;
    assert.equal(small.memBytes, 4 * GiB);
    // Not running after its last reading.
    assert.deepEqual(Array.from(small.cpuCores), [0.5, 1.5, 0, 0]);
    const unsized = byName.get('unsized')!;
    // No vmtable row: 1 core, readings above 100% capped at the VM's size; not running before its first reading.
    assert.equal(unsized.vcpus, 1);
    assert.deepEqual(Array.from(unsized.cpuCores), [0, 0, 1, 1]);
    const notes = trace.notes.join('\n');
    assert.match(notes, /1 VM\(s\) have no row in vmtable/);
    assert.match(notes, /1 reading\(s\) fell on an already filled step/);
    assert.match(notes, /1 VM-step\(s\) had no reading/);
  });

  it('names the file, the line and the expected columns for a bad reading', () => {
    const dir = azureFolder();
    fs.appendFileSync(path.join(dir, 'vm_cpu_readings-file-1-of-2.csv'), '1200,big,10,90,lots\n');
    assert.throws(
      () => readTrace(dir, 'azure'),
      (e: unknown) =>
        e instanceof UsageError &&
        e.message.includes('vm_cpu_readings-file-1-of-2.csv:6: expected "timestamp,vm id,min cpu,max cpu,avg cpu"') &&
        e.message.includes('got "1200,big,10,90,lots"'),
    );
    assert.throws(
      () => readTrace(tmpDir(), 'azure'),
      (e: unknown) => e instanceof UsageError && /holds no vm_cpu_readings/.test(e.message),
    );
  });

  it('lbvm simulate --format azure replays it through the default round', async () => {
    const result = await runCli(
      'lbvm',
      [
        'simulate',
        '--trace',
        azureFolder(),
        '--format',
        'azure',
        '--hosts',
        '2',
        '--host-cores',
        '32',
        '--host-mem-gib',
        '128',
        '--policy',
        'evacuate,overload,balance',
        '--json',
      ],
      { cwd: tmpDir(), env: cleanEnv() },
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout) as { vms: number; steps: number; notes: string[] };
    assert.equal(summary.vms, 3);
    assert.equal(summary.steps, 4);
    assert.ok(summary.notes.some((n) => n.includes('no row in vmtable')));
  });
});
