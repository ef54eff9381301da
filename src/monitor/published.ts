/**
 * The snapshot the leader publishes in Redis after each round, so `lbm` answers at once at any size
 * instead of reading the whole sample window again (issue 16): `status`, `hosts`, `vms`, `plan` and
 * `explain` read it and say its age; they read the store as before when there is none, when it is
 * older than `monitor.staleAfterIntervals` intervals (no monitor leads), or when it was built from
 * another store or window than the reader's config names.
 *
 * Encoding: the snapshot as JSON with every CPU window cut out, the windows' values as one Float64Array
 * after it (exact: the plan `lbm plan` makes from it is the monitor's), the whole deflated. Layout
 * before deflating: uint32 LE byte length of the JSON, the JSON (UTF-8), zero padding to a multiple of
 * 8, the float64 values (host windows in host order, then VM windows in VM order).
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Redis } from 'ioredis';
import type { Snapshot } from '../model/index.ts';

const deflate = promisify(zlib.deflate);
const inflate = promisify(zlib.inflate);

export const PUBLISHED_VERSION = 1;

export function publishedKey(prefix: string): string {
  return `${prefix}:monitor:snapshot`;
}

/** What a round publishes beside its snapshot: who built it, from what, and how it read. */
export interface PublishedMeta {
  version: number;
  roundId: string;
  monitor: string;
  /** The store it was read from (displayUrl) and the window length, so a reader configured otherwise reads its own. */
  store: string;
  windowMs: number;
  samplesSkipped: number;
}

export interface PublishedSnapshot extends PublishedMeta {
  snapshot: Snapshot;
}

/** Encodes and deflates a snapshot with its meta. */
export async function encodeSnapshot(published: PublishedSnapshot): Promise<Buffer> {
  const { snapshot } = published;
  let values = 0;
  for (const host of snapshot.hosts) values += host.cpuUsedWindowCores.length;
  for (const vm of snapshot.vms) values += vm.cpuUsedWindowCores.length;
  const floats = new Float64Array(values);
  const lengths: number[] = [];
  let at = 0;
  const cut = <T extends { cpuUsedWindowCores: number[] }>(item: T): T => {
    floats.set(item.cpuUsedWindowCores, at);
    at += item.cpuUsedWindowCores.length;
    lengths.push(item.cpuUsedWindowCores.length);
    return { ...item, cpuUsedWindowCores: [] };
  };
  const bare = { ...snapshot, hosts: snapshot.hosts.map(cut), vms: snapshot.vms.map(cut) };
  const json = Buffer.from(JSON.stringify({ ...published, snapshot: bare, lengths }), 'utf8');
  const floatsAt = Math.ceil((4 + json.length) / 8) * 8;
  const raw = Buffer.alloc(floatsAt + floats.byteLength);
  raw.writeUInt32LE(json.length, 0);
  json.copy(raw, 4);
  Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).copy(raw, floatsAt);
  return deflate(raw, { level: 1 });
}

/** The inverse of encodeSnapshot; throws with what was wrong when the bytes are not one. */
export async function decodeSnapshot(bytes: Buffer): Promise<PublishedSnapshot> {
  const raw = await inflate(bytes);
  const jsonLength = raw.readUInt32LE(0);
  const parsed = JSON.parse(raw.subarray(4, 4 + jsonLength).toString('utf8')) as PublishedSnapshot & {
    lengths: number[];
  };
  if (parsed.version !== PUBLISHED_VERSION)
    throw new Error(`published snapshot version ${String(parsed.version)}: expected ${PUBLISHED_VERSION}`);
  const floatsAt = Math.ceil((4 + jsonLength) / 8) * 8;
  // Copied out: the inflated buffer need not be 8-byte aligned.
  const floats = new Float64Array(raw.buffer.slice(raw.byteOffset + floatsAt, raw.byteOffset + raw.length));
  const { lengths, snapshot, ...meta } = parsed;
  let at = 0;
  let index = 0;
  const fill = (item: { cpuUsedWindowCores: number[] }) => {
    const length = lengths[index++]!;
    // A plain loop: Array.from of a subarray costs six times as much (30,000 windows: 200 ms against 30).
    const window = new Array<number>(length);
    for (let i = 0; i < length; i++) window[i] = floats[at + i]!;
    item.cpuUsedWindowCores = window;
    at += length;
  };
  snapshot.hosts.forEach(fill);
  snapshot.vms.forEach(fill);
  if (at !== floats.length || index !== lengths.length)
    throw new Error(`published snapshot holds ${floats.length} window values for ${at} expected`);
  return { ...meta, snapshot };
}

/** Publishes a round's snapshot (the leader only). Kept for `keepMs`, then gone: a dead monitor's snapshot does not linger. */
export async function publishSnapshot(
  redis: Redis,
  prefix: string,
  published: PublishedSnapshot,
  keepMs: number,
): Promise<number> {
  const bytes = await encodeSnapshot(published);
  await redis.set(publishedKey(prefix), bytes, 'PX', Math.max(1000, Math.round(keepMs)));
  return bytes.length;
}

/** The published snapshot, or null when there is none; throws when the key holds something else. */
export async function readPublished(redis: Redis, prefix: string): Promise<PublishedSnapshot | null> {
  const bytes = await redis.getBuffer(publishedKey(prefix));
  if (!bytes) return null;
  try {
    return await decodeSnapshot(bytes);
  } catch (error) {
    throw new Error(`Redis key ${publishedKey(prefix)}: not a published snapshot (${(error as Error).message})`);
  }
}
