/**
 * Redis connections for every part (the queue, the lease, the limits, the events, the sim driver,
 * `lbm`), and how their trouble is logged. `redis://` and `rediss://` (TLS) URLs with a password
 * (`redis://:pw@host:6379/0` or `redis://user:pw@...`) are read by ioredis itself.
 *
 * With Redis Sentinel (`redis.sentinels`, `redis.name`) ioredis asks the sentinels where the master
 * is on every (re)connection and checks the server it reaches is a master (`role`); a master that
 * dies drops its connections, and one demoted under an open connection answers writes with READONLY,
 * which makes the client reconnect. So every client (BullMQ's duplicates included: they copy these
 * options) follows the master through a failover without a restart. (ioredis' `failoverDetector`
 * is left off: its sentinel subscriptions have no error listener, and print a stack to stderr on
 * every retry while a sentinel is down.) The URL's password, user, db and TLS (`rediss://`) still apply to the
 * master; TLS applies to the sentinels too.
 */
import fs from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { parseHostPort, redactUrl } from './address.ts';
import { describeCertificateError } from './tls.ts';

/** Where Redis is: `config.redis` fits. A bare URL string is a plain Redis. */
export interface RedisTarget {
  url: string;
  /** Sentinels' `host:port`; empty or absent: the Redis at `url`. */
  sentinels?: string[];
  /** The master's name in the sentinels' configuration. */
  name?: string;
  /** The sentinels' own password (`requirepass` in sentinel.conf), if any. */
  sentinelPassword?: string;
  /** PEM text of the CA that signed the servers' certificates (`tls.ca`), for `rediss://`; none: the system's CAs. */
  ca?: string;
}

/** Where the config says Redis is, with the cluster CA (`tls.ca`) that `rediss://` servers are checked against. */
export function redisTargetOf(config: { redis: RedisTarget; tls: { ca?: string } }): RedisTarget {
  return config.tls.ca ? { ...config.redis, ca: fs.readFileSync(config.tls.ca, 'utf8') } : config.redis;
}

/** The TLS options of a connection to `target`: none for `redis://`. */
function tlsOptions(target: RedisTarget): { ca?: string } | undefined {
  if (!target.url.startsWith('rediss:')) return undefined;
  return target.ca ? { ca: target.ca } : {};
}

function targetOf(target: string | RedisTarget): RedisTarget {
  return typeof target === 'string' ? { url: target } : target;
}

function usesSentinel(target: RedisTarget): boolean {
  return (target.sentinels?.length ?? 0) > 0;
}

/** How messages and logs name the Redis: the URL with its password as `***`, or the master and its sentinels. */
export function describeRedis(target: string | RedisTarget): string {
  const t = targetOf(target);
  if (!usesSentinel(t)) return redactUrl(t.url);
  return `the Redis master "${t.name}" of sentinels ${t.sentinels!.join(', ')}`;
}

export interface ConnectOptions {
  /**
   * BullMQ workers need `maxRetriesPerRequest: null` (commands wait for a reconnect instead of
   * failing); plain clients fail a command after a few retries so a caller can report it.
   */
  blocking?: boolean;
  /** Give up connecting at once (for a one-shot CLI call) instead of retrying with backoff. */
  failFast?: boolean;
}

export function connectRedis(target: string | RedisTarget, options: ConnectOptions = {}): Redis {
  const t = targetOf(target);
  const sentinel = usesSentinel(t);
  // Between tries: up to 5 s for a plain Redis (one that is away for a minute is waited for); up to
  // 1 s with Sentinel, where the next try asks the sentinels and a failover takes seconds.
  const capMs = sentinel ? 1000 : 5000;
  const redisOptions: RedisOptions = {
    maxRetriesPerRequest: options.blocking ? null : 3,
    enableReadyCheck: true,
    retryStrategy: options.failFast ? () => null : (times) => Math.min(200 * 2 ** Math.min(times, 5), capMs),
    lazyConnect: false,
  };
  const tls = tlsOptions(t);
  if (tls) redisOptions.tls = tls;
  if (sentinel) {
    Object.assign(redisOptions, {
      sentinels: t.sentinels!.map((entry) => parseHostPort(entry)!),
      name: t.name,
      sentinelPassword: t.sentinelPassword || undefined,
      // When every sentinel is unreachable: try them all again after this (null: give up, for lbm).
      sentinelRetryStrategy: options.failFast ? () => null : (times: number) => Math.min(200 * times, capMs),
      // A master demoted under an open connection answers writes with READONLY: reconnect (through
      // the sentinels) and send the command again; it was not carried out.
      reconnectOnError: (error: Error) => (/^READONLY/.test(error.message) ? 2 : false),
      ...(tls ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
    } satisfies RedisOptions);
  }
  const client = new Redis(t.url, redisOptions);
  // ioredis emits 'error' on every failed reconnect; callers attach their own logger. Without a
  // listener Node would crash the process on the first one. The last one is kept: a command that
  // fails after it only says "Connection is closed".
  client.on('error', (error: Error) => lastErrors.set(client, error));
  return client;
}

const lastErrors = new WeakMap<Redis, Error>();

/** The last connection error of a client made by connectRedis (a refused connection, a TLS failure), if any. */
export function lastConnectionError(client: Redis): Error | undefined {
  return lastErrors.get(client);
}

/**
 * Why Redis's certificate was refused, in words an operator can act on (the URL or sentinels named,
 * what to set), or null when `error` is not a certificate problem.
 */
export function redisCertificateProblem(target: string | RedisTarget, error: Error): string | null {
  const why = describeCertificateError(error);
  if (!why) return null;
  const t = targetOf(target);
  return (
    `Redis at ${describeRedis(t)}: TLS failed: ${why}. ` +
    (t.ca
      ? 'The CA in tls.ca (LBVM_TLS_CA) did not sign it, or it does not name the address in redis.url: ' +
        'sign it with that CA (deploy/certs.sh server NAME ADDRESS...)'
      : 'Give the CA that signed it in tls.ca (LBVM_TLS_CA)')
  );
}

/** Is this error Redis (or, with Sentinel, every sentinel) being unreachable, rather than a bug? */
export function isConnectionError(error: Error & { code?: string }): boolean {
  return (
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EPIPE|EAI_AGAIN)$/.test(error.code ?? '') ||
    /Connection is closed|connect E[A-Z]+|getaddrinfo|Stream isn't writeable|read ECONNRESET|All sentinels are unreachable/.test(
      error.message,
    )
  );
}

/** The server a connection talks to now (`host:port`), or null while it is not connected. */
export function connectedAddress(client: Redis): string | null {
  const stream = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
  return client.status === 'ready' && stream?.remoteAddress ? `${stream.remoteAddress}:${stream.remotePort}` : null;
}

/**
 * Logs connection trouble once per outage (not once per retry) and once on recovery; with Sentinel,
 * also each time the connection follows the master to another server.
 */
export function logConnectionTrouble(
  client: Redis,
  log: { warn: (o: object, m: string) => void; info: (o: object, m: string) => void },
  target: string | RedisTarget,
): void {
  const redis = describeRedis(target);
  let down = false;
  let master: string | null = null;
  client.on('error', (error: Error) => {
    if (down) return;
    down = true;
    const certificate = redisCertificateProblem(target, error);
    if (certificate) log.warn({ redis, error: error.message }, `${certificate}; retrying with backoff`);
    else log.warn({ redis, error: error.message }, 'Redis unreachable; retrying with backoff');
  });
  client.on('ready', () => {
    const now = connectedAddress(client);
    const moved = usesSentinel(targetOf(target)) && master !== null && now !== null && now !== master;
    master = now ?? master;
    if (moved) log.info({ redis, master: now }, `following the Redis master to ${now} (failover)`);
    if (!down) return;
    down = false;
    log.info({ redis, master: now }, 'Redis reachable again');
  });
}

/** The master's term as the sentinels see it: Sentinel's config epoch and the master's address. */
export interface MasterTerm {
  epoch: number;
  address: string;
}

/**
 * Asks every sentinel `SENTINEL MASTER name` and returns the newest epoch any of them knows with its
 * master, provided a majority of the configured sentinels report that same epoch and address;
 * otherwise throws, saying what they answered. Why a majority: a failover is voted by a majority for
 * its new epoch, so any majority asked after it includes a sentinel that knows it (see
 * src/monitor/lease.ts). Sentinels must announce addresses (their default), not host names.
 */
export async function masterTerm(target: RedisTarget, timeoutMs = 2000): Promise<MasterTerm> {
  const sentinels = target.sentinels ?? [];
  const tls = tlsOptions(target);
  const answers = await Promise.all(
    sentinels.map(async (entry) => {
      const { host, port } = parseHostPort(entry)!;
      const client = new Redis({
        host,
        port,
        password: target.sentinelPassword || undefined,
        tls,
        lazyConnect: true,
        enableReadyCheck: false,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        connectTimeout: timeoutMs,
        commandTimeout: timeoutMs,
      });
      client.on('error', () => {});
      try {
        await client.connect();
        const reply = (await client.call('SENTINEL', 'MASTER', target.name ?? '')) as string[];
        const fields = new Map<string, string>();
        for (let index = 0; index + 1 < reply.length; index += 2) fields.set(reply[index]!, reply[index + 1]!);
        return {
          sentinel: entry,
          epoch: Number(fields.get('config-epoch')),
          address: `${fields.get('ip')}:${fields.get('port')}`,
        };
      } catch (error) {
        return { sentinel: entry, error: (error as Error).message };
      } finally {
        client.disconnect();
      }
    }),
  );
  const majority = Math.floor(sentinels.length / 2) + 1;
  const known = answers.filter(
    (answer): answer is MasterTerm & { sentinel: string } => 'epoch' in answer && Number.isInteger(answer.epoch),
  );
  const summary = answers
    .map((answer) =>
      'error' in answer
        ? `${answer.sentinel}: ${answer.error}`
        : `${answer.sentinel}: ${answer.address} epoch ${answer.epoch}`,
    )
    .join('; ');
  if (known.length < majority)
    throw new Error(
      `only ${known.length} of ${sentinels.length} sentinels answered about "${target.name}" (${summary}); a fencing token needs a majority`,
    );
  // The newest epoch any sentinel knows, and a majority naming the same master for it.
  const epoch = Math.max(...known.map((answer) => answer.epoch));
  const newest = known.find((answer) => answer.epoch === epoch)!;
  const agreeing = known.filter((answer) => answer.epoch === epoch && answer.address === newest.address).length;
  if (agreeing < majority)
    throw new Error(
      `the sentinels do not agree yet on the master of "${target.name}" (${summary}); waiting for a majority`,
    );
  return { epoch, address: newest.address };
}
