/**
 * The leader lease: several monitors may run; exactly one acts. The lease is a Redis key holding the
 * leader's id with a TTL; whoever sets it when it is free becomes leader and takes a fencing token
 * (one more than `${prefix}:leader:fence`, so tokens only grow). Every job the leader enqueues carries its
 * token; workers drop jobs whose token is lower than the current one, so a deposed leader that wakes
 * up after a pause cannot move VMs (Kleppmann's fencing tokens).
 *
 * A leader renews every lease/3. It treats itself as leader only until `validUntilMs`, computed from
 * the time it *sent* the last successful renewal, so it stops acting before Redis could hand the
 * lease to someone else.
 *
 * Across a Sentinel failover. Replication is asynchronous: the promoted replica may lack the old
 * master's last writes, the fence among them, and a plain "fence + 1" there could hand out a token a
 * deposed leader already holds. So with Sentinel a token also carries the master's term: Sentinel's
 * config epoch, which every failover raises (a failover is voted by a majority of sentinels for an
 * epoch no earlier failover had). A token is taken only when a majority of the sentinels agree on
 * (epoch, master address), on a connection to that very address that did not reconnect while the
 * token was taken, and it is at least `epoch × TERM_SPAN + 1`: above every token of every earlier
 * epoch, whatever the new master missed. Without Sentinel the term is absent and a token is
 * "fence + 1", as before.
 *
 * WAIT was the other candidate: have the replicas acknowledge the INCR before using the token. It
 * cannot promise this: Sentinel promotes a replica "best effort", maybe one that did not acknowledge,
 * and WAIT for every replica stops leadership whenever one replica is away.
 */
import type { Redis } from 'ioredis';
import { connectedAddress, type MasterTerm } from '../util/redis.ts';

/** Tokens of one Sentinel epoch lie in [epoch × TERM_SPAN + 1, (epoch + 1) × TERM_SPAN): a billion takeovers each. */
export const TERM_SPAN = 1_000_000_000;

/**
 * KEYS[1]=lease KEYS[2]=fence. ARGV[1]=id ARGV[2]=leaseMs ARGV[3]=epoch ('' without Sentinel)
 * ARGV[4]=this monitor's last token ('' if none) ARGV[5]=TERM_SPAN. Returns the token; 0 when
 * another monitor holds the lease; -2 when the fence here is of a later epoch (the sentinels' answer
 * was stale).
 */
const ACQUIRE = `
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
local span = tonumber(ARGV[5])
local floor = 0
if ARGV[3] ~= '' then
  floor = tonumber(ARGV[3]) * span
  if fence >= floor + span then return -2 end
end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if holder == ARGV[1] and ARGV[4] ~= '' and fence == tonumber(ARGV[4]) then
  -- Still ours, and no token was taken after ours on the data this master holds: keep it, so the
  -- jobs enqueued under it stay valid (a monitor that lost touch during a failover carries on).
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return fence
end
local token = fence + 1
if token <= floor then token = floor + 1 end
redis.call('SET', KEYS[2], string.format('%d', token))
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return token
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

export interface LeaseOptions {
  onAcquired?(token: number): void;
  onLost?(reason: string): void;
  /** Why this monitor may not take a token now (the sentinels disagree, a stale master); once per new reason. */
  onRefused?(reason: string): void;
  /** With Sentinel: the master's term as a majority of the sentinels see it (throws when they do not agree). */
  term?: () => Promise<MasterTerm>;
}

export class LeaderLease {
  private state: LeaseState = { leader: false, token: null, validUntilMs: 0 };
  private timer: NodeJS.Timeout | null = null;
  private readonly keys: LeaseKeys;
  private ticking: Promise<void> | null = null;
  /** The last token this monitor held (kept after losing the lease, to carry on with it if still ours). */
  private lastToken: number | null = null;
  private lastRefusal: string | null = null;
  /** Connections made so far (ioredis 'ready' events): a change means the connection moved. */
  private readies = 0;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    readonly id: string,
    private readonly leaseMs: number,
    private readonly options: LeaseOptions = {},
    private readonly clock: () => number = Date.now,
  ) {
    if (!(leaseMs >= 100)) throw new Error(`LeaderLease: leaseMs must be >= 100, got ${leaseMs}`);
    this.keys = leaseKeys(prefix);
    redis.on('ready', () => this.readies++);
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
        const ok = (await this.redis.eval(
          RENEW,
          2,
          this.keys.lease,
          this.keys.fence,
          this.id,
          String(this.leaseMs),
          String(this.state.token),
        )) as number;
        if (ok === 1) {
          this.state.validUntilMs = validUntil;
          return;
        }
        this.lose('another monitor holds the lease now');
      }
      const token = await this.acquire();
      if (token > 0) {
        const wasLeader = this.state.leader;
        this.state = { leader: true, token, validUntilMs: validUntil };
        this.lastToken = token;
        this.lastRefusal = null;
        if (!wasLeader) this.options.onAcquired?.(token);
      }
    } catch (error) {
      if (this.state.leader) this.lose(`Redis error while renewing: ${(error as Error).message}`);
    }
  }

  /** One ACQUIRE: the token, or 0 (held by another, or refused: reported through onRefused). */
  private async acquire(): Promise<number> {
    let term: MasterTerm | null = null;
    if (this.options.term) {
      // Ask the sentinels only when the lease could be ours: standbys tick every lease/3.
      const holder = await this.redis.get(this.keys.lease);
      if (holder !== null && holder !== this.id) return 0;
      try {
        term = await this.options.term();
      } catch (error) {
        this.refuse((error as Error).message);
        return 0;
      }
      if (connectedAddress(this.redis) !== term.address) {
        this.refuse(
          `this monitor's connection is not (yet) on the master the sentinels name (${term.address}, epoch ${term.epoch})`,
        );
        return 0;
      }
    }
    const readies = this.readies;
    const args = [
      this.id,
      String(this.leaseMs),
      term ? String(term.epoch) : '',
      this.lastToken === null ? '' : String(this.lastToken),
      String(TERM_SPAN),
    ];
    const token = (await this.redis.eval(ACQUIRE, 2, this.keys.lease, this.keys.fence, ...args)) as number;
    if (term && (this.readies !== readies || connectedAddress(this.redis) !== term.address)) {
      // The connection moved while the script ran: it may have run on another server, under another
      // term. That token is never used (the next acquisition goes above it).
      this.refuse('the connection followed a failover while taking a token; trying again');
      return 0;
    }
    if (token === -2)
      this.refuse(
        `the fence in Redis is of a later Sentinel epoch than ${term!.epoch}; the sentinels' answer was stale`,
      );
    return Math.max(token, 0);
  }

  private refuse(reason: string): void {
    if (reason !== this.lastRefusal) this.options.onRefused?.(reason);
    this.lastRefusal = reason;
  }

  private lose(reason: string): void {
    const was = this.state.leader;
    this.state = { leader: false, token: null, validUntilMs: 0 };
    if (was) this.options.onLost?.(reason);
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
