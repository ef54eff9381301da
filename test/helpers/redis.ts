/** A real redis-server for one test file: free port, temporary folder, AOF on, noeviction. */
import { startRedisServer, type RedisServer, type RedisServerOptions } from '../../src/util/redis-server.ts';
import { tmpDir } from './tmp.ts';

export type { RedisServer } from '../../src/util/redis-server.ts';
export type RedisOptions = Omit<RedisServerOptions, 'dir'>;

export function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  return startRedisServer({ ...options, dir: tmpDir('lbvm-redis-') });
}
