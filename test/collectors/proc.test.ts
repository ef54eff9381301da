/** /proc parsers on fixed text, and a real reading of this machine giving plausible values. */
import assert from 'node:assert/strict';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import {
  cpuCoresBetween,
  isPartitionOf,
  parseDiskstats,
  parseLoadavg,
  parseMeminfo,
  parseNetDev,
  parseProcStat,
  readProc,
} from '../../collectors/proc.ts';
import { hostSampleFromProc } from '../../collectors/samples.ts';

const STAT_BEFORE = `cpu  1000 10 500 8000 100 0 40 50 30 0
cpu0 500 5 250 4000 50 0 20 25 15 0
cpu1 500 5 250 4000 50 0 20 25 15 0
intr 12345
ctxt 999
`;
// 1000 ticks later on 2 CPUs: 600 busy (user 400, system 150, softirq 50), 100 steal, 300 idle.
const STAT_AFTER = `cpu  1400 10 650 8300 100 0 90 150 230 0
cpu0 700 5 325 4150 50 0 45 75 115 0
cpu1 700 5 325 4150 50 0 45 75 115 0
`;

describe('/proc parsers', () => {
  it('/proc/stat: cores used and stolen between two readings (guest time not counted twice)', () => {
    const before = parseProcStat(STAT_BEFORE);
    const after = parseProcStat(STAT_AFTER);
    assert.equal(after.cpuCount, 2);
    const cpu = cpuCoresBetween(before, after)!;
    assert.ok(Math.abs(cpu.usedCores - 1.2) < 1e-9, String(cpu.usedCores));
    assert.ok(Math.abs(cpu.stealCores - 0.2) < 1e-9, String(cpu.stealCores));
    assert.equal(cpuCoresBetween(after, before), null, 'counters that went backwards (a reboot) give no rate');
    assert.throws(() => parseProcStat('garbage'), /no cpu lines/);
  });

  it('/proc/meminfo: used = total - available, with the old-kernel fallback', () => {
    const mem = parseMeminfo(
      'MemTotal:       16000 kB\nMemFree:         2000 kB\nMemAvailable:    6000 kB\nBuffers: 500 kB\nCached: 1500 kB\nHugePages_Total: 0\n',
    );
    assert.deepEqual(mem, { totalBytes: 16000 * 1024, availableBytes: 6000 * 1024, usedBytes: 10000 * 1024 });
    const old = parseMeminfo('MemTotal: 16000 kB\nMemFree: 2000 kB\nBuffers: 500 kB\nCached: 1500 kB\n');
    assert.equal(old.usedBytes, 12000 * 1024);
  });

  it('/proc/loadavg, /proc/diskstats (sectors of 512 bytes, partitions told apart) and /proc/net/dev', () => {
    assert.deepEqual(parseLoadavg('0.52 0.58 0.59 1/467 12345\n'), { load1: 0.52, load5: 0.58, load15: 0.59 });
    const disks = parseDiskstats(
      ' 253       0 vda 100 0 2048 10 50 0 4096 20 0 30 30 0 0 0 0\n 253       1 vda1 90 0 2000 10 50 0 4000 20 0 30 30\n',
    );
    assert.deepEqual(disks.get('vda'), { readBytes: 2048 * 512, writeBytes: 4096 * 512 });
    assert.ok(
      isPartitionOf('vda1', ['vda']) && isPartitionOf('nvme0n1p2', ['nvme0n1']) && !isPartitionOf('vda', ['vda']),
    );
    const net = parseNetDev(
      'Inter-|   Receive |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes\n    lo:  100 1 0 0 0 0 0 0  100 1 0 0 0 0 0 0\n  eth0: 5000 10 0 0 0 0 0 0 7000 12 0 0 0 0 0 0\n',
    );
    assert.deepEqual(net.get('eth0'), { rxBytes: 5000, txBytes: 7000 });
  });
});

describe('this machine', () => {
  it('gives a plausible host sample from the real /proc', async () => {
    const before = await readProc();
    // Burn a little CPU so the delta is not empty, without asserting on timing.
    const until = Date.now() + 300;
    while (Date.now() < until) Math.sqrt(Math.random());
    await sleep(200);
    const after = await readProc();
    const sample = hostSampleFromProc('here', before, after);
    assert.equal(sample.cpuCores, os.cpus().length);
    assert.ok(
      sample.cpuUsedCores > 0 && sample.cpuUsedCores <= sample.cpuCores + 0.01,
      `cpuUsedCores ${sample.cpuUsedCores}`,
    );
    assert.ok((sample.cpuStealCores ?? 0) >= 0 && (sample.cpuStealCores ?? 0) <= sample.cpuCores);
    assert.ok(
      Math.abs(sample.memBytes - os.totalmem()) < os.totalmem() * 0.01,
      `memBytes ${sample.memBytes} vs ${os.totalmem()}`,
    );
    assert.ok(sample.memUsedBytes > 0 && sample.memUsedBytes < sample.memBytes);
    assert.ok(Math.abs(sample.load1! - os.loadavg()[0]!) < 1);
    for (const field of [
      'diskReadBytesPerSec',
      'diskWriteBytesPerSec',
      'netRxBytesPerSec',
      'netTxBytesPerSec',
    ] as const) {
      assert.ok(
        sample[field] !== undefined && sample[field]! >= 0 && sample[field]! < 1e11,
        `${field} ${sample[field]}`,
      );
    }
    assert.equal(sample.timeMs, after.timeMs, 'the measurement time, not a write time');
  });
});
