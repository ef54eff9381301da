/**
 * Child processes LBVM starts for tests, benchmarks and the demo (redis-server, influxd, agents,
 * QEMU). Each runs under `setpriv --pdeathsig KILL`, so the kernel kills it
 * when the parent process dies, even by SIGKILL; an exit hook kills what is left on a normal exit.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const running = new Set<ChildProcess>();
/** How many tracked children are still running (the demo reports leftovers after teardown). */
export function runningChildren(): number {
  return running.size;
}

process.on('exit', () => {
  for (const child of running) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export interface Tracked {
  child: ChildProcess;
  /** Everything the child wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves when the child has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): Tracked {
  const child = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
  running.add(child);
  let buffer = '';
  const keep = (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    if (buffer.length > 1_000_000) buffer = buffer.slice(-500_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (error) => {
      buffer += `\nspawn error: ${error.message}`;
      running.delete(child);
      resolve({ code: -1, signal: null });
    });
  });
  return {
    child,
    output: () => buffer,
    exited,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A TCP port nobody listens on right now (bound and released by the kernel's choice). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Polls `check` until it returns true, failing with `describe()` (e.g. the server's output)
 * when `timeoutMs` passes or the tracked process exits first.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  options: { timeoutMs?: number; intervalMs?: number; process?: Tracked } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    const proc = options.process;
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new Error(`${what}: the process exited (${proc.child.exitCode ?? proc.child.signalCode}) before it was ready. Its output:\n${proc.output().slice(-4000)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${what}: not ready after ${options.timeoutMs ?? 20_000} ms.${proc ? ` Output so far:\n${proc.output().slice(-4000)}` : ''}`);
    }
    await sleep(options.intervalMs ?? 100);
  }
}
