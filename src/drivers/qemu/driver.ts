/**
 * The `qemu` driver: reaches each host's `lbvm agent` over its authenticated control port (the
 * address is `hosts.<name>.agent` in the config, the token `$LBVM_AGENT_TOKEN`, and with the cluster's
 * TLS this process's certificate `tls.cert`).
 *
 * Live:       destination prepares `-incoming` on a free port -> source migrates over QMP (downtime
 *             limit, bandwidth cap, auto-converge: QEMU throttles a guest that would not converge) ->
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
/** How long the source has to confirm a cancel (a migration it reports ended) before the driver settles without it. */
const CANCEL_CONFIRM_MS = 10_000;
/** Calls during a migration are short, so a silent agent cannot stretch the cancel's bound. */
const CANCEL_CALL_MS = 5000;
const STATUS_CALL_MS = 5000;

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
    const startedMs = Date.now();
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
    /** The source's last word on the migration (what a failure reports, and an outcome's figures). */
    let last: MigrationStatus | null = null;
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
      // Set once the driver cancels (an object: TypeScript does not follow assignments in closures).
      const cancel: { reason: Error | null; atMs: number } = { reason: null, atMs: 0 };
      const cancelWith = async (reason: Error) => {
        cancel.reason = reason;
        cancel.atMs = Date.now();
        await source.call('/v1/migrate/cancel', { name: request.vm, attemptId }, CANCEL_CALL_MS).catch(() => {});
      };
      for (;;) {
        if (request.signal.aborted && !cancel.reason)
          await cancelWith((request.signal.reason as Error) ?? new Error('cancelled'));
        // A cancel the source does not confirm (its QEMU hung or gone, its agent silent) ends the wait
        // anyway, after a bound: the catch below then settles what the destination holds.
        if (cancel.reason && Date.now() - cancel.atMs > CANCEL_CONFIRM_MS)
          throw new Error(
            `${cancel.reason.message}; ${request.from} did not confirm the cancel within ${CANCEL_CONFIRM_MS / 1000} s ` +
              `(its migration was last ${last?.status ?? 'unknown'})`,
          );
        let status: MigrationStatus;
        try {
          status = await source.call<MigrationStatus>('/v1/migrate/status', { name: request.vm }, STATUS_CALL_MS);
        } catch {
          // The source agent is the only one who knows; keep asking while the signal allows (and
          // then the destination settles it, below).
          if (request.signal.aborted && cancel.reason) throw cancel.reason;
          await sleep(POLL_MS);
          continue;
        }
        if (status.attemptId !== attemptId && !cancel.reason)
          throw new AttemptSuperseded(`another attempt (${status.attemptId}) took over this migration`);
        last = status;
        request.onProgress?.({
          bytesCopied: status.bytesCopied,
          bytesRemaining: status.bytesRemaining,
          expectedDowntimeMs: status.expectedDowntimeMs ?? undefined,
          fraction: status.bytesTotal > 0 ? Math.min(1, 1 - status.bytesRemaining / status.bytesTotal) : 0,
        });
        if (status.status === 'completed') {
          await this.commit(destination, request.vm);
          if (cancel.reason)
            this.log.warn(
              { vm: request.vm },
              'the migration completed before the cancel reached QEMU; the guest runs on the destination',
            );
          return { totalMs: status.totalMs, downtimeMs: status.downtimeMs, bytesCopied: status.bytesCopied };
        }
        if (status.status === 'failed' || status.status === 'cancelled') {
          // The cancel's own reason (its type steers the worker) when it left the guest where it was.
          if (cancel.reason && status.sourceRole === 'running') throw cancel.reason;
          const where =
            status.sourceRole === 'running'
              ? `it keeps running on ${request.from}`
              : `it is ${status.sourceRole} on ${request.from}`;
          throw new Error(
            `live migration of ${JSON.stringify(request.vm)} ${status.status}: ` +
              `${cancel.reason?.message ?? status.error ?? 'no reason given'}; ${where}`,
          );
        }
        // Is the destination still there? A dead destination agent may leave its QEMU receiving.
        try {
          await destination.health(2000);
          destinationSeenMs = Date.now();
        } catch {
          if (Date.now() - destinationSeenMs > DESTINATION_SILENCE_MS && !cancel.reason)
            await cancelWith(
              new Error(
                `the destination agent (${request.to}) stopped answering during the migration; ` +
                  `cancelled, ${JSON.stringify(request.vm)} keeps running on ${request.from}`,
              ),
            );
        }
        await sleep(POLL_MS);
      }
    } catch (error) {
      // The other attempt owns the destination's half now: not ours to remove.
      if (error instanceof AttemptSuperseded) throw error;
      // Before giving up, the destination's word: a guest that arrived there (the stream completed
      // before the cancel or before the source went silent) is kept, and the move reported done.
      if (await this.abortIncoming(destination, request.vm, attemptId)) {
        this.log.warn(
          { vm: request.vm, host: request.to, error: (error as Error).message },
          'the guest runs on the destination although the source did not report the migration completed; kept there',
        );
        // A source copy whose QEMU is gone is only an entry now: removed, so the VM is in one place.
        if (last?.sourceRole === 'stopped') await source.stop(request.vm).catch(() => {});
        return {
          totalMs: Date.now() - startedMs,
          downtimeMs: last?.downtimeMs ?? null,
          bytesCopied: last?.bytesCopied ?? 0,
        };
      }
      throw error;
    }
  }

  /**
   * Removes the destination's half-started guest of this attempt, unless it runs there (the agent
   * never kills a running guest). Whether the guest runs on the destination.
   */
  private async abortIncoming(destination: AgentClient, vm: string, attemptId: string): Promise<boolean> {
    try {
      const answer = await destination.call<{ running?: boolean }>('/v1/incoming/abort', { name: vm, attemptId });
      return answer.running === true;
    } catch (error) {
      this.log.warn(
        { vm, host: destination.host, error: (error as Error).message },
        'could not remove the half-started destination guest now; its agent cleans it up',
      );
      return false;
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
      // A restore that ran although its call failed (a timeout) leaves the guest running there: the
      // abort keeps it, and the source's paused copy must then not resume (the error still goes out).
      if (!restored && !(await this.abortIncoming(destination, request.vm, attemptId))) {
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
