/**
 * The harness itself: real Redis, InfluxDB and a QEMU guest start on free ports in temporary
 * folders, do their job, and stop. If one of them cannot start, this fails loudly.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { startGuest, type Guest } from '../helpers/qemu.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';

describe('test harness: real servers', () => {
  let redis: RedisServer | undefined;
  let influx: InfluxServer | undefined;
  let guest: Guest | undefined;
  after(async () => {
    await Promise.all([redis?.stop(), influx?.stop(), guest?.stop()]);
  });

  it('starts redis-server with AOF on; data survives a restart', async () => {
    redis = await startRedis({ password: 'pw-test' });
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    await client.set('lbvm:test', 'kept');
    assert.equal(await client.config('GET', 'maxmemory-policy').then((v) => (v as string[])[1]), 'noeviction');
    client.disconnect();
    await redis.restart();
    const again = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    assert.equal(await again.get('lbvm:test'), 'kept');
    again.disconnect();
  });

  it('starts influxd and answers a write and a query', async () => {
    influx = await startInflux();
    const query = (q: string) =>
      fetch(`${influx!.httpUrl}/query`, { method: 'POST', body: new URLSearchParams({ q }) });
    assert.equal((await query('CREATE DATABASE harness')).status, 200);
    const write = await fetch(`${influx.httpUrl}/write?db=harness&precision=ms`, {
      method: 'POST',
      body: 'probe,host=h1 value=1.5 1700000000000',
    });
    assert.equal(write.status, 204, await write.text());
    const result = (await (
      await fetch(`${influx.httpUrl}/query?db=harness&q=${encodeURIComponent('SELECT value FROM probe')}`)
    ).json()) as {
      results: { series?: { values: unknown[][] }[] }[];
    };
    assert.equal(result.results[0]!.series![0]!.values[0]![1], 1.5);
  });

  it('boots a QEMU guest that reports it is up, counts, and burns the CPU share it was told', async () => {
    guest = await startGuest({ cpuPercent: 50, name: 'harness-guest' });
    assert.ok(
      guest.console().some((line) => /^lbvm-guest: up cpu=50%/.test(line)),
      guest.console().join('\n'),
    );
    const pid = guest.process.child.pid!;
    // setpriv execs QEMU in place, so the child's pid is QEMU's.
    const cpuTicks = () => {
      const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return Number(fields[11]) + Number(fields[12]);
    };
    const tickBefore = guest.lastTick();
    const before = cpuTicks();
    await sleep(6000);
    const cores = (cpuTicks() - before) / 100 / 6;
    assert.ok(guest.lastTick() > tickBefore, 'the guest counter did not advance');
    assert.ok(cores > 0.35 && cores < 0.7, `a guest told to burn 50% of a core used ${cores.toFixed(2)} cores`);
  });
});
