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
    // setpriv execs QEMU in place, so the child's pid is QEMU's. What its threads ran and what they
    // waited on a run queue (schedstat, ns): run + wait is what the guest asked for, which a busy
    // machine cannot shrink (it shrinks what it gets: 0.25 cores under three other busy processes,
    // with 0.27 more waited).
    const sched = () => {
      let run = 0;
      let wait = 0;
      for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
        try {
          const [ran, waited] = fs.readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ');
          run += Number(ran);
          wait += Number(waited);
        } catch {
          /* a thread that ended meanwhile */
        }
      }
      return { run, wait };
    };
    const tickBefore = guest.lastTick();
    const before = sched();
    const startedNs = process.hrtime.bigint();
    await sleep(6000);
    const now = sched();
    // The time that passed, not the 6 s asked for: a busy machine wakes this test late.
    const elapsedNs = Number(process.hrtime.bigint() - startedNs);
    const used = (now.run - before.run) / elapsedNs;
    const demand = used + (now.wait - before.wait) / elapsedNs;
    assert.ok(guest.lastTick() > tickBefore, 'the guest counter did not advance');
    const said = `a guest told to burn 50% of a core asked for ${demand.toFixed(2)} cores and used ${used.toFixed(2)}`;
    assert.ok(demand > 0.35 && demand < 0.75, said);
    assert.ok(used < 0.7, said);
  });
});
