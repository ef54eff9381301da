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
  /** TLS only (no plain port): the server's certificate and key, and the CA its peers' are checked against. */
  tls?: RedisTls;
}

export interface RedisTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** redis.conf lines serving TLS alone on `port` (replication over TLS too; clients need no certificate). */
export function tlsConfig(tls: RedisTls | undefined, port: number): string[] {
  if (!tls) return [`port ${port}`];
  return [
    'port 0',
    `tls-port ${port}`,
    `tls-cert-file ${tls.certFile}`,
    `tls-key-file ${tls.keyFile}`,
    `tls-ca-cert-file ${tls.caFile}`,
    'tls-auth-clients no',
    'tls-replication yes',
  ];
}

/** ioredis options to reach a server of ours: its CA when it speaks TLS. */
export function tlsClientOptions(tls: RedisTls | undefined): { tls?: { ca: string } } {
  return tls ? { tls: { ca: fs.readFileSync(tls.caFile, 'utf8') } } : {};
}

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  password?: string;
  tls?: RedisTls;
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
    ...tlsConfig(options.tls, port),
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
    url: `${options.tls ? 'rediss' : 'redis'}://${auth}127.0.0.1:${port}`,
    port,
    dir,
    password: options.password,
    tls: options.tls,
    process: undefined as unknown as Tracked,
    async start() {
      server.process = spawnTracked('redis-server', [path.join(dir, 'redis.conf')]);
      const client = new Redis({
        port,
        host: '127.0.0.1',
        password: options.password,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        ...tlsClientOptions(options.tls),
      });
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
