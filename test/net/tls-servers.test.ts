/**
 * Redis and InfluxDB over TLS alone, with the cluster's certificates from deploy/certs.sh: a real
 * `redis-server` with only a TLS port (and a password) and a real `influxd` with `https-enabled`.
 * With the CA in `tls.ca`, `rediss://` and `influxs://` work (the worker, BullMQ's connections, lbm,
 * the store); without it, or with another cluster's CA, every command fails with exit 3 and a message
 * naming the URL (password `***`) and the certificate problem, and no stack. About 15 s.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStore } from '../../src/store/index.ts';
import { makeClusterCerts, type ClusterCerts } from '../../src/util/certs.ts';
import { cleanEnv, ROOT, runCli } from '../helpers/cli.ts';
import { startInflux, type InfluxServer } from '../helpers/influx.ts';
import { spawnTracked, waitFor } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { hostSample } from '../store/builders.ts';

describe('Redis and InfluxDB over TLS with the cluster CA', () => {
  const password = 'tls-Redis-Secret-pw';
  let certs: ClusterCerts;
  let strangers: ClusterCerts;
  let redis: RedisServer;
  let influx: InfluxServer;
  before(async () => {
    const dir = tmpDir('lbvm-tls-servers-');
    certs = await makeClusterCerts(path.join(dir, 'cluster'), {
      servers: { redis: ['127.0.0.1'], influx: ['127.0.0.1', 'localhost'] },
    });
    strangers = await makeClusterCerts(path.join(dir, 'strangers'), {});
    const files = (name: string) => ({
      certFile: certs.files(name).cert,
      keyFile: certs.files(name).key,
      caFile: certs.ca,
    });
    [redis, influx] = await Promise.all([
      startRedis({ tls: files('redis'), password }),
      startInflux({ https: files('influx') }),
    ]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), influx?.stop()]);
  });

  it('rediss:// with tls.ca: the worker (and its BullMQ connections) and lbm work; without it or with another CA, exit 3 naming the URL and why', async () => {
    assert.match(redis.url, /^rediss:\/\//);
    const cwd = tmpDir();
    const env = (extra: Record<string, string>) =>
      cleanEnv({ LBVM_REDIS_URL: redis.url, LBVM_COLLECT_DRIVER: 'sim', LBVM_LOG_FORMAT: 'json', ...extra });
    const worker = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), 'worker'], {
      env: env({ LBVM_TLS_CA: certs.ca }),
      cwd,
    });
    await waitFor('the worker to be ready over TLS', () => worker.output().includes('worker ready'), {
      process: worker,
      timeoutMs: 30_000,
    });
    const jobs = await runCli('lbm', ['jobs', '--json'], { cwd, env: env({ LBVM_TLS_CA: certs.ca }) });
    assert.equal(jobs.code, 0, jobs.stderr);
    worker.child.kill('SIGTERM');
    await worker.exited;

    const shown = redis.url.replace(password, '***');
    const withoutCa = await runCli('lbm', ['jobs', '--json'], { cwd, env: env({}) });
    assert.equal(withoutCa.code, 3, withoutCa.stderr);
    assert.ok(
      withoutCa.stderr.includes(
        `Redis at ${shown}: TLS failed: its certificate is signed by a CA this process does not trust`,
      ),
      withoutCa.stderr,
    );
    assert.match(withoutCa.stderr, /Give the CA that signed it in tls\.ca \(LBVM_TLS_CA\)/);
    const otherCa = await runCli('lbm', ['jobs', '--json'], { cwd, env: env({ LBVM_TLS_CA: strangers.ca }) });
    assert.equal(otherCa.code, 3, otherCa.stderr);
    assert.ok(otherCa.stderr.includes(`Redis at ${shown}: TLS failed:`), otherCa.stderr);
    assert.match(otherCa.stderr, /The CA in tls\.ca \(LBVM_TLS_CA\) did not sign it/);
    for (const text of [worker.output(), jobs.stdout, jobs.stderr, withoutCa.stderr, otherCa.stderr]) {
      assert.ok(!text.includes(password), `the password was printed:\n${text}`);
      assert.doesNotMatch(text, /    at /);
    }
  });

  it('influxs:// with the CA: samples written and read back (the store, lbm logs); without it, exit 3 naming the URL and why', async () => {
    const url = influx.storeUrl('lbvm_tls');
    assert.match(url, /^influxs:\/\//);
    const nowMs = Date.now();
    const store = openStore(url, { ca: readFileSync(certs.ca, 'utf8') });
    try {
      await store.writeSamples([hostSample('h-tls', nowMs - 60_000, { cpuUsedCores: 3 })]);
    } finally {
      await store.close();
    }
    const cwd = tmpDir();
    const logs = (extra: Record<string, string>) =>
      runCli('lbm', ['logs', 'h-tls', '--json'], { cwd, env: cleanEnv({ LBVM_STORE_URL: url, ...extra }) });
    const read = await logs({ LBVM_TLS_CA: certs.ca });
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /"value":\s*3/);

    const refused = await logs({});
    assert.equal(refused.code, 3, refused.stderr);
    assert.ok(
      refused.stderr.includes(
        `InfluxDB at ${url}: TLS failed while reading: its certificate is signed by a CA this process does not trust`,
      ),
      refused.stderr,
    );
    assert.match(refused.stderr, /tls\.ca \(LBVM_TLS_CA\)/);
    assert.doesNotMatch(refused.stderr, /    at /);
    // A writer without the CA gets the same reason (a collector would spool with it as its warning).
    const blind = openStore(url);
    await assert.rejects(
      blind.writeSamples([hostSample('h-tls', nowMs, { cpuUsedCores: 1 })]),
      (error: Error) =>
        error.message.startsWith(`InfluxDB at ${url}: TLS failed while `) && /not trust/.test(error.message),
    );
    await blind.close();
  });
});
