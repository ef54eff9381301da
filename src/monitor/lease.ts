/**
 * The leader lease: several monitors may run; exactly one acts. The lease is a Redis key holding the
 * leader's id with a TTL; whoever sets it when it is free becomes leader and takes a fencing token
 * (INCR of `${prefix}:leader:fence`, so tokens only grow). Every job the leader enqueues carries its
 * token; workers drop jobs whose token is lower than the current one, so a deposed leader that wakes
 * up after a pause cannot move VMs (Kleppmann's fencing tokens).
 *
 * A leader renews every lease/3. It treats itself as leader only until `validUntilMs`, computed from
 * the time it *sent* the last successful renewal, so it stops acting before Redis could hand the
 * lease to someone else.
 */
import type { Redis } from 'ioredis';

/** KEYS[1]=lease KEYS[2]=fence ARGV[1]=id ARGV[2]=leaseMs. Returns the fencing token, or 0 when held by another. */
const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
`;

/** KEYS[1]=lease KEYS[2]=fence ARGV[1]=id ARGV[2]=leaseMs ARGV[3]=token. 1 when still ours (and the fence is ours). */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export interface LeaseKeys {
  lease: string;
  fence: string;
}

export function leaseKeys(prefix: string): LeaseKeys {
  return { lease: `${prefix}:leader`, fence: `${prefix}:leader:fence` };
}

export interface LeaseState {
  leader: boolean;
  token: number | null;
  /** Local time until which this process may act as leader. */
  validUntilMs: number;
}

export interface LeaseEvents {
  onAcquired?(token: number): void;
  onLost?(reason: string): void;
}

export class LeaderLease {
  private state: LeaseState = { leader: false, token: null, validUntilMs: 0 };
  private timer: NodeJS.Timeout | null = null;
  private readonly keys: LeaseKeys;
  private ticking: Promise<void> | null = null;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    readonly id: string,
    private readonly leaseMs: number,
    private readonly events: LeaseEvents = {},
    private readonly clock: () => number = Date.now,
  ) {
    if (!(leaseMs >= 100)) throw new Error(`LeaderLease: leaseMs must be >= 100, got ${leaseMs}`);
    this.keys = leaseKeys(prefix);
  }

  /** True while this process holds the lease and its last renewal is recent enough to act on. */
  isLeader(): boolean {
    return this.state.leader && this.clock() < this.state.validUntilMs;
  }

  get token(): number | null {
    return this.isLeader() ? this.state.token : null;
  }

  snapshot(): LeaseState {
    return { ...this.state, leader: this.isLeader() };
  }

  /** One acquire-or-renew step. Safe to call at any time; errors (Redis down) count as losing the lease. */
  async tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = this.step().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async step(): Promise<void> {
    const sentAt = this.clock();
    // Act only for (lease - a margin for clock drift and latency) after the request was sent.
    const validUntil = sentAt + this.leaseMs * 0.8;
    try {
      if (this.state.leader && this.state.token !== null) {
        const ok = (await this.redis.eval(RENEW, 2, this.keys.lease, this.keys.fence, this.id, String(this.leaseMs), String(this.state.token))) as number;
        if (ok === 1) {
          this.state.validUntilMs = validUntil;
          return;
        }
        this.lose('another monitor holds the lease now');
      }
      const token = (await this.redis.eval(ACQUIRE, 2, this.keys.lease, this.keys.fence, this.id, String(this.leaseMs))) as number;
      if (token > 0) {
        const wasLeader = this.state.leader;
        this.state = { leader: true, token, validUntilMs: validUntil };
        if (!wasLeader) this.events.onAcquired?.(token);
      }
    } catch (error) {
      if (this.state.leader) this.lose(`Redis error while renewing: ${(error as Error).message}`);
    }
  }

  private lose(reason: string): void {
    const was = this.state.leader;
    this.state = { leader: false, token: null, validUntilMs: 0 };
    if (was) this.events.onLost?.(reason);
  }

  /** Starts renewing every lease/3. */
  start(): void {
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), Math.max(50, Math.floor(this.leaseMs / 3)));
  }

  /** Stops renewing and gives the lease up, so a standby takes over at once. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.ticking;
    if (this.state.leader) {
      try {
        await this.redis.eval(RELEASE, 1, this.keys.lease, this.id);
      } catch {
        /* the lease expires by itself */
      }
    }
    this.lose('released');
  }
}

/** The current fencing token (the highest ever issued), for workers and `lbm status`. */
export async function currentFence(redis: Redis, prefix: string): Promise<number> {
  return Number((await redis.get(leaseKeys(prefix).fence)) ?? '0');
}

/** Who leads now (its id), or null. */
export async function currentLeader(redis: Redis, prefix: string): Promise<string | null> {
  return redis.get(leaseKeys(prefix).lease);
}
