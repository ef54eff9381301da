/**
 * Child processes LBVM starts for tests, benchmarks and the demo (redis-server, influxd, agents,
 * QEMU). Each runs under `setpriv --pdeathsig KILL`, so the kernel kills it
 * when the parent process dies, even by SIGKILL; an exit hook kills what is left on a normal exit.
 * `runFile` runs a short command (virsh, ssh) with an argv array, never through a shell.
 */
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
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
  // Never the same port twice in one process: servers started side by side each get their own.
  for (;;) {
    const port = await anyFreePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

const handedOut = new Set<number>();

function anyFreePort(): Promise<number> {
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
      throw new Error(
        `${what}: the process exited (${proc.child.exitCode ?? proc.child.signalCode}) before it was ready. Its output:\n${proc.output().slice(-4000)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: not ready after ${options.timeoutMs ?? 20_000} ms.${proc ? ` Output so far:\n${proc.output().slice(-4000)}` : ''}`,
      );
    }
    await sleep(options.intervalMs ?? 100);
  }
}

/** A command that could not be run or exited non-zero; the message names it and quotes its stderr. */
export class CommandFailed extends Error {
  constructor(
    readonly command: string,
    readonly args: string[],
    readonly exitCode: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
    reason: string,
  ) {
    super(`${command}: ${reason}`);
    this.name = 'CommandFailed';
  }
}

export interface RunFileOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Killing the command (SIGTERM) when aborted. */
  signal?: AbortSignal;
}

/**
 * Runs `command` with `args` as an argv array (no shell: a name with `;` or `$(...)` is one
 * argument) and resolves with its output; rejects with CommandFailed naming the command, its exit
 * code and the last of its stderr.
 */
export function runFile(
  command: string,
  args: string[],
  options: RunFileOptions = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: options.env,
        cwd: options.cwd,
        signal: options.signal,
        encoding: 'utf8',
      },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        const failure = error as NodeJS.ErrnoException & { killed?: boolean; signal?: string; code?: number | string };
        const text = stderr.trim().split('\n').slice(-5).join(' / ');
        let reason: string;
        if (failure.code === 'ENOENT')
          reason = `not found (is it installed and on PATH? PATH=${options.env?.PATH ?? process.env.PATH ?? ''})`;
        else if (failure.name === 'AbortError') reason = 'cancelled';
        else if (failure.killed) reason = `killed after ${options.timeoutMs ?? 60_000} ms`;
        else reason = `exit ${failure.code ?? failure.signal}${text ? `: ${text}` : ''}`;
        reject(
          new CommandFailed(command, args, failure.code ?? failure.signal ?? null, stdout ?? '', stderr ?? '', reason),
        );
      },
    );
  });
}
