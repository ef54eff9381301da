/**
 * The `qemu` driver: reaches each host's `lbvm agent` over its authenticated control port (the
 * address is `hosts.<name>.agent` in the config, the token `$LBVM_AGENT_TOKEN`, and with the cluster's
 * TLS this process's certificate `tls.cert`).
 *
 * Live:       destination prepares `-incoming` on a free port -> source migrates over QMP (downtime
 *             limit, bandwidth cap, auto-converge when the guest dirties faster than the cap) ->
 *             progress from the source's `query-migrate` -> destination confirms it runs.
 *             On failure, cancel (abort signal) or an unreachable destination: cancel on the source
 *             (the guest keeps running there) and remove the destination's half-started QEMU.
 * Checkpoint: source stops the guest and saves its state to a file -> the file is streamed to the
 *             destination -> restored there and resumed -> source quits. On failure before the
 *             restore succeeds the source resumes the guest.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LbvmConfig } from '../../config/schema.ts';
import { AttemptSuperseded, ConfigError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { readTls } from '../../util/tls.ts';
import type { Driver, DriverCapabilities, HostInventory, MigrateOutcome, MigrateRequest } from '../driver.ts';
import { AgentCallError, AgentClient, type MigrationStatus } from './client.ts';

/** A destination agent that cannot be reached this long makes the driver cancel the migration. */
const DESTINATION_SILENCE_MS = 5000;
const POLL_MS = 200;

export class QemuDriver implements Driver {
  readonly name = 'qemu';
  readonly capabilities: DriverCapabilities = {
    live: true,
    checkpoint: true,
    cancel: true,
    progress: true,
    stats: true,
    localDisks: true,
  };

  constructor(
    private readonly agents: Map<string, AgentClient>,
    private readonly log: Logger,
  ) {}

  static fromConfig(config: LbvmConfig, log: Logger, env: NodeJS.ProcessEnv = process.env): QemuDriver {
    const token = env[config.agent.tokenEnv];
    const problems: string[] = [];
    if (!token)
      problems.push(
        `${config.agent.tokenEnv}: not set; the qemu driver needs the agents' shared token in this environment variable (agent.tokenEnv)`,
      );
    const agents = new Map<string, AgentClient>();
    // With the cluster's TLS, agents are reached over HTTPS, checked against tls.ca, showing tls.cert.
    const tls = config.tls.ca ? readTls(config.tls) : undefined;
    for (const [host, settings] of Object.entries(config.hosts)) {
      if (settings.agent) agents.set(host, new AgentClient(settings.agent, token ?? '', host, tls));
    }
    if (agents.size === 0)
      problems.push(
        'hosts: no host has an `agent:` address (hosts.<name>.agent: host:port); the qemu driver reaches each host through its lbvm agent',
      );
    if (problems.length) throw new ConfigError(problems);
    return new QemuDriver(agents, log);
  }

  agent(host: string): AgentClient {
    const client = this.agents.get(host);
    if (!client)
      throw new AgentCallError(
        404,
        `no agent address configured for host ${JSON.stringify(host)} (hosts.<name>.agent)`,
      );
    return client;
  }

  async inventory(host: string): Promise<HostInventory> {
    const { vms } = await this.agent(host).inventory();
    return { host, vms };
  }

  /**
   * Asks every agent. A guest counts where it runs (or is stopped, or being checkpointed), not
   * where it is still arriving. When an agent cannot be asked and no other has the VM, the answer
   * is unknown, so this throws (a retry later) rather than saying "nowhere".
   */
  async locate(vm: string): Promise<string | null> {
    const answers = await Promise.all(
      [...this.agents.entries()].map(async ([host, client]) => {
        try {
          const guest = await client.get(vm);
          return { host, role: guest.role, error: null };
        } catch (error) {
          if (error instanceof AgentCallError && error.status === 404) return { host, role: null, error: null };
          return { host, role: null, error: error as Error };
        }
      }),
    );
    const found = answers.filter((answer) => answer.role && answer.role !== 'incoming');
    if (found.length > 1)
      throw new Error(
        `VM ${JSON.stringify(vm)} is defined on several hosts: ${found.map((answer) => `${answer.host} (${answer.role})`).join(', ')}`,
      );
    if (found.length === 1) return found[0]!.host;
    const failed = answers.filter((answer) => answer.error);
    if (failed.length)
      throw new Error(
        `cannot tell where ${JSON.stringify(vm)} is: ${failed.map((answer) => answer.error!.message).join('; ')}`,
      );
    return null;
  }

  async migrate(request: MigrateRequest): Promise<MigrateOutcome> {
    return request.mode === 'checkpoint' ? this.migrateCheckpoint(request) : this.migrateLive(request);
  }

  private async migrateLive(request: MigrateRequest): Promise<MigrateOutcome> {
    const source = this.agent(request.from);
    const destination = this.agent(request.to);
    const attemptId = request.attemptId ?? `${Date.now()}-${Math.random()}`;
    // Local disks: the destination makes empty images of these sizes and exports them over NBD (`nbd`).
    const { spec, disks } = await source.get(request.vm);
    const { uri, tls, nbd } = await destination.call<{ uri: string; tls: boolean; nbd: unknown }>(
      '/v1/incoming/prepare',
      {
        spec,
        mode: 'live',
        attemptId,
        disks,
      },
    );
    let completed = false;
    try {
      await source.call('/v1/migrate/start', {
        name: request.vm,
        to: request.to,
        uri,
        // Whether the destination waits for a TLS stream: the source refuses to disagree.
        tls,
        nbd,
        attemptId,
        downtimeLimitMs: request.downtimeLimitMs,
        bandwidthBytesPerSec: request.bandwidthBytesPerSec,
      });
      let destinationSeenMs = Date.now();
      let cancelReason: Error | null = null;
      for (;;) {
        if (request.signal.aborted && !cancelReason) {
          cancelReason = (request.signal.reason as Error) ?? new Error('cancelled');
          await source.call('/v1/migrate/cancel', { name: request.vm, attemptId }).catch(() => {});
        }
        let status: MigrationStatus;
        try {
          status = await source.call<MigrationStatus>('/v1/migrate/status', { name: request.vm }, 10_000);
        } catch (error) {
          // The source agent is the only one who knows; keep asking while the signal allows.
          if (request.signal.aborted) throw cancelReason ?? error;
          await sleep(POLL_MS);
          continue;
        }
        if (status.attemptId !== attemptId && !cancelReason)
          throw new AttemptSuperseded(`another attempt (${status.attemptId}) took over this migration`);
        request.onProgress?.({
          bytesCopied: status.bytesCopied,
          bytesRemaining: status.bytesRemaining,
          expectedDowntimeMs: status.expectedDowntimeMs ?? undefined,
          fraction: status.bytesTotal > 0 ? Math.min(1, 1 - status.bytesRemaining / status.bytesTotal) : 0,
        });
        if (status.status === 'completed') {
          completed = true;
          await this.commit(destination, request.vm);
          if (cancelReason)
            this.log.warn(
              { vm: request.vm },
              'the migration completed before the cancel reached QEMU; the guest runs on the destination',
            );
          return { totalMs: status.totalMs, downtimeMs: status.downtimeMs, bytesCopied: status.bytesCopied };
        }
        if (status.status === 'failed' || status.status === 'cancelled') {
          throw (
            cancelReason ??
            new Error(
              `live migration of ${JSON.stringify(request.vm)} ${status.status}: ${status.error ?? 'no reason given'}; it keeps running on ${request.from}`,
            )
          );
        }
        // Is the destination still there? A dead destination agent may leave its QEMU receiving.
        try {
          await destination.health(2000);
          destinationSeenMs = Date.now();
        } catch {
          if (Date.now() - destinationSeenMs > DESTINATION_SILENCE_MS && !cancelReason) {
            cancelReason = new Error(
              `the destination agent (${request.to}) stopped answering during the migration; ` +
                `cancelled, ${JSON.stringify(request.vm)} keeps running on ${request.from}`,
            );
            await source.call('/v1/migrate/cancel', { name: request.vm, attemptId }).catch(() => {});
          }
        }
        await sleep(POLL_MS);
      }
    } finally {
      if (!completed) {
        await destination.call('/v1/incoming/abort', { name: request.vm }).catch((error: Error) => {
          this.log.warn(
            { vm: request.vm, host: request.to, error: error.message },
            'could not remove the half-started destination guest now; its agent cleans it up',
          );
        });
      }
    }
  }

  /** The destination runs the guest by itself once the stream completes; confirm it (a few tries). */
  private async commit(destination: AgentClient, vm: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await destination.call('/v1/incoming/commit', { name: vm });
        return;
      } catch (error) {
        if (attempt >= 5) {
          this.log.warn(
            { vm, error: (error as Error).message },
            'migration completed but the destination did not confirm yet; its agent adopts the guest by itself',
          );
          return;
        }
        await sleep(500);
      }
    }
  }

  private async migrateCheckpoint(request: MigrateRequest): Promise<MigrateOutcome> {
    const source = this.agent(request.from);
    const destination = this.agent(request.to);
    const attemptId = request.attemptId ?? `${Date.now()}-${Math.random()}`;
    const startedMs = Date.now();
    const { spec } = await source.get(request.vm);
    await destination.call('/v1/incoming/prepare', { spec, mode: 'checkpoint', attemptId });
    let restored = false;
    let saved = false;
    try {
      const check = () => {
        if (request.signal.aborted) throw (request.signal.reason as Error) ?? new Error('cancelled');
      };
      check();
      const pausedMs = Date.now();
      const save = await source.call<{ bytes: number }>(
        '/v1/checkpoint/save',
        { name: request.vm, attemptId },
        10 * 60_000,
      );
      saved = true;
      request.onProgress?.({ bytesCopied: 0, bytesRemaining: save.bytes, fraction: 0.33 });
      check();
      const copied = await source.copyCheckpoint(request.vm, destination, request.signal);
      request.onProgress?.({ bytesCopied: copied, bytesRemaining: 0, fraction: 0.66 });
      check();
      await destination.call('/v1/incoming/restore', { name: request.vm }, 2 * 60_000);
      restored = true;
      const downtimeMs = Date.now() - pausedMs;
      await source.call('/v1/checkpoint/finish', { name: request.vm }).catch((error: Error) => {
        this.log.warn(
          { vm: request.vm, error: error.message },
          'the checkpoint was restored on the destination but the source copy could not be quit yet',
        );
      });
      request.onProgress?.({ bytesCopied: copied, bytesRemaining: 0, fraction: 1 });
      return { totalMs: Date.now() - startedMs, downtimeMs, bytesCopied: copied };
    } finally {
      if (!restored) {
        await destination.call('/v1/incoming/abort', { name: request.vm }).catch(() => {});
        if (saved)
          await source
            .call('/v1/checkpoint/resume', { name: request.vm })
            .catch((error: Error) =>
              this.log.warn({ vm: request.vm, error: error.message }, 'could not resume the guest on its source'),
            );
      }
    }
  }

  async close(): Promise<void> {}
}
