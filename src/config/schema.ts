/**
 * The one configuration schema, with its defaults beside each key. Every key can be set in the
 * YAML file (default ./lbvm.yaml) and overridden by an LBVM_* environment variable derived from its
 * path: `monitor.interval` -> LBVM_MONITOR_INTERVAL, `store.spoolMaxBytes` -> LBVM_STORE_SPOOL_MAX_BYTES.
 *
 * Durations are written `500ms`, `10s`, `5m`, `1h` (or a number of milliseconds) and parsed to
 * milliseconds; sizes are written `64MiB`, `2GiB` (or a number of bytes) and parsed to bytes.
 * The defaults run everything on one machine: the files store under ./.lbvm/ and Redis on localhost.
 */
import os from 'node:os';
import { z } from 'zod';
import { DEFAULT_ROUND, POLICY_NAMES } from '../../policies/names.ts';
import { DEFAULT_SETTINGS } from '../../policies/settings.ts';
import { POWER_CURVES, powerCurveProblem } from '../../policies/power.ts';
import { parseBytes, parseDurationMs } from '../units.ts';
import { parseHostPort } from '../util/address.ts';
import { certificateFileProblem, identityProblems, keyFileProblem } from '../util/tls.ts';

/**
 * A duration's text or number as milliseconds, or the issue that names what was expected; `positive`
 * refuses 0 too (an interval, a lease, a timeout of nothing would spin or expire at once).
 */
function toMs(value: string | number, ctx: z.RefinementCtx, positive = false): number {
  const ms = parseDurationMs(value);
  if (ms === null || (positive && ms <= 0)) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message:
        ms === null
          ? 'expected a duration like 500ms, 10s, 5m or 1h'
          : 'expected a duration above 0, like 500ms, 10s or 5m',
    });
    return z.NEVER;
  }
  return ms;
}

/** A duration in milliseconds, written `10s`, `5m`, `1h` or a number of ms; `positive`: above 0. */
export const duration = (fallback: string | number, positive = false) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((value, ctx) => toMs(value, ctx, positive));

/** A duration above zero: an interval, a lease, a timeout. */
const positiveDuration = (fallback: string | number) => duration(fallback, true);

/** A duration with no default: undefined when not given (the reader computes the default). */
const optionalDuration = () =>
  z
    .union([z.string(), z.number()])
    .optional()
    .transform((value, ctx) => (value === undefined ? undefined : toMs(value, ctx)));

/** A size in bytes, written `64MiB`, `2GiB` or a number of bytes. */
export const bytes = (fallback: string | number) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((value, ctx) => {
      const parsed = parseBytes(value);
      if (parsed === null) {
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          message: 'expected a size like 512MiB, 4GiB or a number of bytes',
        });
        return z.NEVER;
      }
      return parsed;
    });

const share = (fallback: number) =>
  z
    .number({ invalid_type_error: 'expected a number between 0 and 1' })
    .min(0, 'expected a number between 0 and 1')
    .max(1, 'expected a number between 0 and 1')
    .default(fallback);

const positiveInt = (fallback: number) =>
  z
    .number({ invalid_type_error: 'expected a whole number' })
    .int('expected a whole number')
    .min(1, 'expected a whole number >= 1')
    .default(fallback);

/** A URL with one of the given schemes (checked by parsing it, not by a regex). */
const urlWithScheme = (schemes: string[], fallback: string, example: string) =>
  z
    .string()
    .default(fallback)
    .superRefine((value, ctx) => {
      const scheme = value.split(':', 1)[0]!;
      let ok = schemes.includes(scheme);
      if (ok && scheme !== 'files') {
        try {
          const url = new URL(value);
          ok = url.hostname.length > 0;
        } catch {
          ok = false;
        }
      }
      if (ok && scheme === 'files') ok = value.length > 'files:'.length;
      if (!ok) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a URL like ${example}` });
    });

/**
 * The policies' defaults are the config's: the limits, the threshold level, the watermarks, the
 * headroom, the forecast's horizon and the migration bandwidth are written once, in
 * policies/settings.ts (DEFAULT_SETTINGS), and taken from there.
 */
const POLICY = DEFAULT_SETTINGS;
const LIMITS = DEFAULT_SETTINGS.limits;

/** A PEM file checked at start (readable, holding what it should); empty: not given. */
const pemFile = (check: (file: string) => string | null) =>
  z
    .string()
    .default('')
    .superRefine((file, ctx) => {
      const problem = file ? check(file) : null;
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
    });
const certificateFile = pemFile(certificateFileProblem);
const keyFile = pemFile(keyFileProblem);

export const STORE_URL_EXAMPLE = 'files:./.lbvm/samples or influx://user:pass@host:8086/lbvm';
export const REDIS_URL_EXAMPLE = 'redis://[:password@]host:6379[/db] or rediss://...';
const SENTINEL_ADDRESS_EXPECTED = 'expected a sentinel address host:port, like 10.0.0.1:26379 or [fd00::1]:26379';

const hostCapacity = z
  .object({
    cpuCores: z.number().positive('expected a number of cores > 0'),
    memBytes: bytes('1GiB'),
    /** Address of this host's `lbvm agent` control port (qemu driver), host:port. */
    agent: z.string().optional(),
    /** libvirt URI of this host (libvirt driver), e.g. qemu+ssh://n1/system. */
    uri: z.string().optional(),
  })
  .strict();

const groupRule = z
  .object({
    name: z.string().min(1),
    vms: z.array(z.string().min(1)).min(2, 'expected at least two VMs'),
    hard: z.boolean().default(true),
  })
  .strict();

const pinRule = z
  .object({
    name: z.string().min(1),
    vm: z.string().min(1),
    hosts: z.array(z.string().min(1)).min(1, 'expected at least one host'),
    /** `must` (hard) or `should` (soft). */
    strength: z.enum(['must', 'should']).default('must'),
  })
  .strict();

const POWER_CURVE_EXPECTED =
  'expected watts at evenly spaced CPU use from 0% to 100% (SPECpower: 0, 10, … 100%), like [86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117], ' +
  `or one of: ${Object.keys(POWER_CURVES).join(', ')}`;

/** A host's power curve (policies/power.ts): a list of watts, or the name of a known one. */
const powerCurve = z.unknown().transform((value, ctx) => {
  if (typeof value === 'string' && value in POWER_CURVES) return [...POWER_CURVES[value as keyof typeof POWER_CURVES]];
  const problem = Array.isArray(value) ? powerCurveProblem(value) : null;
  if (!Array.isArray(value) || problem) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: problem ? `${problem}; ${POWER_CURVE_EXPECTED}` : POWER_CURVE_EXPECTED,
    });
    return z.NEVER;
  }
  return value as number[];
});

export const DRIVER_NAMES = ['qemu', 'sim', 'libvirt', 'proxmox', 'openvz'] as const;

export const configSchema = z
  .object({
    /** This host's name for `lbvm collect` and `lbvm agent`. Defaults to the machine's hostname. */
    node: z.string().min(1).default(os.hostname()),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'),
        /** `auto`: readable on a terminal, JSON otherwise. */
        format: z.enum(['auto', 'json', 'pretty']).default('auto'),
      })
      .strict()
      .default({}),
    store: z
      .object({
        /** Where samples and events live: `files:DIR` (shared folder) or `influx(s)://[user:pass@]host:port/db`. */
        url: urlWithScheme(['files', 'influx', 'influxs'], 'files:./.lbvm/samples', STORE_URL_EXAMPLE),
        /** Samples older than this are deleted (files) or expire (InfluxDB raw retention policy). */
        retention: duration('14d'),
        /** Local spool for samples the store could not take; replayed in order on the next write. */
        spoolDir: z.string().default('./.lbvm/spool'),
        spoolMaxBytes: bytes('64MiB'),
        /** Samples buffered before one write to InfluxDB. */
        batchSize: positiveInt(5000),
        /** How long InfluxDB keeps the 5-minute means of the continuous queries (retention policy lbvm_5m). */
        downsampleRetention: duration('400d'),
      })
      .strict()
      .default({}),
    redis: z
      .object({
        /**
         * The Redis to use: `redis://[:password@]host:6379[/db]`, `rediss://` for TLS. With
         * `sentinels`, its password, TLS (`rediss://`) and db still apply; its host:port is not used.
         */
        url: urlWithScheme(['redis', 'rediss'], 'redis://127.0.0.1:6379', REDIS_URL_EXAMPLE),
        /** Key prefix of every LBVM key and BullMQ queue, so several clusters can share one Redis. */
        prefix: z.string().min(1).default('lbvm'),
        /**
         * Redis Sentinel: every sentinel's `host:port` (list them all: a fencing token is taken only
         * when a majority of them agree on the master). Every connection then follows the master
         * through failovers. Empty: the Redis at `url`.
         */
        sentinels: z
          .unknown()
          .default([])
          .transform((value, ctx) => {
            // A list, or one string with commas (`LBVM_REDIS_SENTINELS=h1:26379,h2:26379`).
            const list =
              typeof value === 'string'
                ? value
                    .split(',')
                    .map((entry) => entry.trim())
                    .filter(Boolean)
                : value;
            if (!Array.isArray(list)) {
              ctx.addIssue({
                code: z.ZodIssueCode.custom,
                message: `${SENTINEL_ADDRESS_EXPECTED}, in a list: [h1:26379, h2:26379, h3:26379]`,
              });
              return z.NEVER;
            }
            const bad = list.filter((entry) => typeof entry !== 'string' || parseHostPort(entry) === null);
            if (bad.length > 0) {
              ctx.addIssue({
                code: z.ZodIssueCode.custom,
                message: `${SENTINEL_ADDRESS_EXPECTED}; not one: ${bad.map((entry) => JSON.stringify(entry)).join(', ')}`,
              });
              return z.NEVER;
            }
            return list as string[];
          }),
        /** The master's name in the sentinels' configuration (`sentinel monitor NAME host port quorum`). */
        name: z.string().default(''),
        /** The sentinels' own password (their `requirepass`), if any; from LBVM_REDIS_SENTINEL_PASSWORD, not the file. */
        sentinelPassword: z.string().default(''),
      })
      .strict()
      .superRefine((redis, ctx) => {
        if (redis.sentinels.length > 0 && redis.name === '') {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['name'],
            message:
              "expected the master's name as the sentinels know it (sentinel monitor NAME ...), required with redis.sentinels",
          });
        }
        if (redis.sentinels.length === 0 && redis.name !== '') {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['sentinels'],
            message: 'expected a list of sentinels (host:port, ...) to go with redis.name',
          });
        }
      })
      .default({}),
    collect: z
      .object({
        /** Loop interval for `lbvm collect --every`; cron runs one round a minute instead. */
        interval: positiveDuration('60s'),
        driver: z.enum(DRIVER_NAMES).default('qemu'),
        /** Small file keeping /proc counters between cron runs, for deltas. */
        stateFile: z.string().default('./.lbvm/collect-state.json'),
        /**
         * Where the host's use comes from: `proc` (this machine's /proc), `guests` (the sum of its VMs',
         * with the capacity of `hosts.<node>`: a logical host), or `auto`: `guests` when `hosts.<node>`
         * exists and the node is not this machine's hostname (several agents on one machine), else `proc`.
         */
        hostUse: z.enum(['auto', 'proc', 'guests']).default('auto'),
      })
      .strict()
      .default({}),
    monitor: z
      .object({
        interval: positiveDuration('60s'),
        mode: z.enum(['enforce', 'report']).default('enforce'),
        /** Policies run in this order each round. */
        policies: z.array(z.enum(POLICY_NAMES)).default([...DEFAULT_ROUND]),
        /** How much history the demand forecast reads (policies/demand.ts); 2h measured best on the shared traces. */
        window: positiveDuration('2h'),
        /** A host whose last sample is older than this many intervals is unknown. */
        staleAfterIntervals: positiveInt(3),
        /** Above this share of unknown hosts, the monitor moves nothing. */
        maxUnknownHostShare: share(0.3),
        /** Leader lease; a standby takes over within two of these. */
        lease: positiveDuration('15s'),
        /** Address of /healthz and /metrics. */
        listen: z.string().default('127.0.0.1:9464'),
      })
      .strict()
      .default({}),
    limits: z
      .object({
        movesPerRound: positiveInt(LIMITS.movesPerRound),
        movesPerHour: positiveInt(LIMITS.movesPerHour),
        migrationsPerSourceHost: positiveInt(LIMITS.migrationsPerSourceHost),
        migrationsPerDestinationHost: positiveInt(LIMITS.migrationsPerDestinationHost),
        migrationsInCluster: positiveInt(LIMITS.migrationsInCluster),
        /** A VM that moved is not moved again for this long. */
        cooldown: duration(LIMITS.cooldownMs),
        /**
         * A VM is not moved back to a host it left for this long; unset: 2 h, or 4 × the cooldown when
         * that is longer.
         */
        pingPongWindow: optionalDuration(),
        /** Failed migrations in a row after which a VM is quarantined. */
        quarantineAfterFailures: positiveInt(LIMITS.quarantineAfterFailures),
        quarantine: duration(LIMITS.quarantineMs),
      })
      .strict()
      .default({}),
    policies: z
      .object({
        /** vCPU-independent CPU overcommit: a host may be given demand up to cpuCores × this. */
        cpuOvercommit: z.number().min(1, 'expected a number >= 1').default(POLICY.cpuOvercommit),
        balance: z
          .object({
            /** Migration threshold, 1 (only mandatory moves) to 5 (aggressive). */
            threshold: z
              .number()
              .int('expected a whole number from 1 to 5')
              .min(1, 'expected a whole number from 1 to 5')
              .max(5, 'expected a whole number from 1 to 5')
              .default(POLICY.balance.threshold),
            weights: z
              .object({
                cpu: z.number().min(0, 'expected a number >= 0').default(POLICY.weights.cpu),
                /**
                 * 0 by default: memory committed to VMs is a limit (never overfilled) and a watermark
                 * (overload relieves hosts above high), not a load to spread; a positive weight spreads it too.
                 */
                mem: z.number().min(0, 'expected a number >= 0').default(POLICY.weights.mem),
                disk: z.number().min(0, 'expected a number >= 0').default(POLICY.weights.disk),
                net: z.number().min(0, 'expected a number >= 0').default(POLICY.weights.net),
              })
              .strict()
              .default({}),
          })
          .strict()
          .default({}),
        overload: z
          .object({
            highWatermark: share(POLICY.overload.highWatermark),
            lowWatermark: share(POLICY.overload.lowWatermark),
          })
          .strict()
          .default({}),
        consolidate: z
          .object({
            /** Share of each host's capacity kept free after packing. */
            headroom: share(POLICY.consolidate.headroom),
            spareHosts: z.number().int().min(0, 'expected a whole number >= 0').default(POLICY.consolidate.spareHosts),
          })
          .strict()
          .default({}),
        /** Demand forecast (policies/demand.ts): the window's mean, pulled toward the latest sample as far as the VM's load holds. */
        demand: z
          .object({
            /** How far ahead a forecast looks (its mean over the next `horizon`); about the time a move must pay off in. */
            horizon: duration(POLICY.demand.horizonMs),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    rules: z
      .object({
        affinity: z.array(groupRule).default([]),
        antiAffinity: z.array(groupRule).default([]),
        pins: z.array(pinRule).default([]),
        /** VM names or glob patterns (`db-*`) the balancer never moves. */
        ignore: z.array(z.string().min(1)).default([]),
      })
      .strict()
      .default({}),
    /** Hosts by name, with their capacity (required for logical hosts) and how to reach them. */
    hosts: z.record(z.string().min(1), hostCapacity).default({}),
    /**
     * Hosts' power curves: `lbm report` estimates the energy they used and what the hosts consolidation
     * would power down draw. None set: no estimate.
     */
    power: z
      .object({
        /** Every host without its own curve. */
        default: powerCurve.optional(),
        /** By host name. */
        hosts: z.record(z.string().min(1), powerCurve).default({}),
      })
      .strict()
      .default({}),
    migration: z
      .object({
        /** `live` or `checkpoint` (stop, save, copy, restore) for monitor-made moves. */
        mode: z.enum(['live', 'checkpoint']).default('live'),
        /** Maximum pause of the guest at the end of a live migration. */
        downtimeLimit: duration('300ms'),
        /** Bandwidth cap per migration, bytes per second. */
        bandwidthBytesPerSec: bytes(POLICY.cost.bandwidthBytesPerSec),
        /**
         * What one migration stream carries on these hosts when the link is not the limit, for the
         * cost model (0: not counted): CPU-bound, lower with TLS; `bench migrate --netns` measures it.
         */
        streamBytesPerSec: bytes(0),
        /**
         * For the cost model: how fast a guest's dirtying slows its own migration (× 1 + dirty rate ÷
         * this; 0: not counted); `bench migrate --netns` measures it.
         */
        dirtyTrackingBytesPerSec: bytes(0),
        /** A migration taking longer than this is cancelled (guest stays on its source). */
        timeout: positiveDuration('10m'),
        attempts: positiveInt(3),
        /** First retry delay after a failed attempt; doubles with each further attempt. */
        backoff: duration('10s'),
        /** A worker that cannot renew its hold on a job this long loses it (BullMQ lock; also the life of its slots). */
        lockDuration: positiveDuration('30s'),
        /** A job that finds no free slot (or its VM busy) is delayed this long (plus jitter), without using an attempt. */
        slotWait: positiveDuration('2s'),
        /** Migrations one `lbvm worker` process runs at once (the limits still hold across all workers). */
        workerConcurrency: positiveInt(4),
      })
      .strict()
      .default({}),
    agent: z
      .object({
        /** Address the agent's control port binds to. Never 0.0.0.0 unless you mean it. */
        listen: z.string().default('127.0.0.1:7300'),
        /** Folder with the agent's guests' definitions and runtime state. */
        stateDir: z.string().default('./.lbvm/agent'),
        /** Name of the environment variable holding the agent's shared token (never in the file). */
        tokenEnv: z.string().default('LBVM_AGENT_TOKEN'),
        /** QEMU accelerator for guests: `tcg` works everywhere, `kvm` where Linux guests boot under it. */
        accel: z.enum(['tcg', 'kvm']).default('tcg'),
        /** Address a destination binds its incoming migration port to. */
        migrationAddress: z.string().default('127.0.0.1'),
      })
      .strict()
      .default({}),
    /**
     * The cluster's own TLS (deploy/certs.sh makes the files): with `ca`, `cert` and `key` set, an agent's
     * control port asks every caller for a certificate signed by `ca` (and still for the token), callers
     * check the agent's certificate, and QEMU migration streams are encrypted both ways.
     */
    tls: z
      .object({
        /** PEM file of the cluster CA: the only issuer this process trusts for agents and their callers, and for rediss:// and influxs:// servers. */
        ca: certificateFile,
        /** PEM file of this process's certificate: an agent's (`certs.sh agent`), or a worker's or collector's (`certs.sh client`). */
        cert: certificateFile,
        /** PEM file of its private key (mode 0600 or 0640). */
        key: keyFile,
        /** Encrypt live migration streams (QEMU tls-creds-x509) when ca, cert and key are set; false: in the clear. */
        migration: z.boolean().default(true),
      })
      .strict()
      .superRefine((tls, ctx) => {
        for (const { field, problem } of identityProblems(tls))
          ctx.addIssue({ code: z.ZodIssueCode.custom, path: [field], message: problem });
      })
      .default({}),
    sim: z
      .object({
        hosts: positiveInt(20),
        vms: positiveInt(300),
        hostCpuCores: z.number().positive().default(16),
        hostMem: bytes('64GiB'),
        /** Probability that a simulated migration fails. */
        failureRate: share(0),
        seed: z.number().int().default(1),
        /** Period of the simulated daily-like CPU pattern of each VM. */
        period: positiveDuration('1h'),
        /** Simulated migrations take memory ÷ bandwidth ÷ this (10 = ten times faster than real). */
        speedup: z.number().positive('expected a number > 0').default(1),
      })
      .strict()
      .default({}),
    /** Settings of the libvirt, proxmox and openvz drivers; only the chosen driver reads its own. */
    drivers: z
      .object({
        libvirt: z
          .object({
            /** libvirt URI of each host by name: `{ n1: 'qemu+ssh://n1/system' }` (else `hosts.<name>.uri`). */
            hosts: z
              .record(z.string().min(1), z.string().min(1, 'expected a libvirt URI like qemu+ssh://host/system'))
              .default({}),
            /** `virsh migrate --auto-converge`: throttle a guest that dirties memory faster than it can be copied. */
            autoConverge: z.boolean().default(true),
            /** Pass `migration.bandwidthBytesPerSec` as `virsh migrate --bandwidth` (MiB/s). */
            bandwidthCap: z.boolean().default(true),
            /**
             * `virsh migrate --copy-storage-all`: copy local disks to the destination (which must have
             * images of the same size there). Off: only VMs on shared storage move, and the monitor
             * does not plan VMs with local disks (DRIVER_CANNOT_MOVE_DISKS).
             */
            copyStorage: z.boolean().default(false),
            /** How often `virsh domjobinfo` is asked for progress. */
            pollInterval: positiveDuration('1s'),
            /** The virsh executable. */
            virsh: z.string().min(1).default('virsh'),
          })
          .strict()
          .default({}),
        proxmox: z
          .object({
            /** The API's base URL, any node of the cluster: https://pve1:8006 (the `/api2/json` path is added). */
            url: z.string().default(''),
            /** Environment variable holding the API token `USER@REALM!TOKENID=SECRET` (never in this file). */
            tokenEnv: z.string().min(1).default('LBVM_PROXMOX_TOKEN'),
            /** Or a file (mode 0600) holding the token; read when the variable is not set. */
            tokenFile: z.string().default(''),
            /** Verify the server's TLS certificate. Keep it on: give caFile or fingerprint for a self-signed one. */
            tlsVerify: z.boolean().default(true),
            /** PEM file of the CA that signed the API's certificate (Proxmox's own: /etc/pve/pve-root-ca.pem). */
            caFile: z.string().default(''),
            /** Or pin the certificate's SHA-256 fingerprint (`pvenode cert info`), AA:BB:... */
            fingerprint: z
              .string()
              .default('')
              .refine(
                (value) => value === '' || /^([0-9a-f]{2}:?){31}[0-9a-f]{2}$/i.test(value.trim()),
                'expected a SHA-256 fingerprint: 32 hex bytes like AB:CD:...',
              ),
            /** How often a migration task's status and log are read. */
            pollInterval: positiveDuration('1s'),
            /** One API call taking longer than this fails. */
            requestTimeout: positiveDuration('30s'),
            /** How long a move of an HA-managed guest waits for the HA manager to start the migration task it asked for. */
            haTaskWait: positiveDuration('5m'),
          })
          .strict()
          .default({}),
        openvz: z
          .object({
            /** ssh target of each host by name: `{ n1: 'root@10.0.0.1' }`; its host part is also the migration destination. */
            hosts: z.record(z.string().min(1), z.string().min(1, 'expected an ssh target like root@host')).default({}),
            /** `vzctl` (OpenVZ: vzlist -j, vzmigrate --online) or `prlctl` (Virtuozzo: prlctl list -j, prlctl migrate). */
            flavour: z.enum(['vzctl', 'prlctl']).default('vzctl'),
            /** Options given to ssh before the target. */
            sshOptions: z.array(z.string()).default(['-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10']),
            /** The ssh executable. */
            ssh: z.string().min(1).default('ssh'),
            /** The hosts' kernel CONFIG_HZ: /proc/vz/vestat counts CPU time in these jiffies (1000 on OpenVZ 6 and 7 kernels). */
            kernelHz: positiveInt(1000),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
  })
  .strict();

export type LbvmConfig = z.output<typeof configSchema>;
export type LbvmConfigInput = z.input<typeof configSchema>;
