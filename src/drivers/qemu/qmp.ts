/**
 * A small QMP client (QEMU Machine Protocol, JSON lines over a unix socket): reads the greeting,
 * negotiates capabilities, then runs commands one reply per `id`. Asynchronous events are kept
 * (the last few) for callers that want them. See QEMU's docs/interop/qmp-spec.
 */
import net from 'node:net';

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    message: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${message}`);
    this.name = 'QmpError';
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class QmpClient {
  private socket: net.Socket | null = null;
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private closedError: Error | null = null;
  readonly events: { event: string; data?: unknown; timestamp?: unknown }[] = [];

  private constructor(readonly path: string) {}

  /** Connects and negotiates; fails after `timeoutMs` if QEMU does not answer. */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const client = new QmpClient(path);
    await client.open(timeoutMs);
    return client;
  }

  private open(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ path: this.path });
      let greeted = false;
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`QMP ${this.path}: no greeting within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.setEncoding('utf8');
      socket.on('error', (error) => {
        clearTimeout(timer);
        this.fail(error);
        if (!greeted) reject(error);
      });
      socket.on('close', () => this.fail(new Error(`QMP ${this.path}: connection closed`)));
      socket.on('data', (chunk: string) => {
        this.buffer += chunk;
        let newline: number;
        while ((newline = this.buffer.indexOf('\n')) >= 0) {
          const line = this.buffer.slice(0, newline).trim();
          this.buffer = this.buffer.slice(newline + 1);
          if (!line) continue;
          let message: Record<string, unknown>;
          try {
            message = JSON.parse(line) as Record<string, unknown>;
          } catch {
            continue;
          }
          if (!greeted && 'QMP' in message) {
            greeted = true;
            this.socket = socket;
            this.execute('qmp_capabilities').then(
              () => {
                clearTimeout(timer);
                resolve();
              },
              (error: Error) => {
                clearTimeout(timer);
                reject(error);
              },
            );
            continue;
          }
          this.dispatch(message);
        }
      });
    });
  }

  private dispatch(message: Record<string, unknown>): void {
    if (typeof message.event === 'string') {
      this.events.push(message as { event: string });
      if (this.events.length > 100) this.events.shift();
      return;
    }
    const id = message.id as string | undefined;
    if (id === undefined) return;
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if ('error' in message) {
      const error = message.error as { class?: string; desc?: string };
      pending.reject(new QmpError(pending.command, error.class ?? 'GenericError', error.desc ?? 'unknown error'));
    } else {
      pending.resolve(message.return);
    }
  }

  private fail(error: Error): void {
    this.closedError ??= error;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this.pending.delete(id);
    }
  }

  get closed(): boolean {
    return this.closedError !== null;
  }

  /** Runs one command; `args` are sent as JSON (names are data, never interpolated). */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (!this.socket) return Promise.reject(new Error(`QMP ${this.path}: not connected`));
    const id = `lbvm-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`QMP ${command}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      this.socket!.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`);
    });
  }

  close(): void {
    this.socket?.destroy();
    this.fail(new Error(`QMP ${this.path}: closed`));
  }
}

/** The parts of `query-migrate`'s reply LBVM reads. */
export interface MigrateInfo {
  status?:
    | 'none'
    | 'setup'
    | 'cancelling'
    | 'cancelled'
    | 'active'
    | 'postcopy-active'
    | 'completed'
    | 'failed'
    | 'colo'
    | 'pre-switchover'
    | 'device'
    | 'wait-unplug';
  'total-time'?: number;
  downtime?: number;
  'expected-downtime'?: number;
  'error-desc'?: string;
  ram?: {
    transferred: number;
    remaining: number;
    total: number;
    'dirty-sync-count'?: number;
    mbps?: number;
    'dirty-pages-rate'?: number;
    'page-size'?: number;
  };
  'socket-address'?: { type: string; host?: string; port?: string }[];
}
