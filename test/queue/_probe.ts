import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import { createLogger } from '../../src/log.ts';
import { startAgent, testGuestSpec, waitBooted } from '../helpers/agent.ts';
const log = createLogger({ level: 'warn', format: 'json' });
const [a, b] = await Promise.all([startAgent('a'), startAgent('b')]);
const driver = new QemuDriver(new Map([[a.host, a.client], [b.host, b.client]]), log);
await a.client.start(testGuestSpec('d', { memPercent: 40, dirtyPercent: 30 }, 256));
await waitBooted(a, 'd');
let from = a, to = b;
let ok = 0;
for (let i = 0; i < 25; i++) {
  try {
    await driver.migrate({ vm: 'd', from: from.host, to: to.host, mode: 'live', downtimeLimitMs: 300, bandwidthBytesPerSec: 1024 ** 3, signal: new AbortController().signal });
  } catch (e) {
    console.log('FAIL', i, (e as Error).message);
    break;
  }
  ok++;
  [from, to] = [to, from];
  await new Promise((r) => setTimeout(r, 1000));
}
console.log('OK', ok, process.env.PROBE_TCG_SINGLE);
for (const ag of [a, b]) { for (const g of (await ag.client.list()).guests) await ag.client.stop(g.name).catch(() => {}); await ag.stop(); }
process.exit(0);
