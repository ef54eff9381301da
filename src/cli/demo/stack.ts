/**
 * A throwaway local LBVM stack for the demo: a private redis-server, a config file, and `lbvm`
 * daemons started as real child processes from this checkout, all inside one temporary folder.
 * Teardown stops them in reverse order (SIGTERM, then SIGKILL after a grace period) and counts
 * what is still alive: the demo's `leftoverProcesses` must be 0.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { spawnTracked, type Tracked } from '../../util/processes.ts';
import { startRedisServer, type RedisServer } from '../../util/redis-server.ts';
import { makeDirs, PACKAGE_ROOT } from '../../util/dirs.ts';
import { MONITOR_NODE_FLAGS } from '../../monitor/node-flags.ts';

/** The checkout's root (works from dist/ too). */
export const REPO_ROOT = PACKAGE_ROOT;
const LBVM_BIN = path.join(REPO_ROOT, 'bin', 'lbvm.js');

export interface StackProcess {
  name: string;
  tracked: Tracked;
}

export class DemoStack {
  readonly dir: string;
  readonly configFile: string;
  redis: RedisServer | null = null;
  private readonly processes: StackProcess[] = [];

  constructor(dir?: string) {
    this.dir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'lbvm-demo-'));
    this.configFile = path.join(this.dir, 'lbvm.yaml');
  }

  async startRedis(): Promise<RedisServer> {
    this.redis = await startRedisServer({ dir: path.join(this.dir, 'redis') });
    return this.redis;
  }

  writeConfig(config: Record<string, unknown>): void {
    fs.writeFileSync(this.configFile, YAML.stringify(config));
  }

  /**
   * Starts `lbvm ARGS` with the demo's config; its output goes to DIR/logs/NAME.log. `wrap` runs it
   * through another command (`ip netns exec NS`, which execs it: the pid stays the same).
   */
  spawnLbvm(
    name: string,
    args: string[],
    env: Record<string, string> = {},
    wrap?: (command: string, args: string[]) => { command: string; args: string[] },
  ): StackProcess {
    makeDirs(path.join(this.dir, 'logs'));
    const log = fs.openSync(path.join(this.dir, 'logs', `${name}.log`), 'a');
    const childEnv: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('LBVM_')) childEnv[key] = value;
    // The monitor runs with the node options its systemd unit gives it.
    const lbvm = [...(args[0] === 'monitor' ? MONITOR_NODE_FLAGS : []), LBVM_BIN, ...args];
    const run = wrap ? wrap(process.execPath, lbvm) : { command: process.execPath, args: lbvm };
    const tracked = spawnTracked(run.command, run.args, {
      cwd: this.dir,
      env: { ...childEnv, LBVM_CONFIG: this.configFile, LBVM_LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    const entry = { name, tracked };
    this.processes.push(entry);
    return entry;
  }

  logOf(name: string): string {
    const file = path.join(this.dir, 'logs', `${name}.log`);
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  }

  /** Processes whose command line mentions the demo folder (guests started by agents included). */
  strays(): number[] {
    const found: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      try {
        const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        const state = fs.readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
        if (state !== 'Z' && cmdline.includes(this.dir)) found.push(Number(entry));
      } catch {
        /* gone meanwhile */
      }
    }
    return found;
  }

  /**
   * Stops everything in reverse start order; returns how many processes it started were still alive
   * after the graceful stop (they are killed then, but counted).
   */
  async teardown(beforeStop?: () => Promise<void>): Promise<number> {
    try {
      await beforeStop?.();
    } catch {
      /* best effort: the processes are stopped below anyway */
    }
    for (const entry of [...this.processes].reverse()) await entry.tracked.stop(8000);
    await this.redis?.stop();
    // Count what a graceful stop left behind (e.g. a guest its agent did not stop): that is the
    // honest leftover figure. Then end those too, so the machine is clean either way.
    const isAlive = (tracked: Tracked) => tracked.child.exitCode === null && tracked.child.signalCode === null;
    const strays = this.strays();
    const leftovers = new Set<number>(strays);
    for (const entry of this.processes)
      if (isAlive(entry.tracked) && entry.tracked.child.pid) leftovers.add(entry.tracked.child.pid);
    if (this.redis && isAlive(this.redis.process) && this.redis.process.child.pid)
      leftovers.add(this.redis.process.child.pid);
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    return leftovers.size;
  }

  removeFolder(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
