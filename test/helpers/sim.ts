/**
 * A sim cluster for CLI tests: the config file's common part (Redis, a files store, a spool and the
 * sim driver, all in one temp folder) and collector rounds over the sim hosts, as `lbvm collect`
 * takes them on every host.
 */
import path from 'node:path';
import { collectRound } from '../../collectors/collect.ts';
import type { LbvmConfig } from '../../src/config/schema.ts';
import type { SimDriver } from '../../src/drivers/sim.ts';
import type { Logger } from '../../src/log.ts';
import { Spool, type SampleStore } from '../../src/store/index.ts';

/** The config keys every sim-driven CLI test shares; spread other keys beside them. */
export function simConfigBase(dir: string, redisUrl: string, prefix: string) {
  return {
    redis: { url: redisUrl, prefix },
    store: { url: `files:${path.join(dir, 'samples')}`, spoolDir: path.join(dir, 'spool') },
    collect: { stateFile: path.join(dir, 'state.json'), driver: 'sim' as const },
  };
}

/** One collector round on each of `nodes`, `rounds` times (two give CPU rates). */
export async function collectSim(options: {
  config: LbvmConfig;
  store: SampleStore;
  driver: SimDriver;
  nodes: string[];
  capacity: { cpuCores: number; memBytes: number };
  log: Logger;
  rounds?: number;
}): Promise<void> {
  const { config, store, driver, log } = options;
  const spool = new Spool({ dir: config.store.spoolDir, maxBytes: config.store.spoolMaxBytes, log });
  for (let round = 0; round < (options.rounds ?? 1); round++) {
    for (const node of options.nodes) {
      await collectRound({
        node,
        store,
        spool,
        driver,
        stateFile: config.collect.stateFile,
        logicalCapacity: options.capacity,
        log,
        baselineWaitMs: 0,
      });
    }
  }
}
