/**
 * The agent's control port: HTTP with JSON bodies, bound to `agent.listen`; with the cluster's TLS
 * (tls.ca, tls.cert, tls.key) it is HTTPS asking every caller for a certificate signed by the cluster
 * CA, and a caller without one is refused during the handshake, before any HTTP is read. Every call
 * must then still carry `Authorization: Bearer <token>` (the shared token from `$LBVM_AGENT_TOKEN`, a
 * second factor); a call without it is refused with 401 before its body is read, and starts nothing.
 * The token is never logged (only its SHA-256 is kept, compared in constant time).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { ExitError } from '../../../errors.ts';
import type { Logger } from '../../../log.ts';
import { parseHostPort } from '../../../util/address.ts';
import type { TlsMaterial } from '../../../util/tls.ts';
import { guestSpecSchema, type GuestSpec } from '../guest.ts';
import { HttpError } from './http-error.ts';

const MAX_JSON_BODY = 1024 * 1024;

/** A JSON call: its body in, its answer out. */
export type Route = (body: Record<string, unknown>) => Promise<unknown>;
/** A call that streams its own body or answer (checkpoint upload and download). */
export type StreamRoute = (request: http.IncomingMessage, response: http.ServerResponse, url: URL) => Promise<void>;

export interface ControlRoutes {
  /** By `METHOD /path`. */
  json: Record<string, Route>;
  streams: Record<string, StreamRoute>;
}

export class ControlPort {
  private server: http.Server | null = null;
  private readonly tokenHash: Buffer;

  constructor(
    token: string,
    private readonly routes: ControlRoutes,
    private readonly log: Logger,
    /** The cluster CA and this agent's certificate and key: mutual TLS. */
    private readonly tls?: Required<TlsMaterial>,
  ) {
    if (!token) throw new Error('the agent token is empty');
    this.tokenHash = createHash('sha256').update(token).digest();
  }

  /** Binds `listen` (host:port; port 0: any free port) and serves; the address it got. */
  async listen(listen: string): Promise<{ host: string; port: number }> {
    const address = parseHostPort(listen, 0);
    if (!address) throw new Error(`expected host:port, got ${JSON.stringify(listen)}`);
    const { host, port } = address;
    const serve = (request: http.IncomingMessage, response: http.ServerResponse) => {
      this.handle(request, response).catch((error: Error) => {
        const status = error instanceof HttpError ? error.status : 500;
        if (status >= 500) this.log.warn({ error: error.message, url: request.url }, 'control call failed');
        if (!response.headersSent) {
          response.writeHead(status, { 'content-type': 'application/json' });
          response.end(JSON.stringify({ error: error.message }));
        } else response.destroy();
      });
    };
    const server = this.tls
      ? https.createServer(
          {
            ...this.tls,
            // Mutual TLS: no certificate signed by the CA, no connection (the handshake fails).
            requestCert: true,
            rejectUnauthorized: true,
            minVersion: 'TLSv1.2',
          },
          serve,
        )
      : http.createServer(serve);
    this.server = server;
    server.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(listenError(listen, error)));
      server.listen(port, host, () => resolve());
    });
    return { host, port: (server.address() as net.AddressInfo).port };
  }

  async close(): Promise<void> {
    const server = this.server;
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    server?.closeAllConnections();
  }

  private async handle(request: http.IncomingMessage, response: http.ServerResponse): Promise<void> {
    if (!this.authorized(request.headers.authorization)) {
      // Refused before the body is read: nothing is parsed, nothing is started.
      response.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' });
      response.end(
        JSON.stringify({
          error: 'missing or wrong agent token (Authorization: Bearer <token>, from $LBVM_AGENT_TOKEN)',
        }),
      );
      request.resume();
      return;
    }
    const url = new URL(request.url ?? '/', 'http://agent');
    const route = `${request.method} ${url.pathname}`;
    const stream = this.routes.streams[route];
    if (stream) return stream(request, response, url);
    const body = request.method === 'POST' ? await readJson(request) : {};
    const handler = this.routes.json[route];
    if (!handler) throw new HttpError(404, `no such call: ${route}`);
    const result = await handler(body);
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify(result ?? {}));
  }

  private authorized(header: string | undefined): boolean {
    if (!header?.startsWith('Bearer ')) return false;
    const given = createHash('sha256').update(header.slice('Bearer '.length)).digest();
    return timingSafeEqual(given, this.tokenHash);
  }
}

export async function readJson(request: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_JSON_BODY) throw new HttpError(413, 'request body too large');
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'expected a JSON object');
  }
}

export function parseSpec(value: unknown): GuestSpec {
  const parsed = guestSpecSchema.safeParse(value);
  if (!parsed.success)
    throw new HttpError(
      400,
      `invalid guest spec: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`,
    );
  return parsed.data;
}

/** What an operator reads when the control port cannot be bound: the address, why, and what to do (exit 2). */
function listenError(listen: string, error: NodeJS.ErrnoException): Error {
  const why: Record<string, string> = {
    EADDRINUSE: 'another process listens there already (another agent? `ss -ltnp` names it)',
    EADDRNOTAVAIL: 'this machine has no such address',
    EACCES: 'this user may not bind that port',
  };
  const reason = error.code ? why[error.code] : undefined;
  return reason
    ? new ExitError(
        `agent.listen ${JSON.stringify(listen)}: cannot listen: ${reason} (${error.code}); give another address or port`,
        2,
      )
    : error;
}
