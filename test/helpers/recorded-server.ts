/**
 * A recorded-response HTTPS server: it answers the routes a test gives it with the responses written
 * down from what a product really sends (here Proxmox VE: its API code and task logs people pasted
 * publicly; each test names its source), and records every request as
 * it arrived (method, raw path, headers, body), so a test asserts on what a driver really sent.
 * Its certificate is self-signed, made for the test by `openssl` in a temporary folder.
 * It stands in for a product LBVM talks to, not for a part of LBVM.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { runFile } from '../../src/util/processes.ts';
import { tmpDir } from './tmp.ts';

export interface RecordedRequest {
  method: string;
  /** The path and query exactly as sent, still URL-encoded. */
  rawPath: string;
  /** The decoded path without the query. */
  path: string;
  query: URLSearchParams;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  form: URLSearchParams;
}

export interface RecordedResponse {
  status?: number;
  statusMessage?: string;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent as it is instead of `json` (`''`: the empty body Proxmox answers a refused token with). */
  body?: string;
}

/** Answers one route; `count` is how many times this route was asked before (0 the first time). */
export type Responder = RecordedResponse | ((request: RecordedRequest, count: number) => RecordedResponse);

export interface SelfSignedCert {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  /** SHA-256 fingerprint, AA:BB:... */
  fingerprint256: string;
}

/** A self-signed certificate for 127.0.0.1 and localhost (openssl, EC P-256, one day). */
export async function selfSignedCert(): Promise<SelfSignedCert> {
  const dir = tmpDir('lbvm-cert-');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  await runFile('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '1',
    '-subj',
    '/CN=lbvm-test-pve',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  const cert = fs.readFileSync(certFile, 'utf8');
  return {
    certFile,
    keyFile,
    cert,
    key: fs.readFileSync(keyFile, 'utf8'),
    fingerprint256: new X509Certificate(cert).fingerprint256,
  };
}

export interface RecordedServer {
  /** https://127.0.0.1:PORT */
  url: string;
  requests: RecordedRequest[];
  /** Sets (or replaces) the response of `METHOD /decoded/path` (query not part of the key). */
  route(key: string, responder: Responder): void;
  close(): Promise<void>;
}

export async function startRecordedServer(
  cert: SelfSignedCert,
  routes: Record<string, Responder> = {},
): Promise<RecordedServer> {
  const table = new Map(Object.entries(routes));
  const counts = new Map<string, number>();
  const requests: RecordedRequest[] = [];
  const server = https.createServer({ cert: cert.cert, key: cert.key }, (incoming, outgoing) => {
    let body = '';
    incoming.setEncoding('utf8');
    incoming.on('data', (chunk: string) => (body += chunk));
    incoming.on('end', () => {
      const rawPath = incoming.url ?? '/';
      const url = new URL(rawPath, 'https://recorded.invalid');
      const request: RecordedRequest = {
        method: incoming.method ?? 'GET',
        rawPath,
        path: decodeURIComponent(url.pathname),
        query: url.searchParams,
        headers: incoming.headers,
        body,
        form: new URLSearchParams(body),
      };
      requests.push(request);
      const key = `${request.method} ${request.path}`;
      const responder = table.get(key);
      const count = counts.get(key) ?? 0;
      counts.set(key, count + 1);
      const response: RecordedResponse = !responder
        ? { status: 501, statusMessage: `no recorded response for ${key}`, json: { data: null } }
        : typeof responder === 'function'
          ? responder(request, count)
          : responder;
      const text = response.body ?? JSON.stringify(response.json ?? { data: null });
      outgoing.writeHead(response.status ?? 200, response.statusMessage ?? 'OK', {
        'Content-Type': 'application/json;charset=UTF-8',
        'Content-Length': Buffer.byteLength(text),
      });
      outgoing.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    route: (key, responder) => table.set(key, responder),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
