/**
 * The `proxmox` driver: a Proxmox VE cluster through its HTTP API (`drivers.proxmox.url`, any node),
 * authenticated with an API token read from `$LBVM_PROXMOX_TOKEN` (the variable named by
 * `drivers.proxmox.tokenEnv`) or from `drivers.proxmox.tokenFile`. LBVM's hosts are Proxmox nodes.
 *
 * Inventory: GET /cluster/resources?type=vm (every guest, templates left out), then for each running
 *            guest on the host GET /nodes/{node}/{qemu|lxc}/{vmid}/status/current (CPU share, memory,
 *            cumulative disk and network bytes, pid).
 * Migrate:   VMs  POST /nodes/{node}/qemu/{vmid}/migrate  target, online=1, with-local-disks=1[, bwlimit]
 *            CTs  POST /nodes/{node}/lxc/{vmid}/migrate   target, restart=1[, bwlimit]
 *            -> a task UPID; GET .../tasks/{upid}/status until `stopped` (exitstatus OK or the error),
 *            GET .../tasks/{upid}/log for its lines (progress from "transferred X of Y VM-state");
 *            an abort is DELETE .../tasks/{upid}. A failed task is reported with its last log lines.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LbvmConfig } from '../../config/schema.ts';
import { ConfigError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { parseBytes } from '../../units.ts';
import type { Driver, DriverCapabilities, HostInventory, MigrateOutcome, MigrateRequest, VmInventory } from '../driver.ts';
import { nodePath, ProxmoxClient } from './client.ts';

/** One entry of GET /cluster/resources?type=vm. */
export interface ClusterResource {
  id: string;
  type: 'qemu' | 'lxc' | string;
  vmid: number;
  node: string;
  name?: string;
  status?: string;
  template?: number;
  maxcpu?: number;
  maxmem?: number;
  mem?: number;
  cpu?: number;
  diskread?: number;
  diskwrite?: number;
  netin?: number;
  netout?: number;
  tags?: string;
}

/** GET /nodes/{node}/{type}/{vmid}/status/current. */
export interface GuestStatus {
  status: string;
  qmpstatus?: string;
  name?: string;
  cpus?: number;
  cpu?: number;
  maxmem?: number;
  mem?: number;
  diskread?: number;
  diskwrite?: number;
  netin?: number;
  netout?: number;
  pid?: number | string;
  uptime?: number;
  tags?: string;
}

interface TaskStatus {
  status: 'running' | 'stopped' | string;
  exitstatus?: string;
}

/** The token's shape: USER@REALM!TOKENID=SECRET. */
const TOKEN_FORMAT = /^[^\s@]+@[^\s!]+![^\s=]+=\S+$/;
const STATUS_CONCURRENCY = 8;
/** Log lines quoted in the error of a failed task. */
const FAILED_LOG_LINES = 20;
/** Status polls in a row that may fail (a network blip, a busy node) before the task is given up. */
const MAX_FAILED_POLLS = 30;

export interface ProxmoxDriverOptions {
  client: ProxmoxClient;
  pollIntervalMs: number;
  log: Logger;
}

/** "500.0 MiB" / "1.2 GiB" in a Proxmox migration log line -> bytes. */
function logBytes(text: string): number | undefined {
  return parseBytes(text.replace(/\s+/g, '')) ?? undefined;
}

/**
 * Progress from a qemu migration log line, e.g.
 * `2024-05-01 10:00:03 migration active, transferred 512.0 MiB of 2.0 GiB VM-state, 110.2 MiB/s`.
 */
export function parseProgressLine(line: string): { bytesCopied: number; bytesTotal: number } | null {
  const match = line.match(/transferred ([\d.]+\s*[KMGT]?i?B) of ([\d.]+\s*[KMGT]?i?B) VM-state/);
  if (!match) return null;
  const copied = logBytes(match[1]!);
  const total = logBytes(match[2]!);
  return copied !== undefined && total !== undefined ? { bytesCopied: copied, bytesTotal: total } : null;
}

/** `... average migration speed: 105.3 MiB/s - downtime 52 ms` -> 52 */
export function parseDowntimeLine(line: string): number | null {
  const match = line.match(/downtime (\d+(?:\.\d+)?) ?ms/);
  return match ? Number(match[1]) : null;
}

export function tagsOf(text: string | undefined): string[] | undefined {
  if (!text) return undefined;
  const tags = text.split(/[;, ]+/).filter(Boolean);
  return tags.length ? tags : undefined;
}

export class ProxmoxDriver implements Driver {
  readonly name = 'proxmox';
  readonly capabilities: DriverCapabilities = { live: true, checkpoint: false, cancel: true, progress: true, stats: true };

  constructor(private readonly options: ProxmoxDriverOptions) {}

  /** Reads the token (environment, else file), the CA file; every problem is named at once, the token never. */
  static fromConfig(config: LbvmConfig, log: Logger, env: NodeJS.ProcessEnv = process.env): ProxmoxDriver {
    const settings = config.drivers.proxmox;
    const problems: string[] = [];
    let baseUrl = settings.url;
    try {
      const parsed = new URL(settings.url);
      if (parsed.protocol !== 'https:') problems.push(`drivers.proxmox.url: ${JSON.stringify(settings.url)}: expected an https:// URL like https://pve1:8006 (the API is HTTPS only)`);
      baseUrl = parsed.origin + parsed.pathname;
    } catch {
      problems.push(`drivers.proxmox.url: ${JSON.stringify(settings.url)}: expected the API's URL like https://pve1:8006`);
    }
    let token = env[settings.tokenEnv]?.trim();
    let tokenSource = settings.tokenEnv;
    if (!token && settings.tokenFile) {
      tokenSource = settings.tokenFile;
      try {
        token = fs.readFileSync(settings.tokenFile, 'utf8').trim();
      } catch (error) {
        problems.push(`drivers.proxmox.tokenFile: cannot read ${settings.tokenFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
    if (!token && !problems.some((problem) => problem.startsWith('drivers.proxmox.tokenFile'))) {
      problems.push(`${settings.tokenEnv}: not set (and no drivers.proxmox.tokenFile); the proxmox driver needs an API token USER@REALM!TOKENID=SECRET in it (drivers.proxmox.tokenEnv)`);
    } else if (token && !TOKEN_FORMAT.test(token)) {
      problems.push(`${tokenSource}: the API token is not of the form USER@REALM!TOKENID=SECRET (its value is not shown)`);
    }
    let ca: string | undefined;
    if (settings.caFile) {
      try {
        ca = fs.readFileSync(settings.caFile, 'utf8');
      } catch (error) {
        problems.push(`drivers.proxmox.caFile: cannot read ${settings.caFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
    if (settings.caFile && settings.fingerprint) problems.push('drivers.proxmox: give caFile or fingerprint, not both');
    if (problems.length) throw new ConfigError(problems);
    if (!settings.tlsVerify && !settings.fingerprint) log.warn({ url: baseUrl }, 'drivers.proxmox.tlsVerify is false: the API certificate is not checked and the token can be stolen by anyone in between; prefer caFile or fingerprint');
    const client = new ProxmoxClient({
      baseUrl,
      token: token!,
      tlsVerify: settings.tlsVerify,
      ca,
      fingerprint: settings.fingerprint || undefined,
      requestTimeoutMs: settings.requestTimeout,
    });
    return new ProxmoxDriver({ client, pollIntervalMs: settings.pollInterval, log });
  }

  get client(): ProxmoxClient {
    return this.options.client;
  }

  private async resources(): Promise<ClusterResource[]> {
    const all = await this.client.call<ClusterResource[]>('GET', '/cluster/resources?type=vm');
    return all.filter((resource) => (resource.type === 'qemu' || resource.type === 'lxc') && !resource.template);
  }

  private static guestName(resource: ClusterResource): string {
    return resource.name ?? String(resource.vmid);
  }

  /** The guest called `vm` (its name, or its vmid when it has none). Two guests of one name are an error. */
  private async find(vm: string): Promise<ClusterResource | null> {
    const matches = (await this.resources()).filter((resource) => ProxmoxDriver.guestName(resource) === vm);
    if (matches.length > 1) throw new Error(`VM name ${JSON.stringify(vm)} is used by several Proxmox guests (${matches.map((m) => `${m.type} ${m.vmid} on ${m.node}`).join(', ')}); give them unique names`);
    return matches[0] ?? null;
  }

  async inventory(host: string): Promise<HostInventory> {
    const guests = (await this.resources()).filter((resource) => resource.node === host);
    const vms: VmInventory[] = new Array(guests.length);
    let next = 0;
    const worker = async () => {
      while (next < guests.length) {
        const index = next++;
        const resource = guests[index]!;
        const status = resource.status === 'running' ? await this.client.call<GuestStatus>('GET', `${nodePath(host)}/${resource.type}/${resource.vmid}/status/current`) : null;
        vms[index] = ProxmoxDriver.vmOf(resource, status, host);
      }
    };
    await Promise.all(Array.from({ length: Math.min(STATUS_CONCURRENCY, guests.length) }, worker));
    return { host, vms };
  }

  /** `cpu` is Proxmox's share of the guest's vCPUs in use (0..1); LBVM counts cores. */
  static vmOf(resource: ClusterResource, status: GuestStatus | null, host: string): VmInventory {
    const source = { ...resource, ...(status ?? {}) };
    const vcpus = status?.cpus ?? resource.maxcpu ?? 0;
    const running = source.status === 'running';
    const vm: VmInventory = {
      name: ProxmoxDriver.guestName(resource),
      host,
      vcpus,
      memBytes: source.maxmem ?? 0,
      memUsedBytes: Math.min(source.mem ?? 0, source.maxmem ?? Infinity),
      state: running ? (status?.qmpstatus === 'paused' ? 'paused' : 'running') : source.status === 'stopped' ? 'stopped' : 'unknown',
    };
    if (running) {
      vm.cpuUsedCores = (source.cpu ?? 0) * vcpus;
      if (status?.pid !== undefined) vm.instanceId = `${resource.type}/${resource.vmid}/${status.pid}`;
      if (source.diskread !== undefined) vm.diskReadBytes = source.diskread;
      if (source.diskwrite !== undefined) vm.diskWriteBytes = source.diskwrite;
      if (source.netin !== undefined) vm.netRxBytes = source.netin;
      if (source.netout !== undefined) vm.netTxBytes = source.netout;
    }
    const tags = tagsOf(resource.tags);
    if (tags) vm.tags = tags;
    return vm;
  }

  async locate(vm: string): Promise<string | null> {
    return (await this.find(vm))?.node ?? null;
  }

  async migrate(request: MigrateRequest): Promise<MigrateOutcome> {
    if (request.mode !== 'live') throw new Error(`the proxmox driver migrates live only (migration.mode ${request.mode} is not supported); nothing was done`);
    const guest = await this.find(request.vm);
    if (!guest) throw new Error(`no Proxmox guest is named ${JSON.stringify(request.vm)}`);
    if (guest.node !== request.from) throw new Error(`${JSON.stringify(request.vm)} (${guest.type} ${guest.vmid}) is on ${guest.node}, not on ${request.from}; nothing was done`);
    const form: Record<string, string | number> = { target: request.to };
    // Containers cannot move live: they are stopped, moved and started again (restart migration).
    if (guest.type === 'qemu') Object.assign(form, guest.status === 'running' ? { online: 1 } : {}, { 'with-local-disks': 1 });
    else form.restart = 1;
    if (request.bandwidthBytesPerSec > 0) form.bwlimit = Math.max(1, Math.round(request.bandwidthBytesPerSec / 1024)); // KiB/s
    const node = nodePath(request.from);
    const startedMs = Date.now();
    const upid = await this.client.call<string>('POST', `${node}/${guest.type}/${guest.vmid}/migrate`, form);
    const task = `${node}/tasks/${encodeURIComponent(upid)}`;
    const lines: string[] = [];
    let bytesCopied = 0;
    let downtimeMs: number | null = null;
    let cancelled: Error | null = null;
    let failedPolls = 0;
    const readLog = async () => {
      const entries = await this.client.call<{ n: number; t: string }[]>('GET', `${task}/log?start=${lines.length}&limit=500`);
      for (const entry of entries) {
        lines.push(entry.t);
        const progress = parseProgressLine(entry.t);
        if (progress) {
          bytesCopied = progress.bytesCopied;
          request.onProgress?.({
            bytesCopied: progress.bytesCopied,
            bytesRemaining: Math.max(0, progress.bytesTotal - progress.bytesCopied),
            fraction: progress.bytesTotal > 0 ? Math.min(1, progress.bytesCopied / progress.bytesTotal) : 0,
          });
        }
        downtimeMs = parseDowntimeLine(entry.t) ?? downtimeMs;
      }
    };
    for (;;) {
      if (request.signal.aborted && !cancelled) {
        cancelled = (request.signal.reason as Error) ?? new Error('cancelled');
        await this.client.call('DELETE', task).catch((error: Error) => this.options.log.warn({ vm: request.vm, upid, error: error.message }, 'could not stop the Proxmox migration task'));
      }
      let status: TaskStatus;
      try {
        status = await this.client.call<TaskStatus>('GET', `${task}/status`);
        failedPolls = 0;
      } catch (error) {
        // The task runs on in Proxmox whatever happens to this connection: keep asking a while.
        if (++failedPolls >= MAX_FAILED_POLLS) throw new Error(`lost track of the Proxmox migration task ${upid} of ${JSON.stringify(request.vm)} (${(error as Error).message}); it may still be running on ${request.from}`);
        await sleep(this.options.pollIntervalMs);
        continue;
      }
      await readLog().catch((error: Error) => this.options.log.debug({ upid, error: error.message }, 'task log not readable yet'));
      if (status.status === 'stopped') {
        if (status.exitstatus === 'OK') {
          if (cancelled) this.options.log.warn({ vm: request.vm }, 'the migration completed before the cancel reached Proxmox; the guest runs on the destination');
          request.onProgress?.({ bytesCopied, bytesRemaining: 0, fraction: 1 });
          return { totalMs: Date.now() - startedMs, downtimeMs, bytesCopied };
        }
        if (cancelled) throw cancelled;
        const tail = lines.slice(-FAILED_LOG_LINES).map((line) => `  ${line}`).join('\n');
        throw new Error(
          `Proxmox migration of ${JSON.stringify(request.vm)} (${guest.type} ${guest.vmid}) from ${request.from} to ${request.to} failed: ${status.exitstatus ?? 'no exit status'} (task ${upid}). Task log:\n${tail}`,
        );
      }
      await sleep(this.options.pollIntervalMs);
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
