/**
 * One small request and its whole answer as text, over node:http or node:https (chosen by the URL).
 * The agent client and the Proxmox client use it: fetch would load undici, and its WebAssembly HTTP
 * parser, into every command that talks to a host (a tenth of a cron collect round's CPU).
 */
import http from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';

// node:https brings node:tls and its crypto set-up: loaded only for an https URL (the agent speaks http).
const require = createRequire(import.meta.url);

export interface HttpAnswer {
  status: number;
  statusText: string;
  text: string;
}

export interface ExchangeOptions extends https.RequestOptions {
  /** No answer (no socket activity) for this long ends the request with an ETIMEDOUT error. */
  idleTimeout?: { ms: number; message: string };
}

export function exchange(url: string | URL, options: ExchangeOptions, body?: string): Promise<HttpAnswer> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const { idleTimeout, ...requestOptions } = options;
  const transport: typeof http | typeof https =
    target.protocol === 'https:' ? (require('node:https') as typeof https) : http;
  return new Promise((resolve, reject) => {
    const request = transport.request(target, { ...requestOptions, timeout: idleTimeout?.ms }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          statusText: response.statusMessage ?? '',
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    if (idleTimeout)
      request.on('timeout', () =>
        request.destroy(Object.assign(new Error(idleTimeout.message), { code: 'ETIMEDOUT' })),
      );
    request.on('error', reject);
    request.end(body);
  });
}
