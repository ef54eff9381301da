/**
 * The driver registry: `createDriver(config)` builds the driver named by `collect.driver` (or the
 * name given). Drivers not built yet say so loudly (NotImplemented) instead of pretending.
 */
import type { LbvmConfig } from '../config/schema.ts';
import { NotImplemented } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Driver } from './driver.ts';

export type { Driver } from './driver.ts';

export interface DriverContext {
  config: LbvmConfig;
  log: Logger;
}

export async function createDriver(name: LbvmConfig['collect']['driver'], _context: DriverContext): Promise<Driver> {
  throw new NotImplemented(`the ${name} driver (issue #5 builds qemu and sim; issue #9 libvirt, proxmox, openvz)`);
}
