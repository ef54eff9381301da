/**
 * The driver registry: `createDriver(name, { config, log })` builds the driver named (usually
 * `collect.driver`). Built here: `sim` (simulated cluster in Redis) and `qemu` (through each host's
 * `lbvm agent`). libvirt, proxmox and openvz say loudly that they are not built yet.
 */
import type { LbvmConfig } from '../config/schema.ts';
import { redactUrl } from '../config/load.ts';
import { NotImplemented, QueueUnavailable } from '../errors.ts';
import type { Logger } from '../log.ts';
import { connectRedis } from '../queue/redis.ts';
import type { Driver } from './driver.ts';
import { QemuDriver } from './qemu/driver.ts';
import { SimDriver } from './sim.ts';

export type { Driver } from './driver.ts';

export interface DriverContext {
  config: LbvmConfig;
  log: Logger;
}

export async function createDriver(name: LbvmConfig['collect']['driver'], context: DriverContext): Promise<Driver> {
  switch (name) {
    case 'sim': {
      const redis = connectRedis(context.config.redis.url);
      const driver = new SimDriver({ config: context.config, redis, ownsRedis: true });
      try {
        await driver.cluster.ensure(context.config.sim);
      } catch (error) {
        redis.disconnect();
        throw new QueueUnavailable(
          `the sim driver keeps its cluster in Redis at ${redactUrl(context.config.redis.url)}, which is unreachable (${(error as Error).message}). Start Redis or fix redis.url (LBVM_REDIS_URL).`,
          error,
        );
      }
      return driver;
    }
    case 'qemu':
      return QemuDriver.fromConfig(context.config, context.log);
    default:
      throw new NotImplemented(`the ${name} driver (issue #9 builds libvirt, proxmox, openvz)`);
  }
}
