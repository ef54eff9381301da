/**
 * The `libvirt` driver: every host is a libvirt URI (`drivers.libvirt.hosts.<name>`, else
 * `hosts.<name>.uri`), reached with `virsh -c URI` through execFile (an argv array, no shell).
 *
 * Inventory: `virsh domstats --raw` (cpu.time, balloon.*, vcpu.current, block.N.*, net.N.*,
 *            state.state) plus `virsh list --all --id --name` for each domain's run id.
 * Migrate:   `virsh migrate --live --persistent --undefinesource [--auto-converge] [--bandwidth MiB]
 *            --domain VM --desturi DEST`, run from where the worker runs (virsh connects to both
 *            hosts); progress from `virsh domjobinfo` on the source every `pollInterval`; an abort
 *            runs `virsh domjobabort` (the guest stays on its source) and waits for virsh to exit.
 *            A `virsh migrate` that outlives its job (seen with virsh 9.0 when the job fails at once:
 *            its wait misses the end) is stopped after `stallMs` without a job on the source; where
 *            the domain then is decides the outcome.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { libvirtCapabilities } from '../../model/index.ts';
import type { LbvmConfig } from '../../config/schema.ts';
import { ConfigError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { CommandFailed, runFile } from '../../util/processes.ts';
import type { Driver, DriverCapabilities, HostInventory, MigrateOutcome, MigrateRequest } from '../driver.ts';
import { locateFromAnswers, type HostAnswer } from '../locate.ts';
import {
  dominfoArgv,
  domstateArgv,
  domstatsArgv,
  isNoDomain,
  jobabortArgv,
  jobinfoArgv,
  listArgv,
  migrateArgv,
  parseColonRecord,
  parseDomstats,
  parseIdNames,
  parseJobInfo,
  vmFromStats,
  type JobInfo,
} from './virsh.ts';

export interface LibvirtDriverOptions {
  /** Host name -> libvirt URI. */
  uris: Record<string, string>;
  autoConverge: boolean;
  bandwidthCap: boolean;
  /** `virsh migrate --copy-storage-all` (drivers.libvirt.copyStorage). */
  copyStorage?: boolean;
  pollIntervalMs: number;
  virsh: string;
  log: Logger;
  /** Environment of every virsh run (tests point it at their own daemon). */
  env?: NodeJS.ProcessEnv;
  /**
   * `virsh migrate` still running while the source shows no migration job this long is stopped
   * (default 30 s): virsh 9.0 can miss a job that ended at once and then wait forever.
   */
  stallMs?: number;
}

const MIB = 1024 * 1024;

export class LibvirtDriver implements Driver {
  readonly name = 'libvirt';
  get capabilities(): DriverCapabilities {
    return libvirtCapabilities(this.options.copyStorage ?? false);
  }

  constructor(private readonly options: LibvirtDriverOptions) {}

  static fromConfig(config: LbvmConfig, log: Logger): LibvirtDriver {
    const settings = config.drivers.libvirt;
    const uris: Record<string, string> = {};
    for (const [host, capacity] of Object.entries(config.hosts)) if (capacity.uri) uris[host] = capacity.uri;
    Object.assign(uris, settings.hosts);
    if (Object.keys(uris).length === 0) {
      throw new ConfigError([
        'drivers.libvirt.hosts: no host has a libvirt URI; the libvirt driver needs one per host, e.g. drivers.libvirt.hosts: { n1: qemu+ssh://n1/system } (or hosts.<name>.uri)',
      ]);
    }
    return new LibvirtDriver({
      uris,
      autoConverge: settings.autoConverge,
      bandwidthCap: settings.bandwidthCap,
      copyStorage: settings.copyStorage,
      pollIntervalMs: settings.pollInterval,
      virsh: settings.virsh,
      log,
    });
  }

  uri(host: string): string {
    const uri = this.options.uris[host];
    if (!uri)
      throw new Error(
        `no libvirt URI for host ${JSON.stringify(host)}; add it to drivers.libvirt.hosts (known: ${Object.keys(this.options.uris).join(', ')})`,
      );
    return uri;
  }

  /** Runs virsh; a failure names the host, its URI and what virsh said. */
  private async virsh(host: string, args: string[], timeoutMs = 60_000): Promise<string> {
    try {
      return (await runFile(this.options.virsh, args, { env: this.options.env, timeoutMs })).stdout;
    } catch (error) {
      if (error instanceof CommandFailed)
        error.message = `virsh ${args[2]} on ${host} (${args[1]}) failed: ${error.message}`;
      throw error;
    }
  }

  async inventory(host: string): Promise<HostInventory> {
    const uri = this.uri(host);
    const [statsText, listText] = await Promise.all([
      this.virsh(host, domstatsArgv(uri)),
      this.virsh(host, listArgv(uri)),
    ]);
    const ids = parseIdNames(listText);
    const vms = [];
    for (const [name, stats] of parseDomstats(statsText)) {
      // A hypervisor driver that leaves sizes out of domstats (the test driver) is asked with dominfo.
      const dominfo =
        stats['balloon.current'] === undefined || stats['vcpu.current'] === undefined
          ? parseColonRecord(await this.virsh(host, dominfoArgv(uri, name)))
          : undefined;
      vms.push(vmFromStats(name, host, stats, dominfo, ids.get(name)));
    }
    return { host, vms };
  }

  async locate(vm: string): Promise<string | null> {
    const answers = await Promise.all(
      Object.keys(this.options.uris).map(async (host): Promise<HostAnswer> => {
        try {
          const state = (await this.virsh(host, domstateArgv(this.uri(host), vm), 20_000)).trim();
          return {
            host,
            active: /^(running|paused|in shutdown|blocked|pmsuspended)/.test(state),
            defined: true,
            detail: state,
          };
        } catch (error) {
          if (error instanceof CommandFailed && isNoDomain(error.stderr))
            return { host, active: false, defined: false };
          return { host, active: false, defined: false, error: error as Error };
        }
      }),
    );
    return locateFromAnswers(vm, answers);
  }

  /** The `virsh` argv of a live migration (exported for the operator's `--dry-run`-like checks and tests). */
  migrateArgv(request: Pick<MigrateRequest, 'vm' | 'from' | 'to' | 'bandwidthBytesPerSec'>): string[] {
    const bandwidthMiBPerSec =
      this.options.bandwidthCap && request.bandwidthBytesPerSec > 0
        ? Math.max(1, Math.round(request.bandwidthBytesPerSec / MIB))
        : undefined;
    return migrateArgv(this.uri(request.from), request.vm, this.uri(request.to), {
      autoConverge: this.options.autoConverge,
      bandwidthMiBPerSec,
      copyStorage: this.options.copyStorage,
    });
  }

  async migrate(request: MigrateRequest): Promise<MigrateOutcome> {
    if (request.mode !== 'live')
      throw new Error(
        `the libvirt driver migrates live only (migration.mode ${request.mode} is not supported); nothing was done`,
      );
    if (request.signal.aborted) throw (request.signal.reason as Error) ?? new Error('cancelled');
    const sourceUri = this.uri(request.from);
    const argv = this.migrateArgv(request);
    const startedMs = Date.now();
    let outcome: { error: Error | null } | null = null;
    const stallMs = this.options.stallMs ?? 30_000;
    const stopVirsh = new AbortController();
    // No timeout of our own: the worker's migration.timeout aborts the signal, which aborts the job.
    const running = runFile(this.options.virsh, argv, {
      env: this.options.env,
      timeoutMs: 0,
      signal: stopVirsh.signal,
    }).then(
      () => (outcome = { error: null }),
      (error: Error) => (outcome = { error }),
    );
    let last: JobInfo | null = null;
    let aborted: Error | null = null;
    let noJobSinceMs: number | null = startedMs;
    let stalled = false;
    try {
      while (!outcome) {
        await Promise.race([running, sleep(this.options.pollIntervalMs)]);
        if (outcome) break;
        if (request.signal.aborted) {
          // Asked again at every poll until virsh migrate exits: the job may not have started yet.
          aborted ??= (request.signal.reason as Error) ?? new Error('cancelled');
          await this.virsh(request.from, jobabortArgv(sourceUri, request.vm), 30_000).catch((error: Error) => {
            this.options.log.debug({ vm: request.vm, host: request.from, error: error.message }, 'virsh domjobabort');
          });
          continue;
        }
        try {
          const info = parseJobInfo(await this.virsh(request.from, jobinfoArgv(sourceUri, request.vm), 20_000));
          if (info.type === 'Unbounded') noJobSinceMs = null;
          else noJobSinceMs ??= Date.now();
          if (info.type === 'Unbounded' && info.dataTotalBytes !== undefined) {
            last = info;
            const total = info.dataTotalBytes;
            request.onProgress?.({
              bytesCopied: info.dataProcessedBytes ?? 0,
              bytesRemaining: info.dataRemainingBytes ?? 0,
              expectedDowntimeMs: info.expectedDowntimeMs,
              fraction: total > 0 ? Math.min(1, 1 - (info.dataRemainingBytes ?? total) / total) : 0,
            });
          }
        } catch {
          // The job may have ended (the domain left the source) between two polls; virsh migrate's exit tells.
          noJobSinceMs ??= Date.now();
        }
        if (noJobSinceMs !== null && Date.now() - noJobSinceMs > stallMs) {
          stalled = true;
          stopVirsh.abort();
          break;
        }
      }
      await running;
      const result = outcome as { error: Error | null } | null;
      if (stalled && result?.error) {
        const where = await this.locate(request.vm).catch(() => null);
        if (where !== request.to) {
          throw new Error(
            `live migration of ${JSON.stringify(request.vm)} from ${request.from} to ` +
              `${request.to} failed: virsh migrate showed no migration job on ${request.from} ` +
              `for ${Math.round(stallMs / 1000)} s and was stopped; it ` +
              `${where === request.from ? 'keeps running' : 'was last seen'} on ${where ?? request.from}`,
          );
        }
      } else if (result?.error) {
        if (aborted) throw aborted;
        throw new Error(
          `live migration of ${JSON.stringify(request.vm)} from ${request.from} to ` +
            `${request.to} failed: ${result.error.message}; it keeps running on ${request.from}`,
        );
      }
      if (aborted)
        this.options.log.warn(
          { vm: request.vm },
          'the migration completed before the cancel reached libvirt; the guest runs on the destination',
        );
      // The destination keeps the statistics of the incoming job: downtime and bytes as libvirt measured them.
      let completed: JobInfo | null = null;
      try {
        completed = parseJobInfo(
          await this.virsh(request.to, jobinfoArgv(this.uri(request.to), request.vm, true), 20_000),
        );
      } catch {
        completed = null;
      }
      const bytesCopied = completed?.dataProcessedBytes ?? last?.dataProcessedBytes ?? 0;
      request.onProgress?.({ bytesCopied, bytesRemaining: 0, fraction: 1 });
      return { totalMs: Date.now() - startedMs, downtimeMs: completed?.totalDowntimeMs ?? null, bytesCopied };
    } finally {
      await running;
    }
  }

  async close(): Promise<void> {}
}
