/**
 * The driver registry: `createDriver(name, { config, log })` builds the driver named (usually
 * `collect.driver`): `sim` (simulated cluster in Redis), `qemu` (through each host's `lbvm agent`),
 * `libvirt` (virsh per host URI), `proxmox` (the Proxmox VE HTTP API with a token) and `openvz`
 * (vzlist/vzmigrate or prlctl over ssh). Settings: `drivers.<name>` in the config. Only the chosen
 * driver's module is loaded. A driver whose settings are missing fails with a ConfigError naming them.
 */
import type { LbvmConfig } from '../config/schema.ts';
import { NotImplemented, QueueUnavailable } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Driver } from './driver.ts';

export type { Driver } from './driver.ts';

export interface DriverContext {
  config: LbvmConfig;
  log: Logger;
}

export async function createDriver(name: LbvmConfig['collect']['driver'], context: DriverContext): Promise<Driver> {
  switch (name) {
    // Each driver's module is loaded only when chosen (a qemu host's cron collector skips ioredis).
    case 'sim': {
      const [{ connectRedis, describeRedis, redisTargetOf }, { SimDriver }] = await Promise.all([
        import('../util/redis.ts'),
        import('./sim.ts'),
      ]);
      const redis = connectRedis(redisTargetOf(context.config));
      const driver = new SimDriver({ config: context.config, redis, ownsRedis: true });
      try {
        await driver.cluster.ensure(context.config.sim);
      } catch (error) {
        redis.disconnect();
        throw new QueueUnavailable(
          `the sim driver keeps its cluster in Redis at ${describeRedis(context.config.redis)}, which ` +
            `is unreachable (${(error as Error).message}). Start Redis or fix redis.url (LBVM_REDIS_URL).`,
          error,
        );
      }
      return driver;
    }
    case 'qemu': {
      const { QemuDriver } = await import('./qemu/driver.ts');
      return QemuDriver.fromConfig(context.config, context.log);
    }
    case 'libvirt': {
      const { LibvirtDriver } = await import('./libvirt/driver.ts');
      return LibvirtDriver.fromConfig(context.config, context.log);
    }
    case 'proxmox': {
      const { ProxmoxDriver } = await import('./proxmox/driver.ts');
      return ProxmoxDriver.fromConfig(context.config, context.log);
    }
    case 'openvz': {
      const { OpenvzDriver } = await import('./openvz/driver.ts');
      return OpenvzDriver.fromConfig(context.config, context.log);
    }
    default:
      throw new NotImplemented(`the ${String(name)} driver`);
  }
}
