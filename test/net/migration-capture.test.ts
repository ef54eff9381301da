/**
 * Migration streams on a real (virtual) network, watched from the wire: two agent hosts, each in its
 * own network namespace on a bridge (1 Gbit/s links, src/util/netns.ts), with the cluster's
 * certificates from deploy/certs.sh. A guest fills half its memory with a marker text; `tcpdump`
 * captures the bridge while the qemu driver moves it. With TLS (the default once certificates are
 * configured) the marker never appears in the capture, live or checkpoint; with `tls.migration: false`
 * it does, which shows the capture would have seen it. Needs root (ip netns) and tcpdump: fails loudly
 * without them.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AgentClient } from '../../src/drivers/qemu/client.ts';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import { createLogger } from '../../src/log.ts';
import type { MigrationMode } from '../../src/model/index.ts';
import { makeClusterCerts } from '../../src/util/certs.ts';
import { createNetnsCluster, type NetnsCluster } from '../../src/util/netns.ts';
import { startAgent, testGuestSpec, ticks, waitBooted, type TestAgent } from '../helpers/agent.ts';
import { spawnTracked, waitFor } from '../helpers/processes.ts';
import { tmpDir } from '../helpers/tmp.ts';

const GUEST = 'secret-db';
const MARKER = `LBVM-SECRET-${randomBytes(12).toString('hex')}`;

/** What a pcap file holds: how many bytes crossed (the packets' real lengths) and how often `text` appears in what was kept. */
function readCapture(file: string, text: string): { packets: number; wireBytes: number; markers: number } {
  const data = fs.readFileSync(file);
  let offset = 24; // the global header
  let packets = 0;
  let wireBytes = 0;
  while (offset + 16 <= data.length) {
    const kept = data.readUInt32LE(offset + 8);
    wireBytes += data.readUInt32LE(offset + 12);
    packets++;
    offset += 16 + kept;
  }
  let markers = 0;
  const needle = Buffer.from(text);
  for (let at = data.indexOf(needle); at >= 0; at = data.indexOf(needle, at + needle.length)) markers++;
  return { packets, wireBytes, markers };
}

describe('migration streams on the namespace network, captured on the bridge', () => {
  let net: NetnsCluster;
  let h1: TestAgent;
  let h2: TestAgent;
  let driver: QemuDriver;
  const where = new Map<string, TestAgent>();

  before(async () => {
    net = await createNetnsCluster({ hosts: ['h1', 'h2'], rate: '1gbit' });
    const certs = await makeClusterCerts(path.join(tmpDir('lbvm-capture-certs-'), 'tls'), {
      agents: Object.fromEntries(net.hosts.map((host) => [host.name, [host.address, host.name]])),
      clients: ['worker'],
    });
    [h1, h2] = await Promise.all([startAgent('h1', { netns: net, certs }), startAgent('h2', { netns: net, certs })]);
    driver = new QemuDriver(
      new Map<string, AgentClient>([
        ['h1', h1.client],
        ['h2', h2.client],
      ]),
      createLogger({ level: 'warn', format: 'json' }),
    );
    await h1.client.start(testGuestSpec(GUEST, { memPercent: 50, fill: 'marker', marker: MARKER }, 128));
    await waitBooted(h1, GUEST);
    where.set(GUEST, h1);
  });
  after(async () => {
    await where
      .get(GUEST)
      ?.client.stop(GUEST)
      .catch(() => {});
    await Promise.all([h1?.stop(), h2?.stop()]);
    await net?.teardown();
  });

  /** Moves the guest to the other host while tcpdump captures the bridge; what the capture holds. */
  async function moveCaptured(mode: MigrationMode) {
    const from = where.get(GUEST)!;
    const to = from === h1 ? h2 : h1;
    const file = path.join(tmpDir('lbvm-capture-'), 'bridge.pcap');
    // -s 512: enough of every packet to find a marker in; -U: written as captured; -Z root: Debian's
    // tcpdump otherwise drops to its own user, who may not write here.
    const tcpdump = spawnTracked('tcpdump', [
      '-i',
      net.bridge,
      '-n',
      '-s',
      '512',
      '-U',
      '-Z',
      'root',
      '-w',
      file,
      'tcp',
    ]);
    await waitFor(`tcpdump on ${net.bridge}`, () => /listening on/.test(tcpdump.output()), {
      process: tcpdump,
      timeoutMs: 10_000,
    });
    const outcome = await driver.migrate({
      vm: GUEST,
      from: from.host,
      to: to.host,
      mode,
      downtimeLimitMs: 300,
      bandwidthBytesPerSec: 1024 ** 3,
      signal: new AbortController().signal,
    });
    await tcpdump.stop();
    where.set(GUEST, to);
    // The guest runs on, its counter going on.
    await waitFor(`${GUEST} to tick on ${to.host}`, () => ticks(to.console(GUEST)).length > 0, { timeoutMs: 20_000 });
    return { outcome, capture: readCapture(file, MARKER) };
  }

  it('with TLS, live and checkpoint: the guest memory crosses the bridge and the marker is never in it', async (t) => {
    const live = await moveCaptured('live');
    t.diagnostic(`live over TLS: ${JSON.stringify(live.capture)}`);
    assert.ok(live.outcome.bytesCopied > 60 * 2 ** 20, `only ${live.outcome.bytesCopied} bytes were migrated`);
    assert.ok(live.capture.wireBytes > 60 * 2 ** 20, `the capture saw ${live.capture.wireBytes} bytes`);
    assert.equal(live.capture.markers, 0, 'the marker crossed the bridge in the clear (live)');
    assert.match(h1.process.output(), /"tls":true,"msg":"live migration started"/);
    const checkpoint = await moveCaptured('checkpoint');
    t.diagnostic(`checkpoint over the agents' HTTPS: ${JSON.stringify(checkpoint.capture)}`);
    assert.ok(checkpoint.capture.wireBytes > 2 * 60 * 2 ** 20, 'the checkpoint went out and in: twice its size');
    assert.equal(checkpoint.capture.markers, 0, 'the marker crossed the bridge in the clear (checkpoint)');
  });

  it('with tls.migration: false the same capture shows the marker (so it would have seen it)', async (t) => {
    for (const agent of [h1, h2]) {
      agent.env.LBVM_TLS_MIGRATION = 'false';
      await agent.stop();
      await agent.start();
    }
    const clear = await moveCaptured('live');
    t.diagnostic(`live in the clear: ${JSON.stringify(clear.capture)}`);
    assert.ok(clear.capture.markers > 100, `only ${clear.capture.markers} markers seen in the clear`);
    assert.match(
      where.get(GUEST) === h2 ? h1.process.output() : h2.process.output(),
      /"tls":false,"msg":"live migration started"/,
    );
  });
});
