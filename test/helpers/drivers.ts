/** Small builders shared by the driver tests. */
import { Writable } from 'node:stream';
import type { MigrateRequest } from '../../src/drivers/driver.ts';
import { LibvirtDriver, type LibvirtDriverOptions } from '../../src/drivers/libvirt/driver.ts';
import { createLogger, type Logger } from '../../src/log.ts';

export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;
/** Drivers under test log nothing (their messages are asserted through errors). */
export const silentLog = createLogger({ level: 'silent' });

/** A logger at `warn` whose lines a test reads: for what a driver tells the operator only in the log. */
export function capturingLog(): { log: Logger; text: () => string } {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { log: createLogger({ level: 'warn', format: 'pretty', destination }), text: () => text };
}

/** A live migration request with a fresh signal and 100 MiB/s unless told otherwise. */
export function migrationRequest(
  vm: string,
  from: string,
  to: string,
  extra: Partial<MigrateRequest> = {},
): MigrateRequest {
  return {
    vm,
    from,
    to,
    mode: 'live',
    downtimeLimitMs: 300,
    bandwidthBytesPerSec: 100 * MIB,
    signal: new AbortController().signal,
    ...extra,
  };
}

/** A libvirt driver for these URIs, polling domjobinfo every 250 ms. */
export function libvirtDriver(
  uris: Record<string, string>,
  overrides: Partial<LibvirtDriverOptions> = {},
): LibvirtDriver {
  return new LibvirtDriver({
    uris,
    autoConverge: true,
    bandwidthCap: true,
    pollIntervalMs: 250,
    virsh: 'virsh',
    log: silentLog,
    ...overrides,
  });
}
