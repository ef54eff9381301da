/**
 * The client side of an agent's control port: JSON calls with the shared token, over HTTPS with this
 * process's certificate when the cluster has TLS (the agent checks it during the handshake, then the
 * token). Used by the qemu driver (in workers and collectors), by tests, and by anyone scripting an agent.
 */
import type http from 'node:http';
import { open, readAnswer, type ExchangeOptions, type HttpAnswer } from '../../util/http.ts';
import { describeCertificateError, type TlsMaterial } from '../../util/tls.ts';
import type { VmInventory } from '../driver.ts';
import type { GuestSpecInput } from './guest.ts';

export class AgentCallError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'AgentCallError';
  }
}

export interface GuestInfo {
  name: string;
  role: 'running' | 'incoming' | 'checkpointing' | 'stopped';
  status: string;
  pid: number | null;
  vcpus: number;
  memBytes: number;
  migrating: { to: string; status: string } | null;
}

export interface MigrationStatus {
  status: string;
  sourceRole: string;
  to: string;
  attemptId: string;
  bytesCopied: number;
  bytesRemaining: number;
  bytesTotal: number;
  expectedDowntimeMs: number | null;
  downtimeMs: number | null;
  totalMs: number;
  error: string | null;
  autoConverge: boolean;
  dirtyBytesPerSec: number | null;
}

export class AgentClient {
  readonly baseUrl: string;

  constructor(
    /** host:port of the agent's control port. */
    readonly address: string,
    private readonly token: string,
    readonly host = address,
    /** The cluster CA (checks the agent), and this process's certificate and key (shown to the agent): HTTPS. */
    private readonly tls?: TlsMaterial,
  ) {
    this.baseUrl = `${tls?.ca ? 'https' : 'http'}://${address}`;
  }

  async call<T>(route: string, body: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    const response = await this.request('POST', route, JSON.stringify(body), AbortSignal.timeout(timeoutMs))
      .then(readAnswer)
      .catch((error: Error) => {
        throw this.unreachable(error);
      });
    let parsed: unknown;
    try {
      parsed = JSON.parse(response.text);
    } catch {
      parsed = { error: response.text };
    }
    if (response.status < 200 || response.status > 299) {
      throw new AgentCallError(
        response.status,
        `agent of ${this.host}: ${route}: ${(parsed as { error?: string }).error ?? response.statusText}`,
      );
    }
    return parsed as T;
  }

  async health(timeoutMs = 5000): Promise<{ host: string; guests: number }> {
    const response: HttpAnswer = await this.request('GET', '/v1/health', undefined, AbortSignal.timeout(timeoutMs))
      .then(readAnswer)
      .catch((error: Error) => {
        throw this.unreachable(error);
      });
    if (response.status !== 200)
      throw new AgentCallError(response.status, `agent of ${this.host}: health: ${response.status}`);
    return JSON.parse(response.text) as { host: string; guests: number };
  }

  /** A call that did not get an answer: the agent is away, or the TLS handshake failed (and why). */
  private unreachable(error: Error): AgentCallError {
    const certificate = describeCertificateError(error);
    if (!certificate)
      return new AgentCallError(0, `agent of ${this.host} at ${this.address} unreachable: ${error.message}`);
    return new AgentCallError(
      0,
      `agent of ${this.host} at ${this.address}: TLS failed: ${certificate}. Both sides need certificates signed by ` +
        `the cluster CA (tls.ca, tls.cert, tls.key; deploy/certs.sh), the agent's naming the address it is reached at`,
    );
  }

  /**
   * Sends one request to the agent (a JSON body, a stream, or none) and resolves with its answer, unread.
   * The token goes in the Authorization header; over HTTPS this process's certificate is shown first.
   */
  private request(
    method: 'GET' | 'POST',
    route: string,
    body: string | http.IncomingMessage | undefined,
    signal: AbortSignal,
  ): Promise<http.IncomingMessage> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (typeof body === 'string') {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    } else if (body) {
      headers['content-type'] = 'application/octet-stream';
      if (body.headers['content-length']) headers['content-length'] = body.headers['content-length'];
    }
    const options: ExchangeOptions = { method, headers, signal };
    if (this.tls?.ca) Object.assign(options, { ca: this.tls.ca, cert: this.tls.cert, key: this.tls.key });
    return open(`${this.baseUrl}${route}`, options, body);
  }

  list(): Promise<{ host: string; guests: GuestInfo[] }> {
    return this.call('/v1/guests/list');
  }

  /** `disks`: the virtual size of each local disk (what a destination must make room for). */
  get(name: string): Promise<GuestInfo & { spec: GuestSpecInput; disks: { index: number; virtualBytes: number }[] }> {
    return this.call('/v1/guests/get', { name });
  }

  start(spec: GuestSpecInput): Promise<GuestInfo> {
    return this.call('/v1/guests/start', { spec });
  }

  stop(name: string): Promise<{ stopped: boolean }> {
    return this.call('/v1/guests/stop', { name });
  }

  inventory(): Promise<{ host: string; vms: VmInventory[] }> {
    return this.call('/v1/inventory');
  }

  /**
   * Streams a saved checkpoint from this (source) agent into `to` (destination) agent, as it is read:
   * over HTTPS both ways when the cluster has TLS, so the guest's memory never crosses in the clear.
   */
  async copyCheckpoint(name: string, to: AgentClient, signal: AbortSignal): Promise<number> {
    const download = await this.request('POST', '/v1/checkpoint/download', JSON.stringify({ name }), signal).catch(
      (error: Error) => {
        throw this.unreachable(error);
      },
    );
    if (download.statusCode !== 200) {
      const answer = await readAnswer(download);
      throw new AgentCallError(answer.status, `agent of ${this.host}: checkpoint download: ${answer.text}`);
    }
    const upload = await to
      .request('POST', `/v1/checkpoint/upload?${new URLSearchParams({ name })}`, download, signal)
      .then(readAnswer)
      .catch((error: Error) => {
        throw to.unreachable(error);
      });
    if (upload.status !== 200)
      throw new AgentCallError(upload.status, `agent of ${to.host}: checkpoint upload: ${upload.text}`);
    return (JSON.parse(upload.text) as { bytes: number }).bytes;
  }
}
