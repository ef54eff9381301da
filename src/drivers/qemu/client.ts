/**
 * The client side of an agent's control port: JSON calls with the shared token. Used by the qemu
 * driver (in workers and collectors), by tests, and by anyone scripting an agent.
 */
import { exchange, type HttpAnswer } from '../../util/http.ts';
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
  ) {
    this.baseUrl = `http://${address}`;
  }

  async call<T>(route: string, body: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    let response: HttpAnswer;
    try {
      response = await this.request('POST', route, JSON.stringify(body), timeoutMs);
    } catch (error) {
      throw new AgentCallError(0, `agent of ${this.host} at ${this.address} unreachable: ${(error as Error).message}`);
    }
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
    const response = await this.request('GET', '/v1/health', undefined, timeoutMs);
    if (response.status !== 200)
      throw new AgentCallError(response.status, `agent of ${this.host}: health: ${response.status}`);
    return JSON.parse(response.text) as { host: string; guests: number };
  }

  private request(
    method: 'GET' | 'POST',
    route: string,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    return exchange(`${this.baseUrl}${route}`, { method, headers, signal: AbortSignal.timeout(timeoutMs) }, body);
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

  /** Streams a saved checkpoint from this (source) agent into `to` (destination) agent. */
  async copyCheckpoint(name: string, to: AgentClient, signal: AbortSignal): Promise<number> {
    const download = await fetch(`${this.baseUrl}/v1/checkpoint/download`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
      signal,
    });
    if (!download.ok || !download.body)
      throw new AgentCallError(download.status, `agent of ${this.host}: checkpoint download: ${await download.text()}`);
    const upload = await fetch(`${to.baseUrl}/v1/checkpoint/upload?${new URLSearchParams({ name })}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${to.token}`, 'content-type': 'application/octet-stream' },
      body: download.body,
      signal,
      duplex: 'half',
    } as RequestInit);
    const text = await upload.text();
    if (!upload.ok) throw new AgentCallError(upload.status, `agent of ${to.host}: checkpoint upload: ${text}`);
    return (JSON.parse(text) as { bytes: number }).bytes;
  }
}
