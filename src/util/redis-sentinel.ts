/**
 * A private Redis Sentinel set-up in a folder, for the tests and the soak bench: a master and a
 * replica (`redis-server`, AOF on, `noeviction`, as BullMQ needs) and three `redis-sentinel`
 * processes (Debian's `redis-sentinel`) on free ports, quorum 2, watching the master under one name.
 * Failures are detected after `downAfterMs` (1 s by default, against 30 s in a production
 * sentinel.conf), so a failover takes a few seconds. A server that cannot start fails loudly with
 * its log. Production Sentinel is the operator's: see deploy/redis/sentinel.conf.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { makeDirs } from './dirs.ts';
import { freePort, spawnTracked, waitFor, type Tracked } from './processes.ts';
import { startRedisServer, tlsClientOptions, tlsConfig, type RedisServer, type RedisTls } from './redis-server.ts';
import type { RedisTarget } from './redis.ts';

export interface SentinelBedOptions {
  dir: string;
  /** The master's name in the sentinels (redis.name). */
  name?: string;
  /** requirepass of the master and replica (and masterauth, sentinel auth-pass). */
  password?: string;
  /** The sentinels' own requirepass (redis.sentinelPassword). */
  sentinelPassword?: string;
  /** How long the master must not answer before a sentinel thinks it down. */
  downAfterMs?: number;
  sentinels?: number;
  /** Every server and sentinel on TLS alone (the target's URL is then rediss://). */
  tls?: RedisTls;
}

export interface SentinelProcess {
  address: string;
  port: number;
  dir: string;
  process: Tracked;
}

export interface SentinelBed {
  name: string;
  /** The Redis servers, the first master first; a failover changes which one is master, not this list. */
  servers: RedisServer[];
  sentinels: SentinelProcess[];
  /** What LBVM's config needs: `{ url, sentinels, name, sentinelPassword }` (config.redis fits). */
  target: Required<Omit<RedisTarget, 'ca'>>;
  /** The server a majority of the sentinels names as master now. */
  master(): Promise<RedisServer>;
  /** SIGKILL the master, as a crash. Returns it (restart it with `.start()`: it comes back as a replica). */
  killMaster(): Promise<RedisServer>;
  /** Waits until a majority of the sentinels names another server than `old` and it acts as master. */
  waitForPromotion(old: RedisServer, timeoutMs?: number): Promise<RedisServer>;
  /**
   * The master stops feeding its replicas: their link is cut and the master now asks for a password
   * they do not have, so they cannot resync. Writes from here on reach the master only, as a
   * replication lag would leave them; clients already connected go on unharmed.
   */
  starveReplicas(): Promise<void>;
  /** Everything's log, for a failing test. */
  logs(): string;
  stop(): Promise<void>;
}

/** `SENTINEL MASTER name` as a map of its fields. */
async function askSentinel(
  port: number,
  name: string,
  password?: string,
  tls?: RedisTls,
): Promise<Map<string, string>> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    password,
    ...tlsClientOptions(tls),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableReadyCheck: false,
    connectTimeout: 2000,
    commandTimeout: 2000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const reply = (await client.call('SENTINEL', 'MASTER', name)) as string[];
    const fields = new Map<string, string>();
    for (let index = 0; index + 1 < reply.length; index += 2) fields.set(reply[index]!, reply[index + 1]!);
    return fields;
  } finally {
    client.disconnect();
  }
}

async function roleOf(server: RedisServer): Promise<string | null> {
  const client = new Redis({
    port: server.port,
    host: '127.0.0.1',
    password: server.password,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
    commandTimeout: 1000,
    ...tlsClientOptions(server.tls),
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return ((await client.call('ROLE')) as [string])[0];
  } catch {
    return null;
  } finally {
    client.disconnect();
  }
}

export async function startSentinelBed(options: SentinelBedOptions): Promise<SentinelBed> {
  const name = options.name ?? 'lbvm';
  const downAfterMs = options.downAfterMs ?? 1000;
  const count = options.sentinels ?? 3;
  // Replicas sync at once (the default waits 5 s for more replicas to share one diskless transfer).
  const auth = ['repl-diskless-sync-delay 0', ...(options.password ? [`masterauth ${options.password}`] : [])];
  const started: { servers: RedisServer[]; sentinels: SentinelProcess[] } = { servers: [], sentinels: [] };
  const stopAll = async () => {
    await Promise.all(started.sentinels.map((sentinel) => sentinel.process.stop(2000)));
    await Promise.all(started.servers.map((server) => server.process?.stop(2000)));
  };
  try {
    const master = await startRedisServer({
      dir: path.join(options.dir, 'redis-a'),
      password: options.password,
      extraConfig: auth,
      tls: options.tls,
    });
    started.servers.push(master);
    const replica = await startRedisServer({
      dir: path.join(options.dir, 'redis-b'),
      password: options.password,
      extraConfig: [...auth, `replicaof 127.0.0.1 ${master.port}`],
      tls: options.tls,
    });
    started.servers.push(replica);
    await waitFor(
      `the replica on port ${replica.port} to sync from the master on ${master.port} (logs in ${options.dir})`,
      async () => {
        const client = new Redis({
          port: replica.port,
          host: '127.0.0.1',
          password: options.password,
          lazyConnect: true,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
          ...tlsClientOptions(options.tls),
        });
        client.on('error', () => {});
        try {
          await client.connect();
          return /master_link_status:up/.test(await client.info('replication'));
        } finally {
          client.disconnect();
        }
      },
      { process: replica.process, timeoutMs: 15_000 },
    );

    for (let index = 0; index < count; index++) {
      const port = await freePort();
      const dir = path.join(options.dir, `sentinel-${index + 1}`);
      makeDirs(dir);
      const conf = [
        ...tlsConfig(options.tls, port),
        'bind 127.0.0.1',
        'daemonize no',
        `dir ${dir}`,
        `logfile ${path.join(dir, 'sentinel.log')}`,
        ...(options.sentinelPassword ? [`requirepass ${options.sentinelPassword}`] : []),
        `sentinel monitor ${name} 127.0.0.1 ${master.port} ${Math.floor(count / 2) + 1}`,
        `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
        `sentinel failover-timeout ${name} ${Math.max(5000, downAfterMs * 5)}`,
        `sentinel parallel-syncs ${name} 1`,
        ...(options.password ? [`sentinel auth-pass ${name} ${options.password}`] : []),
      ];
      // Sentinel rewrites its file as it learns (replicas, other sentinels, failovers): its own copy.
      fs.writeFileSync(path.join(dir, 'sentinel.conf'), `${conf.join('\n')}\n`);
      const process = spawnTracked('redis-sentinel', [path.join(dir, 'sentinel.conf')]);
      started.sentinels.push({ address: `127.0.0.1:${port}`, port, dir, process });
    }
    // Ready when every sentinel knows the replica and the other sentinels (else no quorum to fail over).
    for (const sentinel of started.sentinels) {
      await waitFor(
        `redis-sentinel on port ${sentinel.port} to know the replica and ${count - 1} other sentinels (log ${path.join(sentinel.dir, 'sentinel.log')})`,
        async () => {
          const fields = await askSentinel(sentinel.port, name, options.sentinelPassword, options.tls);
          return Number(fields.get('num-slaves')) >= 1 && Number(fields.get('num-other-sentinels')) >= count - 1;
        },
        { process: sentinel.process, timeoutMs: 30_000 },
      );
    }
  } catch (error) {
    const logs = readLogs(options.dir);
    await stopAll();
    throw new Error(`${(error as Error).message}\n${logs}`);
  }

  const servers = started.servers;
  const sentinels = started.sentinels;
  const majority = Math.floor(sentinels.length / 2) + 1;
  const named = async (): Promise<RedisServer | null> => {
    const ports = await Promise.all(
      sentinels.map((sentinel) =>
        askSentinel(sentinel.port, name, options.sentinelPassword, options.tls).then(
          (fields) => Number(fields.get('port')),
          () => null,
        ),
      ),
    );
    for (const server of servers) if (ports.filter((port) => port === server.port).length >= majority) return server;
    return null;
  };
  const auth0 = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  const bed: SentinelBed = {
    name,
    servers,
    sentinels,
    target: {
      url: `${options.tls ? 'rediss' : 'redis'}://${auth0}127.0.0.1:${servers[0]!.port}`,
      sentinels: sentinels.map((sentinel) => sentinel.address),
      name,
      sentinelPassword: options.sentinelPassword ?? '',
    },
    async master() {
      const server = await named();
      if (!server) throw new Error(`no majority of the sentinels names a master of "${name}"\n${bed.logs()}`);
      return server;
    },
    async killMaster() {
      const server = await bed.master();
      await server.kill();
      return server;
    },
    async waitForPromotion(old, timeoutMs = 30_000) {
      let promoted: RedisServer | null = null;
      await waitFor(
        `the sentinels to promote a replica of "${name}" after port ${old.port}`,
        async () => {
          const server = await named();
          promoted = server && server !== old && (await roleOf(server)) === 'master' ? server : null;
          return promoted !== null;
        },
        { timeoutMs },
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${bed.logs()}`);
      });
      return promoted!;
    },
    async starveReplicas() {
      const server = await bed.master();
      const client = new Redis({
        port: server.port,
        host: '127.0.0.1',
        password: options.password,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        ...tlsClientOptions(options.tls),
      });
      client.on('error', () => {});
      try {
        await client.config('SET', 'requirepass', `starved-${Date.now()}-${Math.random()}`);
        await client.call('CLIENT', 'KILL', 'TYPE', 'replica');
        const info = await client.info('replication');
        if (!/connected_slaves:0/.test(info)) throw new Error(`the replicas are still connected:\n${info}`);
      } finally {
        client.disconnect();
      }
    },
    logs: () => readLogs(options.dir),
    stop: stopAll,
  };
  return bed;
}

/** The last lines of every server's and sentinel's log under `dir`. */
function readLogs(dir: string): string {
  const parts: string[] = [];
  for (const entry of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    for (const file of ['redis.log', 'sentinel.log']) {
      const full = path.join(dir, entry, file);
      if (fs.existsSync(full))
        parts.push(`--- ${entry}/${file}\n${fs.readFileSync(full, 'utf8').split('\n').slice(-25).join('\n')}`);
    }
  }
  return parts.join('\n');
}
