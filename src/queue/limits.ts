/**
 * The live half of the migration limits (the type and the config mapping: src/model/limits.ts,
 * `limitsFromConfig`).
 *
 * - Slots (live, in Redis): a running migration holds one slot on its source host, one on its
 *   destination host and one cluster-wide. A slot is a member of a sorted set scored by its expiry
 *   time; the holder renews it while it works. A worker that dies stops renewing, and its slots
 *   expire after the lease (`migration.lockDuration`), so a dead worker never blocks a host for ever.
 *   Acquisition of all three slots and of the VM's lock is one Lua script: all or nothing, so two
 *   workers in different processes can never both take the last slot. Time is Redis' own clock
 *   (TIME), so workers with skewed clocks agree on expiry.
 * - At plan time the same three limits are filters of the policies (policies/constraints.ts,
 *   SOURCE_FILTERS and DEST_FILTERS), counting the migrations queued or running and those planned;
 *   the per-round and per-hour budgets are the monitor's gate (src/monitor/gate.ts).
 */
import type { Redis } from 'ioredis';
import type { LimitReason, MigrationLimits } from '../model/index.ts';
import { queueKeys } from './keys.ts';

/** The three concurrency limits the slots enforce (from `limitsFromConfig`). */
export type SlotLimits = Pick<
  MigrationLimits,
  'migrationsPerSourceHost' | 'migrationsPerDestinationHost' | 'migrationsInCluster'
>;

/** What stopped a job from starting: its VM is busy, or one of the three limits is reached. */
export type AcquireResult = { ok: true } | { ok: false; reason: 'VM_BUSY' | LimitReason; holders: string[] };

// KEYS: source, destination, cluster, vmLock. ARGV: holder, ttlMs, srcLimit, dstLimit, clusterLimit.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = ARGV[1]
local ttl = tonumber(ARGV[2])
local current = redis.call('GET', KEYS[4])
if current and current ~= holder then return {'VM_BUSY', current} end
local reasons = {'SOURCE_HOST_LIMIT', 'DESTINATION_HOST_LIMIT', 'CLUSTER_LIMIT'}
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if not redis.call('ZSCORE', KEYS[i], holder) then
    if redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[2 + i]) then
      local result = {reasons[i]}
      for _, member in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do table.insert(result, member) end
      return result
    end
  end
end
for i = 1, 3 do redis.call('ZADD', KEYS[i], now + ttl, holder) end
redis.call('SET', KEYS[4], holder, 'PX', ttl)
return {'OK'}
`;

// Renews only what the holder still holds; returns 0 (and renews nothing) if any part was lost.
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = ARGV[1]
local ttl = tonumber(ARGV[2])
if redis.call('GET', KEYS[4]) ~= holder then return 0 end
for i = 1, 3 do
  local score = redis.call('ZSCORE', KEYS[i], holder)
  if not score or tonumber(score) < now then return 0 end
end
for i = 1, 3 do redis.call('ZADD', KEYS[i], 'XX', now + ttl, holder) end
redis.call('PEXPIRE', KEYS[4], ttl)
return 1
`;

const RELEASE = `
for i = 1, 3 do redis.call('ZREM', KEYS[i], ARGV[1]) end
if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) end
return 1
`;

export interface SlotRequest {
  /** Unique per attempt (job id and BullMQ lock token), so a re-run never inherits a dead run's slots. */
  holder: string;
  vm: string;
  from: string;
  to: string;
}

export class MigrationSlots {
  private readonly keys: ReturnType<typeof queueKeys>;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    readonly limits: SlotLimits,
    /** How long a slot lives without renewal. */
    readonly leaseMs: number,
  ) {
    this.keys = queueKeys(prefix);
  }

  private keyList(request: SlotRequest): string[] {
    return [
      this.keys.sourceSlots(request.from),
      this.keys.destinationSlots(request.to),
      this.keys.clusterSlots,
      this.keys.vmLock(request.vm),
    ];
  }

  async acquire(request: SlotRequest): Promise<AcquireResult> {
    const reply = (await this.redis.eval(
      ACQUIRE,
      4,
      ...this.keyList(request),
      request.holder,
      String(this.leaseMs),
      String(this.limits.migrationsPerSourceHost),
      String(this.limits.migrationsPerDestinationHost),
      String(this.limits.migrationsInCluster),
    )) as string[];
    if (reply[0] === 'OK') return { ok: true };
    return { ok: false, reason: reply[0] as 'VM_BUSY' | LimitReason, holders: reply.slice(1) };
  }

  /** True while the holder still holds everything; false once any part expired or was taken. */
  async renew(request: SlotRequest): Promise<boolean> {
    return (await this.redis.eval(RENEW, 4, ...this.keyList(request), request.holder, String(this.leaseMs))) === 1;
  }

  async release(request: SlotRequest): Promise<void> {
    await this.redis.eval(RELEASE, 4, ...this.keyList(request), request.holder);
  }

  /** Live slot holders per host and cluster-wide (expired ones left out), for `lbm` and the monitor. */
  async usage(): Promise<SlotUsage> {
    const nowMs = await redisTimeMs(this.redis);
    const usage: SlotUsage = { source: {}, destination: {}, cluster: 0 };
    const prefixes = { source: this.keys.sourceSlots(''), destination: this.keys.destinationSlots('') };
    let cursor = '0';
    do {
      const [next, found] = await this.redis.scan(cursor, 'MATCH', this.keys.slotPattern, 'COUNT', 500);
      cursor = next;
      for (const key of found) {
        const live = await this.redis.zcount(key, nowMs, '+inf');
        if (key === this.keys.clusterSlots) usage.cluster = live;
        else if (key.startsWith(prefixes.source)) usage.source[key.slice(prefixes.source.length)] = live;
        else if (key.startsWith(prefixes.destination)) usage.destination[key.slice(prefixes.destination.length)] = live;
      }
    } while (cursor !== '0');
    return usage;
  }
}

export interface SlotUsage {
  source: Record<string, number>;
  destination: Record<string, number>;
  cluster: number;
}

export async function redisTimeMs(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}
