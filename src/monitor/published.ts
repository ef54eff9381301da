/**
 * The snapshot the leader publishes in Redis after each round, so `lbm` answers at once at any size
 * instead of reading the whole sample window again (issue 16): `status`, `hosts`, `vms`, `plan` and
 * `explain` read it and say its age; they read the store as before when there is none, when it is
 * older than `monitor.staleAfterIntervals` intervals (no monitor leads), or when it was built from
 * another store or window than the reader's config names.
 *
 * One Redis hash, written at once (MULTI) and kept `keepMs`, in three parts so a command reads and
 * decodes only what it shows: `meta` (JSON: who built it, from what, the snapshot's time and seed),
 * `hosts` (every host, with its VMs' count and committed memory, so `status` and `hosts` never read
 * the VMs), `vms`, and `plan`: the round's plan (JSON) with what it was planned from, which `lbm plan`
 * and `lbm explain` show instead of planning again when nothing it depends on changed since
 * (policies' `planInputs`). The VMs part also holds each VM's latest CPU use and its demand forecast
 * under the monitor's demand settings (`VmForecast`), so `lbm vms` reads no CPU window when its own
 * settings are the same. The two binary parts are columns: names and the few rare strings as JSON, every
 * number in a Float64Array (exact: the plan `lbm plan` makes from it is the monitor's), NaN for a
 * value that is absent, each CPU window's values one after the other with a column of lengths. A
 * part's layout before deflating: uint32 LE byte length of its JSON header, the header (UTF-8), zero
 * padding to a multiple of 8, then its columns in the header's order.
 */
import { isDeepStrictEqual, promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Redis } from 'ioredis';
import { vmDemand, type DemandByVm } from '../../policies/demand.ts';
import type { DemandSettings } from '../../policies/settings.ts';
import type { HostState, HostStatus, Plan, Snapshot, VmState } from '../model/index.ts';

const deflate = promisify(zlib.deflate);

export const PUBLISHED_VERSION = 3;

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

/** Per host: how many VMs the snapshot puts on it and their configured memory (what `status` and `hosts` show). */
export interface VmTotals {
  count: number;
  byHost: Map<string, { vms: number; memCommittedBytes: number }>;
}

/** The round's plan and what it was planned from (policies' `planInputs` of the round's snapshot). */
export interface PublishedPlan {
  inputs: string;
  plan: Plan;
}

/**
 * Per VM, in the snapshot's order: its latest CPU use (the newest entry of its window, NaN when it has
 * none) and its demand forecast (policies/demand.ts) under the monitor's `demand` settings.
 */
export interface VmForecast {
  demand: DemandSettings;
  latestCores: Float64Array;
  forecastCores: Float64Array;
}

export interface PublishedSnapshot extends PublishedMeta {
  /** Its `vms` are empty when only the hosts part was read (then `vmTotals` says what they add up to). */
  snapshot: Snapshot;
  vmTotals: VmTotals;
  /** With the VMs: the round's plan, when it published one. */
  plan?: PublishedPlan;
  /** With the VMs: their latest CPU use and forecast, when the monitor published them. */
  forecast?: VmForecast;
  /** Some CPU windows were left empty (WindowChoice): not a snapshot to plan on. */
  windowsLeftOut?: boolean;
}

/**
 * What a round publishes: its snapshot, plan, and the demand settings it forecast under, with the
 * forecasts the round made of the snapshot's VMs under them (`demandByVm`; made here when not given).
 */
export type PublishedRound = PublishedMeta & {
  snapshot: Snapshot;
  plan?: PublishedPlan;
  demand?: DemandSettings;
  demandByVm?: DemandByVm;
};

/** The VMs' totals per host, from the VMs themselves. */
export function vmTotalsOf(vms: readonly VmState[]): VmTotals {
  const byHost = new Map<string, { vms: number; memCommittedBytes: number }>();
  for (const vm of vms) {
    const entry = byHost.get(vm.host);
    if (entry) {
      entry.vms++;
      entry.memCommittedBytes += vm.memBytes;
    } else byHost.set(vm.host, { vms: 1, memCommittedBytes: vm.memBytes });
  }
  return { count: vms.length, byHost };
}

/** A part: a JSON header and Float64 columns. */
function pack(json: unknown, columns: Record<string, Float64Array>): Buffer {
  const lengths = Object.fromEntries(Object.entries(columns).map(([name, column]) => [name, column.length]));
  const header = Buffer.from(JSON.stringify({ json, lengths }), 'utf8');
  const at = Math.ceil((4 + header.length) / 8) * 8;
  let bytes = at;
  for (const column of Object.values(columns)) bytes += column.byteLength;
  const raw = Buffer.alloc(bytes);
  raw.writeUInt32LE(header.length, 0);
  header.copy(raw, 4);
  let offset = at;
  for (const column of Object.values(columns)) {
    raw.set(new Uint8Array(column.buffer, column.byteOffset, column.byteLength), offset);
    offset += column.byteLength;
  }
  return raw;
}

function unpack<T>(deflated: Buffer, part: string): { json: T; columns: Record<string, Float64Array> } {
  let raw = zlib.inflateSync(deflated);
  // Float64Array views need 8-byte alignment.
  if (raw.byteOffset % 8 !== 0) raw = Buffer.from(new Uint8Array(raw));
  const headerLength = raw.readUInt32LE(0);
  const header = JSON.parse(raw.toString('utf8', 4, 4 + headerLength)) as { json: T; lengths: Record<string, number> };
  let offset = Math.ceil((4 + headerLength) / 8) * 8;
  const columns: Record<string, Float64Array> = {};
  for (const [name, length] of Object.entries(header.lengths)) {
    if (raw.byteOffset + offset + length * 8 > raw.byteOffset + raw.length)
      throw new Error(`part ${part}: column ${name} runs past the end`);
    columns[name] = new Float64Array(raw.buffer, raw.byteOffset + offset, length);
    offset += length * 8;
  }
  return { json: header.json, columns };
}

const absent = (value: number | null | undefined): number => (value === undefined || value === null ? NaN : value);

/** The CPU windows of `items`, one after the other, and their lengths. */
function windows(items: readonly { cpuUsedWindowCores: number[] }[]): { lengths: Float64Array; values: Float64Array } {
  const lengths = new Float64Array(items.length);
  let total = 0;
  items.forEach((item, index) => {
    lengths[index] = item.cpuUsedWindowCores.length;
    total += item.cpuUsedWindowCores.length;
  });
  const values = new Float64Array(total);
  let at = 0;
  for (const item of items) {
    values.set(item.cpuUsedWindowCores, at);
    at += item.cpuUsedWindowCores.length;
  }
  return { lengths, values };
}

/**
 * Cuts the windows back out, in order: a plain loop (Array.from of a subarray costs six times as much).
 * `keep` false: the window is passed over and an empty one returned (see WindowsOf).
 */
function windowReader(
  part: string,
  lengths: Float64Array,
  values: Float64Array,
): (index: number, keep: boolean) => number[] {
  let at = 0;
  let expected = 0;
  for (const length of lengths) expected += length;
  if (expected !== values.length)
    throw new Error(`part ${part} holds ${values.length} window values for ${expected} expected`);
  return (index, keep) => {
    const length = lengths[index]!;
    if (!keep) {
      at += length;
      return [];
    }
    const window = new Array<number>(length);
    for (let i = 0; i < length; i++) window[i] = values[at + i]!;
    at += length;
    return window;
  };
}

/**
 * Which VMs' CPU windows to decode (by name); the others get an empty one. The planners need every
 * window, but `lbm plan` and `lbm explain` show the round's published plan when it still holds and
 * then need none, or one: copying 30,000 windows was a third of their time.
 */
export type WindowsOf = (vm: string) => boolean;

/**
 * The CPU windows a reader asks for: those `WindowsOf` names, or, with `forecastUnder`, none when the
 * VMs' published forecast (VmForecast) was made under those demand settings and every one otherwise.
 */
export type WindowChoice = WindowsOf | { forecastUnder: DemandSettings };

function column(columns: Record<string, Float64Array>, name: string, part: string, length: number): Float64Array {
  const found = columns[name];
  if (!found || (name !== 'window' && found.length !== length))
    throw new Error(`part ${part}: column ${name} missing or of the wrong length`);
  return found;
}

const HOST_STATUS: HostStatus[] = ['up', 'stale', 'down'];

function encodeHosts(hosts: readonly HostState[], totals: VmTotals): Buffer {
  const count = hosts.length;
  const cols = {
    cpuCores: new Float64Array(count),
    memBytes: new Float64Array(count),
    memUsedBytes: new Float64Array(count),
    status: new Float64Array(count),
    maintenance: new Float64Array(count),
    lastSampleMs: new Float64Array(count),
    diskBytesPerSec: new Float64Array(count),
    netBytesPerSec: new Float64Array(count),
    vms: new Float64Array(count),
    memCommittedBytes: new Float64Array(count),
  };
  hosts.forEach((host, i) => {
    cols.cpuCores[i] = host.cpuCores;
    cols.memBytes[i] = host.memBytes;
    cols.memUsedBytes[i] = host.memUsedBytes;
    cols.status[i] = HOST_STATUS.indexOf(host.status);
    cols.maintenance[i] = host.maintenance ? 1 : 0;
    cols.lastSampleMs[i] = absent(host.lastSampleMs);
    cols.diskBytesPerSec[i] = absent(host.diskBytesPerSec);
    cols.netBytesPerSec[i] = absent(host.netBytesPerSec);
    const total = totals.byHost.get(host.name);
    cols.vms[i] = total?.vms ?? 0;
    cols.memCommittedBytes[i] = total?.memCommittedBytes ?? 0;
  });
  const { lengths, values } = windows(hosts);
  // VMs on hosts the snapshot does not list (a move's destination not yet seen) count in the total only.
  return pack(
    { names: hosts.map((host) => host.name), vmCount: totals.count },
    { ...cols, windowLength: lengths, window: values },
  );
}

function decodeHosts(deflated: Buffer): { hosts: HostState[]; totals: VmTotals } {
  const { json, columns } = unpack<{ names: string[]; vmCount: number }>(deflated, 'hosts');
  const count = json.names.length;
  const col = (name: string) => column(columns, name, 'hosts', count);
  const [cpuCores, memBytes, memUsedBytes, status, maintenance, lastSampleMs, disk, net, vms, committed] = [
    'cpuCores',
    'memBytes',
    'memUsedBytes',
    'status',
    'maintenance',
    'lastSampleMs',
    'diskBytesPerSec',
    'netBytesPerSec',
    'vms',
    'memCommittedBytes',
  ].map(col) as Float64Array[];
  const window = windowReader('hosts', col('windowLength'), column(columns, 'window', 'hosts', 0));
  const hosts: HostState[] = [];
  const byHost = new Map<string, { vms: number; memCommittedBytes: number }>();
  for (let i = 0; i < count; i++) {
    const name = json.names[i]!;
    const host: HostState = {
      name,
      cpuCores: cpuCores![i]!,
      memBytes: memBytes![i]!,
      cpuUsedWindowCores: window(i, true),
      memUsedBytes: memUsedBytes![i]!,
      status: HOST_STATUS[status![i]!] ?? 'stale',
      maintenance: maintenance![i] === 1,
      lastSampleMs: Number.isNaN(lastSampleMs![i]) ? null : lastSampleMs![i]!,
    };
    if (!Number.isNaN(disk![i])) host.diskBytesPerSec = disk![i]!;
    if (!Number.isNaN(net![i])) host.netBytesPerSec = net![i]!;
    hosts.push(host);
    if (vms![i]! > 0) byHost.set(name, { vms: vms![i]!, memCommittedBytes: committed![i]! });
  }
  return { hosts, totals: { count: json.vmCount, byHost } };
}

/** The strings a VM has only now and then, by VM index. */
interface VmRare {
  tags?: string[];
  previousHost?: string;
  busy?: string;
  haState?: string;
}

const VM_NUMBERS = [
  'vcpus',
  'memBytes',
  'memUsedBytes',
  'memDirtyBytesPerSec',
  'localDiskBytes',
  'diskBytesPerSec',
  'netBytesPerSec',
  'lastMoveMs',
  'quarantinedUntilMs',
] as const;

function encodeVms(vms: readonly VmState[], demand?: DemandSettings, demandByVm?: DemandByVm): Buffer {
  const hostNames: string[] = [];
  const hostIndex = new Map<string, number>();
  const host = new Float64Array(vms.length);
  const numbers = Object.fromEntries(VM_NUMBERS.map((name) => [name, new Float64Array(vms.length)])) as Record<
    (typeof VM_NUMBERS)[number],
    Float64Array
  >;
  const rare: Record<number, VmRare> = {};
  vms.forEach((vm, i) => {
    let index = hostIndex.get(vm.host);
    if (index === undefined) {
      hostIndex.set(vm.host, (index = hostNames.length));
      hostNames.push(vm.host);
    }
    host[i] = index;
    for (const name of VM_NUMBERS) numbers[name][i] = absent(vm[name]);
    const extra: VmRare = {};
    if (vm.tags.length > 0) extra.tags = vm.tags;
    if (vm.previousHost !== undefined) extra.previousHost = vm.previousHost;
    if (vm.busy !== undefined) extra.busy = vm.busy;
    if (vm.haState !== undefined) extra.haState = vm.haState;
    if (Object.keys(extra).length > 0) rare[i] = extra;
  });
  const { lengths, values } = windows(vms);
  const forecast: Record<string, Float64Array> = demand
    ? {
        latestCores: Float64Array.from(vms, (vm) => absent(vm.cpuUsedWindowCores[vm.cpuUsedWindowCores.length - 1])),
        forecastCores: Float64Array.from(vms, (vm, i) => (demandByVm?.at(i, vm.name) ?? vmDemand(vm, demand)).cores),
      }
    : {};
  return pack(
    { names: vms.map((vm) => vm.name), hosts: hostNames, rare, ...(demand ? { demand } : {}) },
    { host, ...numbers, ...forecast, windowLength: lengths, window: values },
  );
}

function decodeVms(
  deflated: Buffer,
  choice?: WindowChoice,
): { vms: VmState[]; forecast?: VmForecast; windowsLeftOut: boolean } {
  const { json, columns } = unpack<{
    names: string[];
    hosts: string[];
    rare: Record<string, VmRare>;
    demand?: DemandSettings;
  }>(deflated, 'vms');
  const count = json.names.length;
  const col = (name: string) => column(columns, name, 'vms', count);
  const windowsOf: WindowsOf | undefined =
    typeof choice === 'function'
      ? choice
      : choice && json.demand && isDeepStrictEqual(json.demand, choice.forecastUnder)
        ? () => false
        : undefined;
  const host = col('host');
  const [vcpus, memBytes, memUsedBytes, dirty, localDisk, disk, net, lastMove, quarantined] = VM_NUMBERS.map(col) as [
    Float64Array,
    ...Float64Array[],
  ];
  const window = windowReader('vms', col('windowLength'), column(columns, 'window', 'vms', 0));
  const vms: VmState[] = new Array<VmState>(count);
  for (let i = 0; i < count; i++) {
    const extra = json.rare[i];
    // The keys in the order the snapshot builder sets them, so --json prints them alike.
    const vm = {
      name: json.names[i]!,
      host: json.hosts[host[i]!]!,
      vcpus: vcpus[i]!,
      memBytes: memBytes![i]!,
      cpuUsedWindowCores: window(i, windowsOf ? windowsOf(json.names[i]!) : true),
      memUsedBytes: memUsedBytes![i]!,
      memDirtyBytesPerSec: dirty![i]!,
    } as VmState;
    if (!Number.isNaN(localDisk![i])) vm.localDiskBytes = localDisk![i]!;
    if (!Number.isNaN(disk![i])) vm.diskBytesPerSec = disk![i]!;
    if (!Number.isNaN(net![i])) vm.netBytesPerSec = net![i]!;
    vm.tags = extra?.tags ?? [];
    if (!Number.isNaN(lastMove![i])) vm.lastMoveMs = lastMove![i]!;
    if (extra?.previousHost !== undefined) vm.previousHost = extra.previousHost;
    if (!Number.isNaN(quarantined![i])) vm.quarantinedUntilMs = quarantined![i]!;
    if (extra?.busy !== undefined) vm.busy = extra.busy;
    if (extra?.haState !== undefined) vm.haState = extra.haState;
    vms[i] = vm;
  }
  const forecast = json.demand
    ? { demand: json.demand, latestCores: col('latestCores'), forecastCores: col('forecastCores') }
    : undefined;
  return { vms, ...(forecast ? { forecast } : {}), windowsLeftOut: windowsOf !== undefined };
}

interface MetaPart extends PublishedMeta {
  nowMs: number;
  seed: number;
}

/** The parts of a published snapshot (hosts, vms and plan deflated). */
export async function encodeSnapshot(
  published: PublishedRound,
): Promise<{ meta: string; hosts: Buffer; vms: Buffer; plan?: Buffer }> {
  const { snapshot, plan, demand, demandByVm, ...meta } = published;
  const part: MetaPart = { ...meta, nowMs: snapshot.nowMs, seed: snapshot.seed };
  // Deflated on libuv's threads, off the event loop.
  const [hosts, vms, planPart] = await Promise.all([
    deflate(encodeHosts(snapshot.hosts, vmTotalsOf(snapshot.vms)), { level: 1 }),
    deflate(encodeVms(snapshot.vms, demand, demandByVm), { level: 1 }),
    plan ? deflate(Buffer.from(JSON.stringify(plan), 'utf8'), { level: 1 }) : undefined,
  ]);
  return { meta: JSON.stringify(part), hosts, vms, ...(planPart ? { plan: planPart } : {}) };
}

/**
 * The inverse of encodeSnapshot; throws with what was wrong when the bytes are not one. Without
 * `vms` the snapshot has no VMs (`vmTotals` counts them). Rules and moves in flight are not
 * published: readers take them as they are now.
 */
export function decodeSnapshot(
  parts: {
    meta: Buffer | string;
    hosts: Buffer;
    vms?: Buffer;
    plan?: Buffer;
  },
  windows?: WindowChoice,
): PublishedSnapshot {
  const meta = JSON.parse(parts.meta.toString()) as MetaPart;
  if (meta.version !== PUBLISHED_VERSION)
    throw new Error(`published snapshot version ${String(meta.version)}: expected ${PUBLISHED_VERSION}`);
  const { nowMs, seed, ...rest } = meta;
  const { hosts, totals } = decodeHosts(parts.hosts);
  const { vms, forecast, windowsLeftOut } = parts.vms
    ? decodeVms(parts.vms, windows)
    : { vms: [], windowsLeftOut: false };
  return {
    ...rest,
    snapshot: { nowMs, seed, hosts, vms, rules: { groups: [], pins: [], ignoredVms: [] }, inFlight: [] },
    vmTotals: parts.vms ? vmTotalsOf(vms) : totals,
    ...(forecast ? { forecast } : {}),
    ...(windowsLeftOut ? { windowsLeftOut } : {}),
    ...(parts.plan ? { plan: JSON.parse(zlib.inflateSync(parts.plan).toString('utf8')) as PublishedPlan } : {}),
  };
}

/** Publishes a round's snapshot (the leader only). Kept for `keepMs`, then gone: a dead monitor's snapshot does not linger. */
export async function publishSnapshot(
  redis: Redis,
  prefix: string,
  published: PublishedRound,
  keepMs: number,
): Promise<number> {
  const parts = await encodeSnapshot(published);
  const key = publishedKey(prefix);
  await redis
    .multi()
    .del(key)
    .hset(key, parts)
    .pexpire(key, Math.max(1000, Math.round(keepMs)))
    .exec();
  return Buffer.byteLength(parts.meta) + parts.hosts.length + parts.vms.length + (parts.plan?.length ?? 0);
}

/**
 * The published snapshot, or null when there is none; throws when the key holds something else.
 * `parts: 'hosts'` reads and decodes the hosts alone (the snapshot's `vms` then empty); 'all' the VMs
 * and the plan too.
 */
export async function readPublished(
  redis: Redis,
  prefix: string,
  parts: 'all' | 'hosts' = 'all',
  windows?: WindowChoice,
): Promise<PublishedSnapshot | null> {
  const key = publishedKey(prefix);
  let values: (Buffer | null)[];
  try {
    values = await redis.hmgetBuffer(key, 'meta', 'hosts', ...(parts === 'all' ? ['vms', 'plan'] : []));
  } catch (error) {
    throw new Error(`Redis key ${key}: not a published snapshot (${(error as Error).message})`);
  }
  const [meta, hosts, vms, plan] = values;
  if (!meta && !hosts) return null;
  try {
    if (!meta || !hosts || (parts === 'all' && !vms)) throw new Error('a part is missing');
    return decodeSnapshot({ meta, hosts, vms: vms ?? undefined, plan: plan ?? undefined }, windows);
  } catch (error) {
    throw new Error(`Redis key ${key}: not a published snapshot (${(error as Error).message})`);
  }
}
