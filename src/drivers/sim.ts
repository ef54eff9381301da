/**
 * The `sim` driver: a simulated cluster whose placement lives in Redis, so a collector, workers and
 * the monitor in different processes see one cluster.
 *
 * - Hosts `sim-h001`..: `sim.hosts` of them, each `sim.hostCpuCores` cores and `sim.hostMem` memory.
 * - VMs `sim-vm0001`..: `sim.vms` of them, sizes and load shapes drawn from `sim.seed`, placed first
 *   fit in a seeded order. A VM's CPU use follows a seeded pattern: a sine of period `sim.period`
 *   with its own phase and amplitude around its own base, plus seeded per-minute noise, so the same
 *   seed and time give the same numbers in every process. Memory use is a fixed seeded share.
 * - A migration takes memBytes ÷ bandwidth ÷ `sim.speedup` seconds, reports progress, can be
 *   cancelled (the VM stays), and fails with probability `sim.failureRate`.
 *
 * Tests and benchmarks can also define their own hosts and VMs (`SimCluster.define`).
 */
import { createHash, randomInt } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { LbvmConfig } from '../config/schema.ts';
import { AttemptSuperseded } from '../errors.ts';
import { prng } from '../util/prng.ts';
import type {
  Driver,
  DriverCapabilities,
  HostInventory,
  MigrateOutcome,
  MigrateRequest,
  VmInventory,
} from './driver.ts';

export interface SimHost {
  name: string;
  cpuCores: number;
  memBytes: number;
}

export interface SimVm {
  name: string;
  vcpus: number;
  memBytes: number;
  /** Mean CPU use as a share of its vCPUs, 0..1. */
  cpuBase: number;
  /** Amplitude of the periodic swing, as a share of its vCPUs. */
  cpuSwing: number;
  /** Phase of the pattern, 0..1 of a period. */
  phase: number;
  /** Share of its memory in use, 0..1. */
  memUse: number;
  /** Size of its local disks (a migration copies them); none: shared storage. */
  localDiskBytes?: number;
}

const GIB = 1024 ** 3;

/** A number in [0,1) fixed by its inputs (per-VM, per-minute noise). */
function hashUnit(...parts: (string | number)[]): number {
  const digest = createHash('sha256').update(parts.join('\0')).digest();
  return digest.readUInt32BE(0) / 4294967296;
}

/** Builds the seeded cluster described by `config.sim`. Pure: same config, same cluster. */
export function generateSimCluster(sim: LbvmConfig['sim']): {
  hosts: SimHost[];
  vms: SimVm[];
  placement: Record<string, string>;
} {
  const random = prng(sim.seed);
  const width = String(sim.hosts).length < 3 ? 3 : String(sim.hosts).length;
  const hosts: SimHost[] = Array.from({ length: sim.hosts }, (_, index) => ({
    name: `sim-h${String(index + 1).padStart(width, '0')}`,
    cpuCores: sim.hostCpuCores,
    memBytes: sim.hostMem,
  }));
  const vmWidth = Math.max(4, String(sim.vms).length);
  const vms: SimVm[] = [];
  const placement: Record<string, string> = {};
  const free = hosts.map((host) => ({ host, memBytes: host.memBytes }));
  for (let index = 0; index < sim.vms; index++) {
    const vcpus = [1, 1, 2, 2, 2, 4, 4, 8][Math.floor(random() * 8)]!;
    const memBytes = Math.min([1, 2, 2, 4, 4, 8, 8, 16][Math.floor(random() * 8)]! * GIB, Math.floor(sim.hostMem / 4));
    const vm: SimVm = {
      name: `sim-vm${String(index + 1).padStart(vmWidth, '0')}`,
      vcpus,
      memBytes,
      cpuBase: 0.05 + random() * 0.45,
      cpuSwing: random() * 0.3,
      phase: random(),
      memUse: 0.3 + random() * 0.6,
    };
    vms.push(vm);
    // First fit from a seeded starting host, so the load is spread but uneven (something to balance).
    const start = Math.floor(random() * free.length);
    let placed = false;
    for (let offset = 0; offset < free.length && !placed; offset++) {
      const slot = free[(start + offset) % free.length]!;
      if (slot.memBytes >= memBytes) {
        slot.memBytes -= memBytes;
        placement[vm.name] = slot.host.name;
        placed = true;
      }
    }
    if (!placed) placement[vm.name] = free[start]!.host.name; // overcommitted cluster: still placed, the monitor will see it
  }
  return { hosts, vms, placement };
}

/** CPU cores a simulated VM uses at `timeMs`. */
export function simCpuUsedCores(vm: SimVm, timeMs: number, periodMs: number): number {
  const angle = 2 * Math.PI * (timeMs / periodMs + vm.phase);
  const noise = (hashUnit(vm.name, Math.floor(timeMs / 60_000)) - 0.5) * 0.1;
  const share = Math.min(1, Math.max(0, vm.cpuBase + vm.cpuSwing * Math.sin(angle) + noise));
  return share * vm.vcpus;
}

// KEYS: placement, migrating. ARGV: vm, from, to, attempt. Moves only if the VM is still on `from`
// and no later attempt took the migration over (the point of no return, as in a real hypervisor).
const COMMIT_MOVE = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[4] then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`;

/** The shared state of the simulated cluster in Redis. */
export class SimCluster {
  readonly keys: { hosts: string; vms: string; placement: string; migrating: string; seeded: string };

  constructor(
    readonly redis: Redis,
    prefix: string,
  ) {
    this.keys = {
      hosts: `${prefix}:sim:hosts`,
      vms: `${prefix}:sim:vms`,
      placement: `${prefix}:sim:placement`,
      migrating: `${prefix}:sim:migrating`,
      seeded: `${prefix}:sim:seeded`,
    };
  }

  /** Creates the seeded cluster unless one exists already (the first process to get here wins). */
  async ensure(sim: LbvmConfig['sim']): Promise<void> {
    const won = await this.redis.set(this.keys.seeded, JSON.stringify({ seed: sim.seed, atMs: Date.now() }), 'NX');
    if (won !== 'OK') return;
    const cluster = generateSimCluster(sim);
    await this.write(cluster.hosts, cluster.vms, cluster.placement);
  }

  /** Replaces the cluster with the given hosts and VMs (tests, benchmarks, the demo). */
  async define(hosts: SimHost[], vms: SimVm[], placement: Record<string, string>): Promise<void> {
    await this.redis.del(this.keys.hosts, this.keys.vms, this.keys.placement, this.keys.migrating);
    await this.redis.set(this.keys.seeded, JSON.stringify({ defined: true, atMs: Date.now() }));
    await this.write(hosts, vms, placement);
  }

  private async write(hosts: SimHost[], vms: SimVm[], placement: Record<string, string>): Promise<void> {
    const pipeline = this.redis.multi();
    for (const host of hosts) pipeline.hset(this.keys.hosts, host.name, JSON.stringify(host));
    for (const vm of vms) pipeline.hset(this.keys.vms, vm.name, JSON.stringify(vm));
    for (const [vm, host] of Object.entries(placement)) pipeline.hset(this.keys.placement, vm, host);
    await pipeline.exec();
  }

  async hosts(): Promise<SimHost[]> {
    return Object.values(await this.redis.hgetall(this.keys.hosts))
      .map((text) => JSON.parse(text) as SimHost)
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  async placement(): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.placement);
  }

  async vm(name: string): Promise<SimVm | null> {
    const text = await this.redis.hget(this.keys.vms, name);
    return text ? (JSON.parse(text) as SimVm) : null;
  }

  async locate(vm: string): Promise<string | null> {
    return this.redis.hget(this.keys.placement, vm);
  }
}

export interface SimDriverOptions {
  config: LbvmConfig;
  redis: Redis;
  /** Close the Redis connection with the driver. */
  ownsRedis?: boolean;
  /** Clock for the load pattern (tests pin it). */
  now?: () => number;
}

export class SimDriver implements Driver {
  readonly name = 'sim';
  readonly capabilities: DriverCapabilities = {
    live: true,
    checkpoint: true,
    cancel: true,
    progress: true,
    stats: true,
    localDisks: true,
  };
  readonly cluster: SimCluster;
  private readonly now: () => number;

  constructor(private readonly options: SimDriverOptions) {
    this.cluster = new SimCluster(options.redis, options.config.redis.prefix);
    this.now = options.now ?? Date.now;
  }

  async inventory(host: string): Promise<HostInventory> {
    const [hosts, placement, migrating] = await Promise.all([
      this.options.redis.hgetall(this.cluster.keys.hosts),
      this.cluster.placement(),
      this.options.redis.hgetall(this.cluster.keys.migrating),
    ]);
    const hostInfo = hosts[host] ? (JSON.parse(hosts[host]!) as SimHost) : null;
    const names = Object.entries(placement)
      .filter(([, on]) => on === host)
      .map(([vm]) => vm);
    const specs = names.length ? await this.options.redis.hmget(this.cluster.keys.vms, ...names) : [];
    const timeMs = this.now();
    const vms: VmInventory[] = [];
    specs.forEach((text) => {
      if (!text) return;
      const vm = JSON.parse(text) as SimVm;
      vms.push({
        name: vm.name,
        host,
        vcpus: vm.vcpus,
        memBytes: vm.memBytes,
        memUsedBytes: Math.round(vm.memBytes * vm.memUse),
        state: migrating[vm.name] ? 'migrating' : 'running',
        instanceId: `sim:${vm.name}`,
        cpuUsedCores: simCpuUsedCores(vm, timeMs, this.options.config.sim.period),
        memDirtyBytesPerSec: Math.round(vm.memBytes * vm.cpuBase * 0.02),
        ...(vm.localDiskBytes ? { localDiskBytes: vm.localDiskBytes } : {}),
      });
    });
    vms.sort((a, b) => a.name.localeCompare(b.name));
    return { host, vms, ...(hostInfo ? { cpuCores: hostInfo.cpuCores, memBytes: hostInfo.memBytes } : {}) };
  }

  locate(vm: string): Promise<string | null> {
    return this.cluster.locate(vm);
  }

  async migrate(request: MigrateRequest): Promise<MigrateOutcome> {
    const redis = this.options.redis;
    const spec = await this.cluster.vm(request.vm);
    if (!spec) throw new Error(`sim: no VM named ${JSON.stringify(request.vm)}`);
    const where = await this.cluster.locate(request.vm);
    if (where !== request.from)
      throw new Error(
        `sim: VM ${JSON.stringify(request.vm)} is on ${JSON.stringify(where)}, not on ${JSON.stringify(request.from)}`,
      );
    const hosts = await redis.hmget(this.cluster.keys.hosts, request.to);
    if (!hosts[0]) throw new Error(`sim: no host named ${JSON.stringify(request.to)}`);
    const startedMs = Date.now();
    const durationMs = (spec.memBytes / request.bandwidthBytesPerSec / this.options.config.sim.speedup) * 1000;
    const attempt = request.attemptId ?? `${process.pid}-${startedMs}-${Math.random()}`;
    await redis.hset(this.cluster.keys.migrating, request.vm, attempt);
    try {
      const tickMs = Math.max(10, Math.min(500, durationMs / 10));
      while (Date.now() - startedMs < durationMs) {
        if (request.signal.aborted) throw request.signal.reason ?? new Error('sim: migration cancelled');
        await abortableSleep(Math.min(tickMs, durationMs - (Date.now() - startedMs)), request.signal);
        const fraction = Math.min(1, (Date.now() - startedMs) / durationMs);
        request.onProgress?.({
          bytesCopied: Math.round(spec.memBytes * fraction),
          bytesRemaining: Math.round(spec.memBytes * (1 - fraction)),
          expectedDowntimeMs: 30,
          fraction,
        });
      }
      if (request.signal.aborted) throw request.signal.reason ?? new Error('sim: migration cancelled');
      const failureRate = this.options.config.sim.failureRate;
      if (failureRate > 0 && randomInt(1_000_000) < failureRate * 1_000_000) {
        throw new Error(
          `sim: simulated migration failure (sim.failureRate ${failureRate}); ${request.vm} stays on ${request.from}`,
        );
      }
      const moved = await redis.eval(
        COMMIT_MOVE,
        2,
        this.cluster.keys.placement,
        this.cluster.keys.migrating,
        request.vm,
        request.from,
        request.to,
        attempt,
      );
      if (moved === -1)
        throw new AttemptSuperseded(
          `sim: another attempt took over the migration of ${request.vm}; this one does not count`,
        );
      if (moved !== 1) throw new Error(`sim: ${request.vm} left ${request.from} during the migration`);
      return {
        totalMs: Date.now() - startedMs,
        downtimeMs: request.mode === 'live' ? 30 : durationMs,
        bytesCopied: spec.memBytes,
      };
    } finally {
      // Clear the mark only if it is still ours.
      await redis
        .eval(
          `if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end return 1`,
          1,
          this.cluster.keys.migrating,
          request.vm,
          attempt,
        )
        .catch(() => {});
    }
  }

  async close(): Promise<void> {
    if (this.options.ownsRedis) this.options.redis.disconnect();
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
