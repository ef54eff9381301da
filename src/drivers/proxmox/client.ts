/**
 * A small client of the Proxmox VE HTTP API (`/api2/json`), on Node's own https module.
 *
 * - Authentication: `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`. The token is held only
 *   in this object and sent only in that header; it is never part of an error message or a log line.
 * - TLS is verified by default against the system CAs, or the CA in `caFile`; or the server's
 *   certificate must have the pinned SHA-256 `fingerprint` (checked after the handshake and before
 *   a single byte of the request, with its token, is sent). `tlsVerify: false` turns it off.
 * - Every path segment that comes from data (node names, UPIDs) is URL-encoded; request bodies are
 *   form-encoded, so a name is only ever a value.
 */
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { exchange, type HttpAnswer } from '../../util/http.ts';

export interface ProxmoxClientOptions {
  /** https://host:8006 (a trailing /api2/json is accepted). */
  baseUrl: string;
  token: string;
  tlsVerify: boolean;
  /** PEM text of the CA(s) to trust instead of the system's. */
  ca?: string;
  /** SHA-256 fingerprint of the server certificate, hex with or without colons. */
  fingerprint?: string;
  requestTimeoutMs: number;
}

/** The API answered with an HTTP error (the message has Proxmox's reason, never the token). */
export class ProxmoxApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ProxmoxApiError';
  }
}

/** "AB:CD:..." or "abcd..." -> "AB:CD:..." */
export function normaliseFingerprint(text: string): string {
  const hex = text.replace(/:/g, '').trim().toUpperCase();
  return hex.match(/.{2}/g)?.join(':') ?? hex;
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'FINGERPRINT_MISMATCH',
]);

export class ProxmoxClient {
  readonly apiUrl: string;
  private readonly agent: https.Agent;

  constructor(private readonly options: ProxmoxClientOptions) {
    this.apiUrl = `${options.baseUrl.replace(/\/+$/, '').replace(/\/api2\/json$/, '')}/api2/json`;
    const pin = options.fingerprint ? normaliseFingerprint(options.fingerprint) : null;
    if (pin) {
      // The pin replaces chain verification (Proxmox's default certificate is self-signed); the check
      // runs before the connection is handed to the request, so nothing is sent to a wrong server.
      const agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
      const connect = (
        connectOptions: tls.ConnectionOptions,
        callback: (error: Error | null, socket?: Duplex) => void,
      ): undefined => {
        let done = false;
        const finish = (error: Error | null, socket?: Duplex) => {
          if (done) return;
          done = true;
          callback(error, socket);
        };
        const socket = tls.connect({ ...connectOptions, rejectUnauthorized: false });
        socket.once('secureConnect', () => {
          const seen = normaliseFingerprint(socket.getPeerCertificate().fingerprint256 ?? '');
          if (seen !== pin) {
            const error = Object.assign(
              new Error(`the server's certificate has SHA-256 fingerprint ${seen}, not the pinned ${pin}`),
              { code: 'FINGERPRINT_MISMATCH' },
            );
            socket.destroy();
            finish(error);
            return;
          }
          finish(null, socket);
        });
        socket.once('error', (error) => finish(error));
        return undefined;
      };
      (agent as unknown as { createConnection: typeof connect }).createConnection = connect;
      this.agent = agent;
    } else {
      this.agent = new https.Agent({
        keepAlive: true,
        maxSockets: 8,
        ca: options.ca,
        rejectUnauthorized: options.tlsVerify,
      });
    }
  }

  /** GET/POST/DELETE `path` (below /api2/json, already encoded); resolves with the response's `data`. */
  async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, form?: Record<string, string | number>): Promise<T> {
    const url = new URL(this.apiUrl + path);
    const body = form
      ? new URLSearchParams(
          Object.entries(form).map(([key, value]): [string, string] => [key, String(value)]),
        ).toString()
      : undefined;
    const headers: Record<string, string> = {
      Authorization: `PVEAPIToken=${this.options.token}`,
      Accept: 'application/json',
    };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/x-www-form-urlencoded';
      headers['Content-Length'] = String(Buffer.byteLength(body));
    }
    const where = `${method} ${url.origin}${url.pathname}`;
    let answer: HttpAnswer;
    try {
      answer = await exchange(
        url,
        {
          method,
          headers,
          agent: this.agent,
          idleTimeout: {
            ms: this.options.requestTimeoutMs,
            message: `no answer within ${this.options.requestTimeoutMs} ms (drivers.proxmox.requestTimeout)`,
          },
        },
        body,
      );
    } catch (failure) {
      const error = failure as NodeJS.ErrnoException;
      const code = error.code ?? '';
      if (TLS_CODES.has(code)) {
        throw new Error(
          `Proxmox API ${url.origin}: TLS verification failed (${code}: ${error.message}). ` +
            (code === 'FINGERPRINT_MISMATCH'
              ? 'Check drivers.proxmox.fingerprint against `pvenode cert info` on the node; a changed certificate may mean someone is in between.'
              : 'Trust its CA with drivers.proxmox.caFile (Proxmox: /etc/pve/pve-root-ca.pem) or ' +
                'pin the certificate with drivers.proxmox.fingerprint (SHA-256, `pvenode cert info`).'),
        );
      }
      throw new Error(
        `Proxmox API ${where}: ${code ? `${code}: ` : ''}${error.message}; check drivers.proxmox.url and that the node is reachable`,
      );
    }
    if (answer.status < 200 || answer.status >= 300) {
      throw new ProxmoxApiError(
        answer.status,
        `Proxmox API ${where}: HTTP ${answer.status} ${explainStatus(answer.status, answer.statusText, answer.text)}`,
      );
    }
    try {
      return (JSON.parse(answer.text) as { data: T }).data;
    } catch {
      throw new Error(`Proxmox API ${where}: the answer is not JSON (${answer.text.slice(0, 120)})`);
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Proxmox puts its reason in the status line (and sometimes `errors` in the body). */
function explainStatus(status: number, statusMessage: string, body: string): string {
  let detail = statusMessage;
  try {
    const parsed = JSON.parse(body) as { errors?: Record<string, string>; message?: string };
    if (parsed.errors)
      detail += ` (${Object.entries(parsed.errors)
        .map(([key, value]) => `${key}: ${String(value).trim()}`)
        .join('; ')})`;
    else if (parsed.message) detail += ` (${parsed.message.trim()})`;
  } catch {
    /* not JSON */
  }
  if (status === 401)
    return `${detail}: the API token was refused; check the token (USER@REALM!TOKENID=SECRET) in drivers.proxmox.tokenEnv or tokenFile`;
  if (status === 403)
    return `${detail}: the token lacks a privilege (VM.Audit to list, VM.Migrate to migrate, Sys.Audit for tasks)`;
  return detail;
}

/** `/nodes/{node}` with the node name URL-encoded. */
export const nodePath = (node: string) => `/nodes/${encodeURIComponent(node)}`;
