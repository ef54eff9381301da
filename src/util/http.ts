/**
 * One request over node:http or node:https (chosen by the URL): `exchange` sends a small body and
 * reads the whole answer as text; `open` sends a body (text or a stream) and hands back the answer
 * unread, for streaming it on. The agent client and the Proxmox client use them: fetch would load
 * undici, and its WebAssembly HTTP parser, into every command that talks to a host (a tenth of a cron
 * collect round's CPU), and cannot be given a client certificate.
 */
import http from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

// node:https brings node:tls and its crypto set-up: loaded only for an https URL.
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

/** Sends the request with `body` (a string, or a stream piped in) and resolves with the answer, unread. */
export function open(
  url: string | URL,
  options: ExchangeOptions,
  body?: string | Readable,
): Promise<http.IncomingMessage> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const { idleTimeout, ...requestOptions } = options;
  const transport: typeof http | typeof https =
    target.protocol === 'https:' ? (require('node:https') as typeof https) : http;
  return new Promise((resolve, reject) => {
    let answer: http.IncomingMessage | null = null;
    const request = transport.request(target, { ...requestOptions, timeout: idleTimeout?.ms }, (response) => {
      answer = response;
      resolve(response);
    });
    if (idleTimeout)
      request.on('timeout', () =>
        request.destroy(Object.assign(new Error(idleTimeout.message), { code: 'ETIMEDOUT' })),
      );
    // After the answer began, a failure (an idle timeout) ends reading it with the same error.
    request.on('error', (error) => (answer ? answer.destroy(error) : reject(error)));
    if (body === undefined || typeof body === 'string') request.end(body);
    else pipeline(body, request).catch((error: Error) => request.destroy(error));
  });
}

/** The whole answer as text. */
export async function readAnswer(response: http.IncomingMessage): Promise<HttpAnswer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return {
    status: response.statusCode ?? 0,
    statusText: response.statusMessage ?? '',
    text: Buffer.concat(chunks).toString('utf8'),
  };
}

export async function exchange(url: string | URL, options: ExchangeOptions, body?: string): Promise<HttpAnswer> {
  return readAnswer(await open(url, options, body));
}
