/**
 * Operator controls persisted in Redis, so they survive monitor restarts and reach every monitor:
 * pause/resume and per-host maintenance flags. `lbm pause` writes here; the monitor reads at the
 * start of every round, so a pause takes effect within one interval.
 */
import type { Redis } from 'ioredis';

export interface ControlKeys {
  paused: string;
  maintenance: string;
}

export function controlKeys(prefix: string): ControlKeys {
  return { paused: `${prefix}:control:paused`, maintenance: `${prefix}:control:maintenance` };
}

/** Where the monitor keeps its last round record (for `lbm status`) and its recent moves (per-hour limit). */
export function roundKeys(prefix: string) {
  return { lastRound: `${prefix}:monitor:last-round`, movesLog: `${prefix}:monitor:moves` };
}

export const HOUR_MS = 3_600_000;

/** Moves the monitor enqueued in the hour before `nowMs` (its per-hour budget). Reads only. */
export async function movesInLastHour(redis: Redis, prefix: string, nowMs: number): Promise<number> {
  return redis.zcount(roundKeys(prefix).movesLog, `(${nowMs - HOUR_MS}`, '+inf');
}

export interface PauseState {
  paused: boolean;
  by?: string;
  sinceMs?: number;
  reason?: string;
}

export async function readPause(redis: Redis, prefix: string): Promise<PauseState> {
  const raw = await redis.get(controlKeys(prefix).paused);
  if (!raw) return { paused: false };
  try {
    return { paused: true, ...(JSON.parse(raw) as Omit<PauseState, 'paused'>) };
  } catch {
    return { paused: true };
  }
}

export async function setPaused(
  redis: Redis,
  prefix: string,
  paused: boolean,
  info: { by: string; nowMs: number; reason?: string },
): Promise<void> {
  const key = controlKeys(prefix).paused;
  if (paused) await redis.set(key, JSON.stringify({ by: info.by, sinceMs: info.nowMs, reason: info.reason }));
  else await redis.del(key);
}

export interface MaintenanceFlag {
  by: string;
  sinceMs: number;
  evacuate: boolean;
}

export async function readMaintenance(redis: Redis, prefix: string): Promise<Map<string, MaintenanceFlag>> {
  const all = await redis.hgetall(controlKeys(prefix).maintenance);
  const result = new Map<string, MaintenanceFlag>();
  for (const [host, raw] of Object.entries(all)) {
    try {
      result.set(host, JSON.parse(raw) as MaintenanceFlag);
    } catch {
      result.set(host, { by: 'unknown', sinceMs: 0, evacuate: false });
    }
  }
  return result;
}

export async function setMaintenance(
  redis: Redis,
  prefix: string,
  host: string,
  on: boolean,
  flag: MaintenanceFlag,
): Promise<void> {
  const key = controlKeys(prefix).maintenance;
  if (on) await redis.hset(key, host, JSON.stringify(flag));
  else await redis.hdel(key, host);
}
