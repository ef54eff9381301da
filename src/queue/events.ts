/**
 * The event sink: every migration start, finish, failure, drop and enqueue is appended to a Redis
 * stream (`${prefix}:events`, field `event` holding the LbvmEvent as JSON). The monitor and `lbm`
 * read it; stream ids order events across every worker process, since Redis assigns them.
 */
import type { Redis } from 'ioredis';
import type { LbvmEvent } from '../model/index.ts';
import { queueKeys } from './keys.ts';

/** Anything events can be written to (the Redis stream here; the sample store later). */
export interface EventSink {
  emit(event: LbvmEvent): Promise<void>;
}

export interface StoredEvent {
  /** The stream id (`<ms>-<seq>`), usable as `after` for the next read. */
  id: string;
  event: LbvmEvent;
}

/** Keeps about this many events; older ones are trimmed. */
export const EVENT_STREAM_MAX = 100_000;

export class RedisEventLog implements EventSink {
  readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.key = queueKeys(prefix).events;
  }

  async emit(event: LbvmEvent): Promise<void> {
    await this.redis.xadd(this.key, 'MAXLEN', '~', String(EVENT_STREAM_MAX), '*', 'event', JSON.stringify(event));
  }

  /** Events after `after` (a stream id; default: from the start), oldest first. */
  async read(options: { after?: string; count?: number } = {}): Promise<StoredEvent[]> {
    const start = options.after ? `(${options.after}` : '-';
    const entries = await this.redis.xrange(this.key, start, '+', 'COUNT', options.count ?? 10_000);
    return entries.map(([id, fields]) => ({ id, event: parseFields(fields) }));
  }

  /** The newest `count` events, oldest first. */
  async latest(count = 100): Promise<StoredEvent[]> {
    const entries = await this.redis.xrevrange(this.key, '+', '-', 'COUNT', count);
    return entries.reverse().map(([id, fields]) => ({ id, event: parseFields(fields) }));
  }

  /** Waits up to `blockMs` for events after `after` ('$' = only new ones). Needs its own connection. */
  async follow(after: string, blockMs: number): Promise<StoredEvent[]> {
    const reply = (await this.redis.xread('BLOCK', blockMs, 'STREAMS', this.key, after)) as
      [string, [string, string[]][]][] | null;
    if (!reply) return [];
    return reply[0]![1].map(([id, fields]) => ({ id, event: parseFields(fields) }));
  }
}

function parseFields(fields: string[]): LbvmEvent {
  const index = fields.indexOf('event');
  return JSON.parse(fields[index + 1]!) as LbvmEvent;
}
