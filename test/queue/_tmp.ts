import fs from 'node:fs';
import path from 'node:path';
import { QemuDriver } from '../../src/drivers/qemu/driver.ts';
import { guestId } from '../../src/drivers/qemu/guest.ts';
import { createLogger } from '../../src/log.ts';
import { startAgent, testGuestSpec, waitBooted } from '../helpers/agent.ts';
const log = createLogger({ level: 'warn', format: 'json' });
const [a, b] = await Promise.all([startAgent('a'), startAgent('b')]);
const driver = new QemuDriver(new Map([[a.host, a.client], [b.host, b.client]]), log);
await a.client.start(testGuestSpec('d', { memPercent: 40, dirtyPercent: 30 }, 256));
await waitBooted(a, 'd');
let from = a, to = b;
for (let i = 0; i < 8; i++) {
  try {
    const o = await driver.migrate({ vm: 'd', from: from.host, to: to.host, mode: 'live', downtimeLimitMs: 300, bandwidthBytesPerSec: 1024 ** 3, signal: new AbortController().signal });
    console.log(i, o);
  } catch (e) {
    console.log('FAIL', i, (e as Error).message);
    const dir = path.join(from.stateDir, 'guests', guestId('d'));
    console.log(fs.readFileSync(path.join(dir, 'qemu.log'), 'utf8').slice(-2000));
    console.log(fs.readFileSync(path.join(dir, 'serial.log'), 'utf8').split('\n').filter(l => !l.includes('tick')).slice(-30).join('\n'));
    break;
  }
  [from, to] = [to, from];
  await new Promise((r) => setTimeout(r, 1000));
}
for (const ag of [a, b]) { for (const g of (await ag.client.list()).guests) await ag.client.stop(g.name); await ag.stop(); }
process.exit(0);
