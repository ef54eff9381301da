/** A real InfluxDB 1.x (`influxd`) for one test file: free ports, temporary folder, optional auth, optional HTTPS. */
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { freePort, spawnTracked, waitFor, type Tracked } from './processes.ts';
import { tmpDir } from './tmp.ts';

export interface InfluxServer {
  /** Base URL for HTTP, e.g. http://127.0.0.1:PORT */
  httpUrl: string;
  host: string;
  port: number;
  dir: string;
  process: Tracked;
  /** An LBVM store URL for database `db` (credentials included when auth is on). */
  storeUrl(db: string, credentials?: { username: string; password: string }): string;
  start(): Promise<void>;
  stop(): Promise<void>;
  restart(): Promise<void>;
}

export interface InfluxOptions {
  /** Turn HTTP auth on and create this admin user. */
  admin?: { username: string; password: string };
  /** Serve HTTPS alone (`https-enabled`) with this certificate and key; `caFile` signed it (the helper checks with it). */
  https?: { certFile: string; keyFile: string; caFile: string };
}

/** The status of GET /ping over HTTPS, trusting `caFile`. */
function pingHttps(url: string, caFile: string): Promise<number> {
  return new Promise((resolve, reject) => {
    https
      .get(`${url}/ping`, { ca: fs.readFileSync(caFile, 'utf8') }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      })
      .on('error', reject);
  });
}

export async function startInflux(options: InfluxOptions = {}): Promise<InfluxServer> {
  const dir = tmpDir('lbvm-influx-');
  const port = await freePort();
  const rpcPort = await freePort();
  const writeConfig = (auth: boolean) =>
    fs.writeFileSync(
      path.join(dir, 'influxdb.conf'),
      [
        'reporting-disabled = true',
        `bind-address = "127.0.0.1:${rpcPort}"`,
        '[meta]',
        `  dir = "${dir}/meta"`,
        '[data]',
        `  dir = "${dir}/data"`,
        `  wal-dir = "${dir}/wal"`,
        '  query-log-enabled = false',
        '[http]',
        '  enabled = true',
        `  bind-address = "127.0.0.1:${port}"`,
        `  auth-enabled = ${auth}`,
        ...(options.https
          ? [
              '  https-enabled = true',
              `  https-certificate = "${options.https.certFile}"`,
              `  https-private-key = "${options.https.keyFile}"`,
            ]
          : []),
        '  log-enabled = false',
        '[monitor]',
        '  store-enabled = false',
        '[continuous_queries]',
        '  enabled = true',
        '  run-interval = "1s"',
        '[logging]',
        '  level = "warn"',
        '',
      ].join('\n'),
    );
  const httpUrl = `${options.https ? 'https' : 'http'}://127.0.0.1:${port}`;
  const server: InfluxServer = {
    httpUrl,
    host: '127.0.0.1',
    port,
    dir,
    process: undefined as unknown as Tracked,
    storeUrl(db, credentials) {
      const auth = credentials
        ? `${encodeURIComponent(credentials.username)}:${encodeURIComponent(credentials.password)}@`
        : '';
      return `${options.https ? 'influxs' : 'influx'}://${auth}127.0.0.1:${port}/${db}`;
    },
    async start() {
      server.process = spawnTracked('influxd', ['-config', path.join(dir, 'influxdb.conf')]);
      const ping = options.https
        ? () => pingHttps(httpUrl, options.https!.caFile)
        : async () => (await fetch(`${httpUrl}/ping`)).status;
      await waitFor(`influxd on port ${port}`, async () => (await ping()) === 204, {
        process: server.process,
        timeoutMs: 30_000,
      });
    },
    async stop() {
      await server.process.stop(10_000);
    },
    async restart() {
      await server.stop();
      await server.start();
    },
  };
  writeConfig(false);
  await server.start();
  if (options.admin) {
    // InfluxDB 1.x lets the first admin user be created without auth, then auth is switched on.
    const query = `CREATE USER "${options.admin.username}" WITH PASSWORD '${options.admin.password.replace(/'/g, "\\'")}' WITH ALL PRIVILEGES`;
    const response = await fetch(`${httpUrl}/query`, { method: 'POST', body: new URLSearchParams({ q: query }) });
    if (!response.ok)
      throw new Error(`influxd: creating the admin user failed: ${response.status} ${await response.text()}`);
    await server.stop();
    writeConfig(true);
    await server.start();
  }
  return server;
}

export interface InfluxAnswer {
  results: {
    series?: { name: string; columns: string[]; values: unknown[][]; tags?: Record<string, string> }[];
    error?: string;
  }[];
}

/** Runs an InfluxQL query on `db` over plain HTTP (epoch ms), as an operator's `influx` shell would. */
export async function influxQuery(
  server: InfluxServer,
  db: string,
  q: string,
  credentials?: { username: string; password: string },
): Promise<InfluxAnswer> {
  const headers: Record<string, string> = credentials
    ? { authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}` }
    : {};
  const response = await fetch(
    `${server.httpUrl}/query?db=${encodeURIComponent(db)}&epoch=ms&q=${encodeURIComponent(q)}`,
    { headers },
  );
  return (await response.json()) as InfluxAnswer;
}
