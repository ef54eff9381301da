/**
 * The sample store: `openStore(url)` gives a `SampleStore` for `files:DIR` or
 * `influx(s)://[user:pass@]host:port/db`; `Spool` and `deliver()` make writes survive an unreachable
 * store. May import: model, errors, log. Imported by: collectors, monitor, cli.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LbvmConfig } from '../config/schema.ts';
import { UsageError } from '../errors.ts';
import { redactUrl } from '../util/address.ts';
import type { Logger } from '../log.ts';
import { FilesStore } from './files.ts';
import { InfluxStore } from './influx.ts';
import { Spool } from './spool.ts';
import type { SampleStore } from './types.ts';

export * from './types.ts';
export { StoreAuthFailed, StoreWriteFailed } from './errors.ts';
export { Spool, deliver, type DeliveryReport, type SpoolItem, type ReplayResult } from './spool.ts';
export { FilesStore } from './files.ts';
export { InfluxStore } from './influx.ts';
export { encodeName, decodeName } from './names.ts';
export { validateSample, screenSamples, LIMITS } from './validate.ts';

export interface OpenStoreOptions {
  /** Raw samples older than this are pruned (files) or expire (InfluxDB policy lbvm_raw). Default 14 days. */
  retentionMs?: number;
  /** How long InfluxDB keeps the 5-minute means (policy lbvm_5m). Default 400 days. */
  downsampleRetentionMs?: number;
  /** Points per InfluxDB write. Default 5000. */
  batchSize?: number;
  /** Where skipped lines, refused points and similar are reported (one warning per read or write). */
  log?: Logger;
  /** Relative `files:` folders are resolved against this (default: the working directory). */
  cwd?: string;
  /** Samples dated later than now + this are refused by readers. Default 5 minutes. */
  futureToleranceMs?: number;
  /** InfluxDB request timeout. Default 10 s. */
  requestTimeoutMs?: number;
  /** InfluxDB: announce samples stored late (default true; off only to load history in bulk, see influx.ts). */
  announceLate?: boolean;
  /** InfluxDB: also write each host's round packed in one lbvm_round row (default true; off: a collector of before). */
  packRounds?: boolean;
  /** InfluxDB: the clock that says when samples were stored, for the late-sample announcements (tests). */
  clock?: () => number;
  /** PEM text of the CA that signed InfluxDB's certificate, for `influxs://` (`tls.ca`). */
  ca?: string;
}

/** The store as the config describes it (store.url, retention, batch size). For daemons and lbm. */
export function openStoreFor(config: LbvmConfig, log?: Logger): SampleStore {
  return openStore(config.store.url, {
    retentionMs: config.store.retention,
    downsampleRetentionMs: config.store.downsampleRetention,
    batchSize: config.store.batchSize,
    log,
    ca: config.tls.ca && config.store.url.startsWith('influxs:') ? fs.readFileSync(config.tls.ca, 'utf8') : undefined,
  });
}

/** The local spool as the config describes it (store.spoolDir, store.spoolMaxBytes). */
export function spoolFor(config: LbvmConfig, log?: Logger): Spool {
  return new Spool({ dir: path.resolve(config.store.spoolDir), maxBytes: config.store.spoolMaxBytes, log });
}

export const DEFAULT_RETENTION_MS = 14 * 86_400_000;
export const DEFAULT_DOWNSAMPLE_RETENTION_MS = 400 * 86_400_000;

/** Opens the store named by `url`. Nothing is contacted yet: the first write creates what is missing. */
export function openStore(url: string, options: OpenStoreOptions = {}): SampleStore {
  const retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
  if (url.startsWith('files:')) {
    const dir = url.slice('files:'.length);
    if (!dir) throw new UsageError(`store URL ${JSON.stringify(url)}: expected files:DIR`);
    return new FilesStore({
      dir: path.resolve(options.cwd ?? process.cwd(), dir),
      retentionMs,
      log: options.log,
      futureToleranceMs: options.futureToleranceMs,
    });
  }
  if (url.startsWith('influx://') || url.startsWith('influxs://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`store URL ${redactUrl(url)}: not a valid URL; expected influx://[user:pass@]host:port/db`);
    }
    const database = decodeURIComponent(parsed.pathname.replace(/^\//, ''));
    if (!parsed.hostname || !database || database.includes('/')) {
      throw new UsageError(
        `store URL ${redactUrl(url)}: expected influx://[user:pass@]host:port/db with a database name`,
      );
    }
    return new InfluxStore({
      url: parsed,
      displayUrl: redactUrl(url),
      retentionMs,
      downsampleRetentionMs: options.downsampleRetentionMs ?? DEFAULT_DOWNSAMPLE_RETENTION_MS,
      batchSize: options.batchSize ?? 5000,
      log: options.log,
      futureToleranceMs: options.futureToleranceMs,
      requestTimeoutMs: options.requestTimeoutMs,
      announceLate: options.announceLate,
      packRounds: options.packRounds,
      clock: options.clock,
      ca: options.ca,
    });
  }
  throw new UsageError(
    `store URL ${JSON.stringify(redactUrl(url))}: expected files:DIR, influx://[user:pass@]host:port/db or influxs://...`,
  );
}
