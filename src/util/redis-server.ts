/**
 * Starts a private `redis-server` in a folder on a free port (AOF on, `noeviction`, as BullMQ needs),
 * for the demo, the benchmarks and the tests. Production Redis is the operator's, see deploy/redis.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, spawnTracked, waitFor, type Tracked } from './processes.ts';
import { makeDirs } from './dirs.ts';

export interface RedisServerOptions {
  dir: string;
  port?: number;
  password?: string;
  /** Extra redis.conf lines, e.g. `maxmemory-policy allkeys-lru`. */
  extraConfig?: string[];
  appendonly?: boolean;
}

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  password?: string;
  process: Tracked;
  start(): Promise<void>;
  /** SIGTERM (Redis writes its AOF), waiting for the exit. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash. */
  kill(): Promise<void>;
  /** Stops and starts again on the same port and data. */
  restart(): Promise<void>;
}

export async function startRedisServer(options: RedisServerOptions): Promise<RedisServer> {
  const { dir } = options;
  const port = options.port ?? (await freePort());
  makeDirs(dir);
  const conf = [
    `port ${port}`,
    'bind 127.0.0.1',
    `dir ${dir}`,
    `appendonly ${options.appendonly === false ? 'no' : 'yes'}`,
    'appendfsync everysec',
    'maxmemory-policy noeviction',
    'save ""',
    'daemonize no',
    `logfile ${path.join(dir, 'redis.log')}`,
    ...(options.password ? [`requirepass ${options.password}`] : []),
    ...(options.extraConfig ?? []),
  ];
  fs.writeFileSync(path.join(dir, 'redis.conf'), `${conf.join('\n')}\n`);
  const auth = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  const server: RedisServer = {
    url: `redis://${auth}127.0.0.1:${port}`,
    port,
    dir,
    password: options.password,
    process: undefined as unknown as Tracked,
    async start() {
      server.process = spawnTracked('redis-server', [path.join(dir, 'redis.conf')]);
      const client = new Redis({ port, host: '127.0.0.1', password: options.password, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on('error', () => {});
      try {
        await waitFor(
          `redis-server on port ${port} (log ${path.join(dir, 'redis.log')})`,
          async () => {
            if (client.status !== 'ready') {
              client.disconnect();
              await client.connect();
            }
            return (await client.ping()) === 'PONG';
          },
          { process: server.process, timeoutMs: 15_000 },
        );
      } finally {
        client.disconnect();
      }
    },
    async stop() {
      await server.process.stop();
    },
    async kill() {
      server.process.child.kill('SIGKILL');
      await server.process.exited;
    },
    async restart() {
      await server.stop();
      await server.start();
    },
  };
  await server.start();
  return server;
}
