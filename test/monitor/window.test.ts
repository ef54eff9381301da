/**
 * The window the leader keeps between rounds (src/monitor/window.ts) gives, round after round, the
 * snapshot a whole read of the window gives, on both stores: with a round stored after the monitor
 * read it, a spool replayed long after (old times), a VM that moved (both hosts reporting it at the
 * same time once), a host and a VM that went silent and left the window, a host whose clock is ahead,
 * a line written twice, and a bad row. It reads only what is new, and reads the whole window on
 * start, after a gap, when told, and when a day file was replaced. On InfluxDB what is new comes from
 * the packed rounds (lbvm_round), and series by series for a host whose collector writes none (n8).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Sample, Snapshot } from '../../src/model/index.ts';
import { IncrementalWindow } from '../../src/monitor/window.ts';
import { openStore, Spool, type SampleStore } from '../../src/store/index.ts';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample, snapshotOf, vmSample } from '../store/builders.ts';

const STEP = 60_000;
const WINDOW = 20 * STEP;
const ROUNDS = 32;

/** The snapshot of a whole read, the way the monitor read every round before it kept a window. */
async function wholeRead(store: SampleStore, nowMs: number): Promise<Snapshot> {
  const query = { fromMs: nowMs - WINDOW, toMs: nowMs, nowMs };
  if (store.readDigest) {
    const digest = await store.readDigest(query);
    return snapshotOf((builder) => {
      digest.latest.forEach((sample) => builder.addLatest(sample));
      digest.cpu.forEach((point) => builder.addCpuPoint(point.kind, point.name, point.timeMs, point.cores));
    }, nowMs);
  }
  const samples: Sample[] = [];
  for await (const batch of store.readSamples(query).batches()) samples.push(...batch);
  return snapshotOf((builder) => samples.forEach((sample) => builder.addSample(sample)), nowMs);
}

/** One host's round at `t`: the host and its VMs' samples. */
function round(host: string, t: number, vms: string[], k: number): Sample[] {
  return [
    hostSample(host, t, { cpuUsedCores: 1 + (k % 4) * 0.5, vmCount: vms.length }),
    ...vms.map((vm, index) =>
      vmSample(vm, host, t, { cpuUsedCores: 0.1 + ((k + index) % 5) * 0.1, memUsedBytes: (k % 3) * 2 ** 20 }),
    ),
  ];
}

/** Writes one line as a broken writer would (no checks): a raw line in the files store, a raw point in InfluxDB. */
type RawWrite = (host: string, t: number, vm: string, cores: number) => Promise<void>;

for (const kind of ['files', 'influx'] as const) {
  describe(`the window kept between rounds (${kind} store)`, () => {
    let server: InfluxServer | undefined;
    let store: SampleStore;
    /** A collector of before packed rounds: InfluxDB gets its samples series by series only. */
    let oldCollector: SampleStore;
    let dir: string;
    let rawWrite: RawWrite;
    // The cluster runs on its own clock, from now on, one round a minute.
    const t0 = Math.floor(Date.now() / STEP) * STEP;
    let clockMs = t0;

    before(async () => {
      dir = tmpDir('lbvm-window-');
      if (kind === 'influx') {
        server = await startInflux();
        const db = `window_${process.pid}`;
        store = openStore(server.storeUrl(db), { clock: () => clockMs });
        oldCollector = openStore(server.storeUrl(db), { clock: () => clockMs, packRounds: false });
        rawWrite = async (host, t, vm, cores) => {
          const fields = `cpuUsedCores=${cores},vcpus=2,memBytes=1073741824,memUsedBytes=1`;
          // Its series row and its packed round, as a packing writer without checks would write them.
          const packed = JSON.stringify(
            JSON.stringify([{ host, vm, time: t, cpuUsedCores: cores, vcpus: 2, memBytes: 2 ** 30, memUsedBytes: 1 }]),
          );
          const line = `vm_sample,host=${host},vm=${vm} ${fields} ${t}\nlbvm_round,host=${host} vms=${packed},vmCount=1 ${t}`;
          const response = await fetch(`${server!.httpUrl}/write?db=${db}&precision=ms&rp=lbvm_raw`, {
            method: 'POST',
            body: line,
          });
          assert.equal(response.status, 204, await response.text());
        };
      } else {
        store = openStore(`files:${path.join(dir, 'samples')}`);
        oldCollector = store;
        rawWrite = async (host, t, vm, cores) => {
          const file = path.join(dir, 'samples', new Date(t).toISOString().slice(0, 10), `${host}.jsonl`);
          fs.appendFileSync(file, `${JSON.stringify({ ...vmSample(vm, host, t), cpuUsedCores: cores })}\n`);
        };
      }
    });
    after(async () => {
      await server?.stop();
    });

    it('gives the snapshot a whole read gives, round after round, reading only what is new', async () => {
      const window = new IncrementalWindow(store, { maxGapMs: 2.5 * STEP });
      const spool = new Spool({ dir: path.join(dir, 'spool'), maxBytes: 64 * 2 ** 20 });
      const reads: {
        full: boolean;
        reasons: string[];
        rereadHosts: string[];
        paths?: { packedHosts: number; seriesHosts: number };
      }[] = [];
      for (let k = 0; k < ROUNDS; k++) {
        clockMs = t0 + k * STEP;
        const t = clockMs - 2000;
        const now: Sample[] = [];
        now.push(...round('n1', t, ['steady', ...(k < 12 ? ['mover'] : [])], k));
        // The mover moves at round 12: both hosts report it in that round (a tie), then n2 alone.
        if (k >= 12) now.push(...round('n2', t, ['mover'], k));
        // n3 and its VM go silent at round 8, and leave the window 20 rounds later.
        if (k < 8) now.push(...round('n3', t, ['quiet'], k));
        // gone stops at round 10 (its host goes on).
        now.push(...round('n7', t, k < 10 ? ['gone', 'stays'] : ['stays'], k));
        // n4 cannot reach the store in rounds 9 to 13: its rounds go to its spool, replayed at round 15.
        const n4 = round('n4', t, ['spooled'], k);
        if (k >= 9 && k <= 13) await spool.append(n4.map((sample) => ({ sample })));
        else now.push(...n4);
        // n5's clock is 90 s ahead; n6's once 10 minutes ahead (beyond the readers' tolerance).
        now.push(...round('n5', t + 90_000, ['ahead'], k));
        if (k === 3) now.push(...round('n6', t + 10 * STEP, ['far'], k));
        await store.writeSamples(now);
        await oldCollector.writeSamples(round('n8', t, ['legacy'], k));
        // n1's round 6 is written twice (a write that went through, reported as failed, replayed).
        if (k === 6) await store.writeSamples(round('n1', t, ['steady', 'mover'], k));
        if (k === 15) assert.equal((await spool.replay(store)).replayed, 5 * 2);
        // A broken writer's absurd CPU point on n1.
        if (k === 18) await rawWrite('n1', t - 30_000, 'steady', 900);

        const read = await window.read({ fromMs: clockMs - WINDOW, toMs: clockMs, nowMs: clockMs });
        reads.push({ full: read.full, reasons: read.reasons, rereadHosts: read.rereadHosts, paths: read.paths });
        const kept = snapshotOf((builder) => window.fill(builder), clockMs);
        assert.deepEqual(
          kept,
          await wholeRead(store, clockMs),
          `round ${k}: the kept window differs from a whole read`,
        );

        // n2's rounds 20 to 22 reach the store only after the monitor read them (a slow write).
        if (k >= 20 && k <= 22) await store.writeSamples(round('n2b', t, ['slow'], k));
      }
      // Checks that the scenario happened: silent and gone left the snapshot, the mover is on n2.
      const last = snapshotOf((builder) => window.fill(builder), clockMs);
      assert.deepEqual(
        last.vms.map((vm) => `${vm.name}@${vm.host}`),
        ['ahead@n5', 'far@n6', 'legacy@n8', 'mover@n2', 'slow@n2b', 'spooled@n4', 'stays@n7', 'steady@n1'],
      );
      assert.ok(!last.hosts.some((host) => host.name === 'n3'), 'n3 left the window');
      assert.deepEqual(reads[0], { full: true, reasons: ['start'], rereadHosts: [], paths: undefined });
      const later = reads.slice(1);
      assert.ok(
        later.every((read) => !read.full),
        `no whole read after the first: ${JSON.stringify(later.filter((r) => r.full))}`,
      );
      if (kind === 'influx') {
        // The replay was announced (lbvm_late) and n4 read again; the bad row had n1 read again, twice:
        // it is within the overlap the next read takes again too. The slow writes of n2b needed nothing.
        assert.deepEqual(
          reads.flatMap((read, k) => (read.rereadHosts.length ? [`${k}: ${read.rereadHosts} (${read.reasons})`] : [])),
          [
            '15: n4 (samples of 1 host were stored late (lbvm_late))',
            '18: n1 (bad rows from 1 host)',
            '19: n1 (bad rows from 1 host)',
          ],
        );
        // Every host's new VMs came from its packed rows but n8's, read series by series.
        assert.deepEqual(
          later.filter((read) => read.paths?.seriesHosts !== 1 || read.paths.packedHosts < 3),
          [],
          'a read took n8 from packed rows or another host series by series',
        );
      } else assert.ok(later.every((read) => read.rereadHosts.length === 0));
    });

    it('reads the whole window on start, after a gap, when told, and when the store cannot tell', async () => {
      const window = new IncrementalWindow(store, { maxGapMs: 2.5 * STEP });
      const at = async (k: number) => {
        clockMs = t0 + k * STEP;
        const read = await window.read({ fromMs: clockMs - WINDOW, toMs: clockMs, nowMs: clockMs });
        assert.deepEqual(
          snapshotOf((builder) => window.fill(builder), clockMs),
          await wholeRead(store, clockMs),
          `at round ${k}`,
        );
        return read;
      };
      assert.deepEqual((await at(20)).reasons, ['start']);
      assert.equal((await at(21)).full, false);
      assert.deepEqual((await at(24)).reasons, ['180 s since the previous read']);
      window.invalidate('took the lease');
      assert.deepEqual((await at(25)).reasons, ['took the lease']);
      assert.equal((await at(26)).full, false);
      if (kind === 'files') {
        // A day file replaced under the same name (restored from a backup, say): read everything again.
        const file = path.join(dir, 'samples', new Date(t0 + 20 * STEP).toISOString().slice(0, 10), 'n7.jsonl');
        const text = fs.readFileSync(file, 'utf8');
        fs.rmSync(file);
        fs.writeFileSync(file, text.slice(0, text.length / 2).replace(/[^\n]*$/, ''));
        const read = await at(27);
        assert.equal(read.full, true);
        assert.match(read.reasons.join(), /n7\.jsonl was replaced or cut shorter/);
      }
    });
  });
}
