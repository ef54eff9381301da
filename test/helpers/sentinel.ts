/** A real Redis Sentinel set-up for one test file: master, replica, three sentinels, in a temporary folder. */
import { startSentinelBed, type SentinelBed, type SentinelBedOptions } from '../../src/util/redis-sentinel.ts';
import { tmpDir } from './tmp.ts';

export type { SentinelBed } from '../../src/util/redis-sentinel.ts';

export function startSentinel(options: Omit<SentinelBedOptions, 'dir'> = {}): Promise<SentinelBed> {
  return startSentinelBed({ ...options, dir: tmpDir('lbvm-sentinel-') });
}
