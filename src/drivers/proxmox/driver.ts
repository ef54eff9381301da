/**
 * The `proxmox` driver: a Proxmox VE cluster through its HTTP API (`drivers.proxmox.url`, any node),
 * authenticated with an API token read from `$LBVM_PROXMOX_TOKEN` (the variable named by
 * `drivers.proxmox.tokenEnv`) or from `drivers.proxmox.tokenFile`. LBVM's hosts are Proxmox nodes.
 *
 * Inventory: GET /cluster/resources?type=vm, one call for the whole cluster (templates left out). Its
 *            `cpu` is pvestatd's steady sample (a share of `maxcpu`); `status/current` is not asked: its
 *            CPU is computed per pvedaemon worker against whatever that worker saw last (0 the first time).
 *            `status` comes from QEMU's run state (`running`, `paused`, ... pve-manager pvestatd
 *            `$d->{qmpstatus} || $d->{status}`); `lock`, `hastate` and `pool` come with it
 *            (pve-manager PVE/API2/Cluster.pm). A lock, an HA state in motion or any other status than
 *            running, paused or stopped makes the guest busy: not planned, not migrated.
 * Migrate:   VMs  POST /nodes/{node}/qemu/{vmid}/migrate  target, online=1, with-local-disks=1[, bwlimit]
 *            CTs  POST /nodes/{node}/lxc/{vmid}/migrate   target, restart=1[, bwlimit]
 *            -> a task UPID, followed through .../tasks/{upid}/status and .../log until it stops; `OK`
 *            and `WARNINGS: N` are successes. For an HA-managed guest the call only forks a `hamigrate`
 *            task asking the HA manager (`Requesting HA migration for VM 100 to node pve2`), which ends at
 *            once; the migration itself is a `qmigrate` (`vzmigrate`) task its resource agent starts
 *            later as root@pam, found through GET /nodes/{node}/tasks?typefilter=...&vmid=...&since=
 *            ...&source=all and followed to its end. An abort is DELETE .../tasks/{upid}: Proxmox
 *            signals the worker, which ends `migration aborted` or `migration problems` (and, if its
 *            cleanup outlives the 5 s before SIGKILL, leaves `lock: migrate` on the guest).
 *            Log shapes: task-log.ts.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LbvmConfig } from '../../config/schema.ts';
import { ConfigError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import type {
  Driver,
  DriverCapabilities,
  HostInventory,
  MigrateOutcome,
  MigrateRequest,
  VmInventory,
} from '../driver.ts';
import { nodePath, ProxmoxClient } from './client.ts';
import { isEmptyLogPlaceholder, MigrationLog, parseUpid, taskSucceeded, type TaskLogEntry } from './task-log.ts';

/** One entry of GET /cluster/resources?type=vm (pve-manager PVE/API2/Cluster.pm, PVE/API2Tools.pm extract_vm_stats). */
export interface ClusterResource {
  id: string;
  type: 'qemu' | 'lxc' | string;
  vmid: number;
  node: string;
  name?: string;
  /** `running`, `paused`, `stopped`, another QEMU run state, or `unknown` (no recent data). */
  status?: string;
  template?: number;
  maxcpu?: number;
  /** Share of `maxcpu` in use (0..1), as pvestatd last sampled it. */
  cpu?: number;
  maxmem?: number;
  mem?: number;
  diskread?: number;
  diskwrite?: number;
  netin?: number;
  netout?: number;
  uptime?: number;
  tags?: string;
  /** The guest config's `lock` (`migrate`, `backup`, `snapshot`, ...). */
  lock?: string;
  /** HA service state, for a guest the HA manager owns. */
  hastate?: string;
  pool?: string;
}

interface TaskStatus {
  status: 'running' | 'stopped' | string;
  exitstatus?: string;
}

/** One entry of GET /nodes/{node}/tasks (pve-manager PVE/API2/Tasks.pm node_tasks). */
interface TaskListEntry {
  upid: string;
  type: string;
  starttime: number;
  user?: string;
}

/** The token's shape: USER@REALM!TOKENID=SECRET. */
const TOKEN_FORMAT = /^[^\s@]+@[^\s!]+![^\s=]+=\S+$/;
/** Log lines quoted in the error of a failed task. */
const FAILED_LOG_LINES = 20;
/** Status polls in a row that may fail (a network blip, a busy node) before the task is given up. */
const MAX_FAILED_POLLS = 30;
/** Lines asked per task log page. */
const LOG_PAGE_LINES = 500;
/** HA states in which a guest sits still (pve-ha-manager service states and resources.cfg `state`); others mean it is moving, recovering or failed. */
const SETTLED_HA_STATES = new Set(['started', 'stopped', 'disabled', 'ignored']);
/** The statuses of a guest LBVM can move, as LBVM names them. */
const STEADY_STATUSES: Record<string, VmInventory['state']> = {
  running: 'running',
  paused: 'paused',
  stopped: 'stopped',
};

export interface ProxmoxDriverOptions {
  client: ProxmoxClient;
  pollIntervalMs: number;
  /** How long an HA-managed guest's move waits for the HA manager to start its migration task. */
  haTaskWaitMs: number;
  log: Logger;
}

/** Why Proxmox would refuse to migrate this guest now, in its own words, or undefined when nothing holds it. */
export function busyOf(resource: ClusterResource): string | undefined {
  if (resource.lock) return `lock: ${resource.lock}`;
  if (resource.hastate && !SETTLED_HA_STATES.has(resource.hastate)) return `hastate: ${resource.hastate}`;
  if (!resource.status || !Object.hasOwn(STEADY_STATUSES, resource.status))
    return `status: ${resource.status ?? 'unknown'}`;
  return undefined;
}

export function tagsOf(text: string | undefined): string[] | undefined {
  if (!text) return undefined;
  const tags = text.split(/[;, ]+/).filter(Boolean);
  return tags.length ? tags : undefined;
}

/** `qemu 100`, `lxc 101`: how Proxmox's own messages name a guest. */
const label = (guest: ClusterResource) => `${guest.type} ${guest.vmid}`;
/** The command that clears a guest's lock. */
const unlockCommand = (guest: ClusterResource) => `${guest.type === 'lxc' ? 'pct' : 'qm'} unlock ${guest.vmid}`;

export class ProxmoxDriver implements Driver {
  readonly name = 'proxmox';
  readonly capabilities: DriverCapabilities = {
    live: true,
    checkpoint: false,
    cancel: true,
    progress: true,
    stats: true,
    localDisks: true,
  };

  constructor(private readonly options: ProxmoxDriverOptions) {}

  /** Reads the token (environment, else file), the CA file; every problem is named at once, the token never. */
  static fromConfig(config: LbvmConfig, log: Logger, env: NodeJS.ProcessEnv = process.env): ProxmoxDriver {
    const settings = config.drivers.proxmox;
    const problems: string[] = [];
    let baseUrl = settings.url;
    try {
      const parsed = new URL(settings.url);
      if (parsed.protocol !== 'https:')
        problems.push(
          `drivers.proxmox.url: ${JSON.stringify(settings.url)}: expected an https:// URL like https://pve1:8006 (the API is HTTPS only)`,
        );
      baseUrl = parsed.origin + parsed.pathname;
    } catch {
      problems.push(
        `drivers.proxmox.url: ${JSON.stringify(settings.url)}: expected the API's URL like https://pve1:8006`,
      );
    }
    let token = env[settings.tokenEnv]?.trim();
    let tokenSource = settings.tokenEnv;
    if (!token && settings.tokenFile) {
      tokenSource = settings.tokenFile;
      try {
        token = fs.readFileSync(settings.tokenFile, 'utf8').trim();
      } catch (error) {
        problems.push(
          `drivers.proxmox.tokenFile: cannot read ${settings.tokenFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
        );
      }
    }
    if (!token && !problems.some((problem) => problem.startsWith('drivers.proxmox.tokenFile'))) {
      problems.push(
        `${settings.tokenEnv}: not set (and no drivers.proxmox.tokenFile); the proxmox ` +
          `driver needs an API token USER@REALM!TOKENID=SECRET in it (drivers.proxmox.tokenEnv)`,
      );
    } else if (token && !TOKEN_FORMAT.test(token)) {
      problems.push(
        `${tokenSource}: the API token is not of the form USER@REALM!TOKENID=SECRET (its value is not shown)`,
      );
    }
    let ca: string | undefined;
    if (settings.caFile) {
      try {
        ca = fs.readFileSync(settings.caFile, 'utf8');
      } catch (error) {
        problems.push(
          `drivers.proxmox.caFile: cannot read ${settings.caFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
        );
      }
    }
    if (settings.caFile && settings.fingerprint) problems.push('drivers.proxmox: give caFile or fingerprint, not both');
    if (problems.length) throw new ConfigError(problems);
    if (!settings.tlsVerify && !settings.fingerprint)
      log.warn(
        { url: baseUrl },
        'drivers.proxmox.tlsVerify is false: the API certificate is not checked and the token can be stolen by anyone in between; prefer caFile or fingerprint',
      );
    const client = new ProxmoxClient({
      baseUrl,
      token: token!,
      tlsVerify: settings.tlsVerify,
      ca,
      fingerprint: settings.fingerprint || undefined,
      requestTimeoutMs: settings.requestTimeout,
    });
    return new ProxmoxDriver({ client, pollIntervalMs: settings.pollInterval, haTaskWaitMs: settings.haTaskWait, log });
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
    if (matches.length > 1)
      throw new Error(
        `VM name ${JSON.stringify(vm)} is used by several Proxmox guests ` +
          `(${matches.map((m) => `${m.type} ${m.vmid} on ${m.node}`).join(', ')}); give them unique names`,
      );
    return matches[0] ?? null;
  }

  async inventory(host: string): Promise<HostInventory> {
    return {
      host,
      vms: (await this.resources())
        .filter((resource) => resource.node === host)
        .map((resource) => ProxmoxDriver.vmOf(resource, host)),
    };
  }

  /**
   * One guest of /cluster/resources as LBVM sees it. `cpu` is the share of `maxcpu` in use; LBVM counts
   * cores. The counters (disk, network) restart with the guest; a guest on another node is another
   * instance, so they are never mixed up across a move.
   */
  static vmOf(resource: ClusterResource, host: string): VmInventory {
    const vcpus = resource.maxcpu ?? 0;
    const state =
      resource.status && Object.hasOwn(STEADY_STATUSES, resource.status)
        ? STEADY_STATUSES[resource.status]!
        : 'unknown';
    const vm: VmInventory = {
      name: ProxmoxDriver.guestName(resource),
      host,
      vcpus,
      memBytes: resource.maxmem ?? 0,
      memUsedBytes: Math.min(resource.mem ?? 0, resource.maxmem ?? Infinity),
      state,
    };
    if (state !== 'stopped') {
      vm.cpuUsedCores = (resource.cpu ?? 0) * vcpus;
      vm.instanceId = `${resource.id}@${host}`;
      if (resource.diskread !== undefined) vm.diskReadBytes = resource.diskread;
      if (resource.diskwrite !== undefined) vm.diskWriteBytes = resource.diskwrite;
      if (resource.netin !== undefined) vm.netRxBytes = resource.netin;
      if (resource.netout !== undefined) vm.netTxBytes = resource.netout;
    }
    const tags = tagsOf(resource.tags);
    if (tags) vm.tags = tags;
    const busy = busyOf(resource);
    if (busy) vm.busy = busy;
    if (resource.hastate) vm.haState = resource.hastate;
    return vm;
  }

  async locate(vm: string): Promise<string | null> {
    return (await this.find(vm))?.node ?? null;
  }

  async migrate(request: MigrateRequest): Promise<MigrateOutcome> {
    if (request.mode !== 'live')
      throw new Error(
        `the proxmox driver migrates live only (migration.mode ${request.mode} is not supported); nothing was done`,
      );
    const guest = await this.find(request.vm);
    if (!guest) throw new Error(`no Proxmox guest is named ${JSON.stringify(request.vm)}`);
    if (guest.node !== request.from)
      throw new Error(
        `${JSON.stringify(request.vm)} (${label(guest)}) is on ${guest.node}, not on ${request.from}; nothing was done`,
      );
    const busy = busyOf(guest);
    if (busy) {
      const hint = busy.startsWith('lock: ')
        ? `; if no task still runs for it (see its Task History), clear the lock with \`${unlockCommand(guest)}\``
        : '';
      throw new Error(
        `${JSON.stringify(request.vm)} (${label(guest)}) is busy on ${guest.node} (${busy}): ` +
          `Proxmox would refuse to migrate it until that clears${hint}; nothing was done`,
      );
    }
    // A running or paused VM moves only with online=1, and a stopped one ignores it ("VM isn't
    // running. Doing offline migration instead."), so it is always sent. Containers cannot move
    // live: they are stopped (180 s to shut down, no force), moved and started again.
    const form: Record<string, string | number> =
      guest.type === 'qemu'
        ? { target: request.to, online: 1, 'with-local-disks': 1 }
        : { target: request.to, restart: 1 };
    if (request.bandwidthBytesPerSec > 0) form.bwlimit = Math.max(1, Math.round(request.bandwidthBytesPerSec / 1024)); // KiB/s
    const startedMs = Date.now();
    let upid = await this.client.call<string>(
      'POST',
      `${nodePath(request.from)}/${guest.type}/${guest.vmid}/migrate`,
      form,
    );
    const asked = parseUpid(upid);
    if (asked?.type === 'hamigrate') {
      const haRequest = await this.followTask(request, upid, null);
      if (!taskSucceeded(haRequest.exitstatus))
        throw this.failure(
          request,
          guest,
          upid,
          haRequest,
          `the HA manager was not asked to move it: ${haRequest.exitstatus ?? 'no exit status'}`,
        );
      upid = await this.waitForHaTask(request, guest, upid, asked.startTimeSec);
    }
    const run = await this.followTask(request, upid, guest.maxmem ?? 0);
    if (!taskSucceeded(run.exitstatus)) {
      const where = await this.whereNow(guest);
      if (run.cancelled) {
        this.options.log.warn(
          { vm: request.vm, upid, exitstatus: run.exitstatus },
          `migration of ${request.vm} cancelled: Proxmox ended its task with "${run.exitstatus}"; ${where}`,
        );
        throw run.cancelled;
      }
      throw this.failure(request, guest, upid, run, `${run.exitstatus ?? 'no exit status'}; ${where}`);
    }
    if (run.cancelled)
      this.options.log.warn(
        { vm: request.vm, upid },
        'the migration completed before the cancel reached Proxmox; the guest runs on the destination',
      );
    if (run.exitstatus !== 'OK')
      this.options.log.warn(
        { vm: request.vm, upid, exitstatus: run.exitstatus },
        `Proxmox finished the migration of ${request.vm} with ${run.exitstatus} (a success; see its task log)`,
      );
    if (asked?.type === 'hamigrate') {
      const now = await this.find(request.vm);
      if (now?.node !== request.to)
        throw new Error(
          `the HA manager's migration of ${JSON.stringify(request.vm)} (${label(guest)}, task ${upid}) ` +
            `ended ${run.exitstatus}, but the guest is on ${now?.node ?? 'no node'}, not ${request.to}`,
        );
    }
    // A restart migration's downtime is all of it, from the stop to the start on the target.
    const downtimeMs = guest.type === 'lxc' ? run.log.restartDowntimeMs() : run.log.downtimeMs;
    this.reportDowntimeLimit(request, guest, run.log, downtimeMs);
    const bytesCopied = run.log.bytesCopied;
    request.onProgress?.({ bytesCopied, bytesRemaining: 0, fraction: 1 });
    return { totalMs: Date.now() - startedMs, downtimeMs, bytesCopied };
  }

  /**
   * Follows a task to its end: its status and its log, page after page from the last line read; an
   * abort stops it (DELETE, once) and goes on following it, since only its end says what happened.
   * `memEstimateBytes` (the guest's size) reports progress; null reports none.
   */
  private async followTask(
    request: MigrateRequest,
    upid: string,
    memEstimateBytes: number | null,
  ): Promise<{ exitstatus?: string; log: MigrationLog; cancelled: Error | null }> {
    const task = `${nodePath(parseUpid(upid)?.node ?? request.from)}/tasks/${encodeURIComponent(upid)}`;
    const log = new MigrationLog();
    let cancelled: Error | null = null;
    let failedPolls = 0;
    for (;;) {
      if (request.signal.aborted && !cancelled) {
        cancelled = (request.signal.reason as Error) ?? new Error('cancelled');
        await this.client
          .call('DELETE', task)
          .catch((error: Error) =>
            this.options.log.warn(
              { vm: request.vm, upid, error: error.message },
              'could not stop the Proxmox migration task',
            ),
          );
      }
      let status: TaskStatus;
      try {
        status = await this.client.call<TaskStatus>('GET', `${task}/status`);
        failedPolls = 0;
      } catch (error) {
        // The task runs on in Proxmox whatever happens to this connection: keep asking a while.
        if (++failedPolls >= MAX_FAILED_POLLS)
          throw new Error(
            `lost track of the Proxmox task ${upid} of ${JSON.stringify(request.vm)} (${(error as Error).message}); it may still be running on ${request.from}`,
          );
        await sleep(this.options.pollIntervalMs);
        continue;
      }
      const progressed = await this.readLog(task, log).catch((error: Error) => {
        this.options.log.debug({ upid, error: error.message }, 'task log not readable yet');
        return false;
      });
      if (progressed && memEstimateBytes !== null) request.onProgress?.(log.progress(memEstimateBytes));
      if (status.status === 'stopped') return { exitstatus: status.exitstatus, log, cancelled };
      await sleep(this.options.pollIntervalMs);
    }
  }

  /** Reads the task log from its last line on, a page at a time; true when a progress line came. */
  private async readLog(task: string, log: MigrationLog): Promise<boolean> {
    let progressed = false;
    for (;;) {
      const start = log.start;
      const entries = await this.client.call<TaskLogEntry[]>(
        'GET',
        `${task}/log?start=${start}&limit=${LOG_PAGE_LINES}`,
      );
      if (!isEmptyLogPlaceholder(entries, start)) progressed = log.add(entries) || progressed;
      if (entries.length < LOG_PAGE_LINES) return progressed;
    }
  }

  /**
   * The migration task the HA manager's resource agent starts after a `hamigrate` request (owned by
   * root@pam, its log beginning `task started by HA resource agent`): the first task of the right
   * type for this guest on its node since the request. It may take a while (the HA manager works in
   * rounds; a container is shut down first), bounded by drivers.proxmox.haTaskWait.
   */
  private async waitForHaTask(
    request: MigrateRequest,
    guest: ClusterResource,
    haUpid: string,
    sinceSec: number,
  ): Promise<string> {
    const type = guest.type === 'lxc' ? 'vzmigrate' : 'qmigrate';
    const query = `?typefilter=${type}&vmid=${guest.vmid}&since=${sinceSec}&source=all`;
    const deadline = Date.now() + this.options.haTaskWaitMs;
    let failedPolls = 0;
    for (;;) {
      if (request.signal.aborted) {
        this.options.log.warn(
          { vm: request.vm, upid: haUpid },
          `migration of ${request.vm} cancelled before the HA manager started it: the HA manager was already asked (task ${haUpid}) and may still move it`,
        );
        throw (request.signal.reason as Error) ?? new Error('cancelled');
      }
      try {
        const tasks = await this.client.call<TaskListEntry[]>('GET', `${nodePath(guest.node)}/tasks${query}`);
        failedPolls = 0;
        const started = tasks
          .filter((task) => task.type === type && task.starttime >= sinceSec && task.upid !== haUpid)
          .sort((a, b) => a.starttime - b.starttime)[0];
        if (started) return started.upid;
      } catch (error) {
        if (++failedPolls >= MAX_FAILED_POLLS)
          throw new Error(
            `lost track of the HA migration of ${JSON.stringify(request.vm)} (${(error as Error).message}); the HA manager may still move it`,
          );
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `the HA manager was asked to move ${JSON.stringify(request.vm)} (${label(guest)}) to ${request.to} (task ` +
            `${haUpid}) but started no ${type} task on ${guest.node} within ${Math.round(this.options.haTaskWaitMs / 1000)} ` +
            `s (drivers.proxmox.haTaskWait); ${await this.whereNow(guest)}. \`ha-manager status\` on ` +
            `a node says why (a target outside the guest's HA group or rules, the service in state error)`,
        );
      }
      await sleep(this.options.pollIntervalMs);
    }
  }

  /** Where a guest is after a migration that did not complete, and whether it kept a lock, as a sentence. */
  private async whereNow(guest: ClusterResource): Promise<string> {
    try {
      const now = (await this.resources()).find(
        (resource) => resource.type === guest.type && resource.vmid === guest.vmid,
      );
      if (!now) return `${label(guest)} is on no node now`;
      const lock = now.lock
        ? `, with \`lock: ${now.lock}\` left on it: LBVM will not plan it until that ` +
          `clears; if no task still runs for it, clear it with \`${unlockCommand(now)}\``
        : '';
      return `${label(guest)} is on ${now.node}${lock}`;
    } catch (error) {
      return `where ${label(guest)} is now could not be read (${(error as Error).message})`;
    }
  }

  private failure(
    request: MigrateRequest,
    guest: ClusterResource,
    upid: string,
    run: { log: MigrationLog },
    why: string,
  ): Error {
    const tail = run.log.lines
      .slice(-FAILED_LOG_LINES)
      .map((line) => `  ${line}`)
      .join('\n');
    return new Error(
      `Proxmox migration of ${JSON.stringify(request.vm)} (${label(guest)}) from ` +
        `${request.from} to ${request.to} failed: ${why} (task ${upid}). Task log:\n${tail}`,
    );
  }

  /**
   * Proxmox applies the guest's own downtime limit (its `migrate_downtime`, 100 ms unless set; the
   * task logs it) and doubles it when a migration does not converge; a container's restart migration
   * has no limit at all. LBVM cannot pass migration.downtimeLimit, so it says when it was exceeded.
   */
  private reportDowntimeLimit(
    request: MigrateRequest,
    guest: ClusterResource,
    log: MigrationLog,
    downtimeMs: number | null,
  ): void {
    const limitMs = request.downtimeLimitMs;
    if (guest.type === 'lxc') {
      if (downtimeMs !== null && downtimeMs > limitMs) {
        this.options.log.warn(
          { vm: request.vm, downtimeMs, downtimeLimitMs: limitMs },
          `${request.vm} (${label(guest)}) was down ${Math.round(downtimeMs / 1000)} s for its restart ` +
            `migration (Proxmox moves containers stopped), above migration.downtimeLimit ${limitMs} ms`,
        );
      }
      return;
    }
    const applied = log.raisedDowntimeLimitMs ?? log.downtimeLimitMs;
    if (applied !== null && applied > limitMs) {
      const why =
        log.raisedDowntimeLimitMs !== null
          ? 'raised by Proxmox because the migration did not converge'
          : "the guest's migrate_downtime";
      this.options.log.warn(
        { vm: request.vm, appliedDowntimeLimitMs: applied, downtimeLimitMs: limitMs, downtimeMs },
        `Proxmox migrated ${request.vm} (${label(guest)}) with a downtime limit of ${applied} ms (${why}), above migration.downtimeLimit ` +
          `${limitMs} ms; set it on the guest to keep LBVM's: qm set ${guest.vmid} --migrate_downtime ${limitMs / 1000}`,
      );
    }
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
