/**
 * The monitor: every interval, when it holds the lease, it reads the sample window, builds the
 * snapshot, runs the policies in order, reconciles with the migrations in flight and enqueues what
 * is left, carrying its fencing token. Each round is one structured record (logged, kept in Redis
 * for `lbm status`, and stored as a `monitor.round` event for `lbm report`).
 *
 * Safety: not leader → nothing; then the gate (gate.ts, the pure step `lbm plan` runs too): no or too
 * many unknown hosts, paused, report mode, moves in flight, the per-round and per-hour budgets; the
 * lease is checked again before every single enqueue, so a monitor that loses it stops at once.
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { LbvmConfig } from '../config/schema.ts';
import { policySettingsFromConfig } from '../config/policy-settings.ts';
import type { Logger } from '../log.ts';
import type { LbvmEvent, Move, Plan } from '../model/index.ts';
import { DemandByVm, planInputs, planRound } from '../../policies/index.ts';
import type { RedisEventLog } from '../queue/events.ts';
import type { MigrationQueue } from '../queue/queue.ts';
import type { SampleStore } from '../store/types.ts';
import { HOUR_MS, movesInLastHour, roundKeys } from './control.ts';
import { quarantinedVms, quarantineNote, readCluster, windowFor, type QuarantinedVm } from './read.ts';
import type { IncrementalWindow } from './window.ts';
import { LeaderLease } from './lease.ts';
import { PUBLISHED_VERSION, publishSnapshot } from './published.ts';
import { masterTerm, redisTargetOf } from '../util/redis.ts';
import { MonitorMetrics } from './metrics.ts';
import { gate, gateInputs, type GateMode } from './gate.ts';

export type RoundMode = GateMode | 'standby';

export interface RoundRecord {
  roundId: string;
  timeMs: number;
  monitor: string;
  mode: RoundMode;
  fencingToken: number | null;
  inputs: {
    hosts: number;
    vms: number;
    unknownHosts: string[];
    maintenanceHosts: string[];
    samplesSkipped: number;
    inFlight: number;
    /**
     * How the sample window was read: whole (on start, on taking the lease, after a gap or a failed
     * read, or when the store could not tell what was new: `reasons`) or only what arrived since the
     * previous round; `items` samples and points read, hosts read again whole.
     */
    window?: {
      full: boolean;
      reasons: string[];
      items: number;
      rereadHosts: number;
      /** InfluxDB: hosts whose new VM samples came from packed rows, and hosts read series by series. */
      paths?: { packedHosts: number; seriesHosts: number };
    };
  };
  imbalanceBefore: number | null;
  imbalanceAfter: number | null;
  moves: { vm: string; from: string; to: string; policy: string; reason: string; gain: number; costMs: number }[];
  enqueued: { vm: string; from: string; to: string; jobId: string; status: string }[];
  heldBack: { vm: string; reason: string; detail: string }[];
  /** VMs left alone after repeated failed migrations (limits.quarantineAfterFailures), until when. */
  quarantined: QuarantinedVm[];
  notes: string[];
  planMs: number | null;
  /** Reading the sample window, building the snapshot, and enqueuing (with the gate), in ms. */
  readMs?: number;
  snapshotMs?: number;
  enqueueMs?: number;
  /** Publishing the snapshot for `lbm` (published.ts), after the round: ms, and its size deflated. */
  publishMs?: number;
  publishedBytes?: number;
  /** The round: the lease, read, snapshot, plan and enqueue (not publishing, not recording). */
  roundMs: number;
}

export interface MonitorDeps {
  config: LbvmConfig;
  log: Logger;
  store: SampleStore;
  redis: Redis;
  queue: MigrationQueue;
  /** This monitor's id in the lease (hostname:pid by default). */
  id: string;
  clock?: () => number;
  metrics?: MonitorMetrics;
}

export class Monitor {
  readonly lease: LeaderLease;
  readonly metrics: MonitorMetrics;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<RoundRecord | null> | null = null;
  private stopping = false;
  /** The sample window kept between rounds while this monitor leads (window.ts). */
  readonly window: IncrementalWindow;
  lastRecord: RoundRecord | null = null;
  /** The fencing token this monitor last took (to know whether anyone else led since). */
  private heldToken: number | null = null;

  constructor(private readonly deps: MonitorDeps) {
    this.clock = deps.clock ?? Date.now;
    this.metrics = deps.metrics ?? new MonitorMetrics();
    this.window = windowFor(deps.config, deps.store);
    const { log } = deps;
    this.lease = new LeaderLease(
      deps.redis,
      deps.config.redis.prefix,
      deps.id,
      deps.config.monitor.lease,
      {
        onAcquired: (token) => {
          log.info({ fencingToken: token }, 'became the active monitor (leader)');
          // Another leader may have acted since our window's last read: read the whole window first.
          // Not when the fence moved by one since our own token: nobody else took the lease in between
          // (a round that kept the event loop past the lease, such as a whole read of a large window).
          const resumed = this.heldToken !== null && token === this.heldToken + 1;
          this.heldToken = token;
          if (!resumed) this.window.invalidate('took the lease');
          this.metrics.leader.set(1);
          this.metrics.fencingToken.set(token);
        },
        onLost: (reason) => {
          log.warn({ reason }, 'lost the lease: standing by, enqueuing nothing');
          this.metrics.leader.set(0);
          this.metrics.fencingToken.set(0);
        },
        onRefused: (reason) => log.info({ reason }, `not taking the lease yet: ${reason}`),
        // With Sentinel, a token carries the master's term (see lease.ts): it survives a failover.
        term: deps.config.redis.sentinels.length > 0 ? () => masterTerm(redisTargetOf(deps.config)) : undefined,
      },
      this.clock,
    );
    this.metrics.health = () => ({
      monitor: deps.id,
      leader: this.lease.isLeader(),
      fencingToken: this.lease.token,
      lastRound: this.lastRecord?.roundId ?? null,
    });
  }

  /** Starts the lease and the round loop. Rounds run every `monitor.interval`, never two at once. */
  start(): void {
    this.lease.start();
    const loop = async () => {
      if (this.stopping) return;
      await this.runRound();
      if (!this.stopping) this.timer = setTimeout(loop, this.deps.config.monitor.interval);
    };
    this.timer = setTimeout(loop, 0);
  }

  /** Finishes the round in progress, then releases the lease so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.current;
    await this.lease.release();
  }

  private async runRound(): Promise<RoundRecord | null> {
    this.current = this.round().catch((error: Error) => {
      this.metrics.rounds.inc({ outcome: 'error' });
      this.deps.log.error({ error: error.message }, 'round failed; trying again next interval');
      return null;
    });
    const record = await this.current;
    this.current = null;
    return record;
  }

  /** One round. Public for tests and `lbm plan`'s sibling code paths. */
  async round(): Promise<RoundRecord> {
    const started = performance.now();
    const { config, log, store, redis, queue } = this.deps;
    const { events } = queue;
    const prefix = config.redis.prefix;
    await this.lease.tick();
    const nowMs = this.clock();
    const token = this.lease.token;
    const roundId = `r${nowMs}-${token ?? 's'}`;
    const base: RoundRecord = {
      roundId,
      timeMs: nowMs,
      monitor: this.deps.id,
      mode: 'standby',
      fencingToken: token,
      inputs: { hosts: 0, vms: 0, unknownHosts: [], maintenanceHosts: [], samplesSkipped: 0, inFlight: 0 },
      imbalanceBefore: null,
      imbalanceAfter: null,
      moves: [],
      enqueued: [],
      heldBack: [],
      quarantined: [],
      notes: [],
      planMs: null,
      roundMs: 0,
    };
    if (token === null) {
      // A standby keeps no window: it reads the whole window when it takes the lease.
      this.window.drop('took the lease');
      base.notes.push('standing by: another monitor holds the lease');
      base.roundMs = performance.now() - started;
      this.metrics.rounds.inc({ outcome: 'standby' });
      this.lastRecord = base;
      return base;
    }

    const view = await readCluster({ config, store, redis, queue }, nowMs, this.window);
    const { snapshot: snap, samplesSkipped: skipped, pause, maintenance, inFlight } = view;
    base.readMs = view.read.readMs;
    base.snapshotMs = view.read.snapshotMs;
    const settings = policySettingsFromConfig(config);
    const unknown = snap.hosts.filter((host) => host.status !== 'up').map((host) => host.name);
    Object.assign(base.inputs, {
      hosts: snap.hosts.length,
      vms: snap.vms.length,
      unknownHosts: unknown,
      maintenanceHosts: [...maintenance.keys()].sort(),
      samplesSkipped: skipped,
      inFlight: inFlight.length,
      window: {
        full: view.read.full,
        reasons: view.read.reasons,
        items: view.read.items,
        rereadHosts: view.read.rereadHosts.length,
        ...(view.read.paths ? { paths: view.read.paths } : {}),
      },
    });
    if (view.read.paths)
      log.debug(
        { paths: view.read.paths },
        `read what was new: ${view.read.paths.packedHosts} hosts from packed rows (lbvm_round), ` +
          `${view.read.paths.seriesHosts} series by series (their collectors write no packed row)`,
      );
    if (view.read.full || view.read.rereadHosts.length > 0)
      log.info(
        { reasons: view.read.reasons, items: view.read.items, readMs: Math.round(view.read.readMs) },
        `read the ${view.read.full ? 'whole sample window' : `windows of ${view.read.rereadHosts.length} hosts`} ` +
          `again: ${view.read.reasons.join('; ')}`,
      );
    this.metrics.hosts.set(snap.hosts.length);
    this.metrics.vms.set(snap.vms.length);
    this.metrics.hostsUnknown.set(unknown.length);

    const planStarted = performance.now();
    // Made once: the plan uses them, and the published snapshot carries them for `lbm vms`.
    const demandByVm = new DemandByVm(snap.vms, settings.demand);
    const plan: Plan = planRound(snap, settings, config.monitor.policies, demandByVm);
    base.planMs = performance.now() - planStarted;
    this.metrics.planSeconds.observe(base.planMs / 1000);
    base.imbalanceBefore = plan.scoreBefore;
    base.imbalanceAfter = plan.scoreAfter;
    this.metrics.imbalance.set(plan.scoreBefore);
    base.moves = plan.moves.map(summariseMove);
    base.quarantined = quarantinedVms(snap);
    const quarantined = quarantineNote(base.quarantined, settings.limits.quarantineAfterFailures);
    if (quarantined) base.notes.push(quarantined);
    base.notes.push(...plan.notes);

    const enqueueStarted = performance.now();
    // The gate (gate.ts), the same pure step `lbm plan` runs: what may be enqueued, and what is held back.
    const gated = gate(gateInputs(config, view, plan.moves, await this.movesInLastHour(nowMs), store.displayUrl));
    base.mode = gated.mode;
    base.notes.push(...gated.notes);
    for (const held of gated.heldBack)
      base.heldBack.push({ vm: held.move.vm, reason: held.reason, detail: held.detail });
    // Enforcing: the gate's moves, each while this monitor still holds the lease.
    for (const move of gated.enqueue) {
      if (!this.lease.isLeader() || this.lease.token !== token) {
        base.heldBack.push({ vm: move.vm, reason: 'NOT_LEADER', detail: 'the lease was lost during the round' });
        continue;
      }
      const result = await queue.enqueue({
        vm: move.vm,
        from: move.from,
        to: move.to,
        reason: move.reason,
        planId: roundId,
        requestedBy: 'monitor',
        fencingToken: token,
        mode: move.mode ?? config.migration.mode,
      });
      base.enqueued.push({ vm: move.vm, from: move.from, to: move.to, jobId: result.jobId, status: result.status });
      if (result.status === 'queued') {
        this.metrics.movesEnqueued.inc({ policy: move.policy });
        await redis.zadd(roundKeys(prefix).movesLog, nowMs, `${roundId}:${move.vm}`);
      }
    }
    for (const held of base.heldBack) this.metrics.movesHeldBack.inc({ reason: held.reason });
    base.enqueueMs = performance.now() - enqueueStarted;
    // The round ends here; publishing for `lbm` comes after the moves are queued and is timed apart.
    base.roundMs = performance.now() - started;
    if (this.lease.isLeader() && this.lease.token === token) {
      const publishStarted = performance.now();
      try {
        base.publishedBytes = await publishSnapshot(
          redis,
          prefix,
          {
            version: PUBLISHED_VERSION,
            roundId,
            monitor: this.deps.id,
            store: store.displayUrl,
            windowMs: config.monitor.window,
            samplesSkipped: skipped,
            snapshot: snap,
            plan: { inputs: planInputs(config.monitor.policies, settings, snap), plan },
            demand: settings.demand,
            demandByVm,
          },
          // lbm takes it while it is this young; Redis forgets it after.
          config.monitor.staleAfterIntervals * config.monitor.interval,
        );
      } catch (error) {
        log.warn({ error: (error as Error).message }, 'could not publish the snapshot for lbm; lbm reads the store');
      }
      base.publishMs = performance.now() - publishStarted;
    }
    this.metrics.roundSeconds.observe(base.roundMs / 1000);
    this.metrics.rounds.inc({ outcome: base.mode });
    this.metrics.lastRoundMs = this.clock();
    this.lastRecord = base;
    await this.record(base, events);
    log.info(
      { round: base },
      `round ${base.mode}: ${base.enqueued.filter((e) => e.status === 'queued').length} enqueued, ` +
        `${base.heldBack.length} held back, imbalance ${fmt(base.imbalanceBefore)} → ${fmt(base.imbalanceAfter)}`,
    );
    return base;
  }

  /** Drops the moves log's entries older than an hour, then counts the rest. */
  private async movesInLastHour(nowMs: number): Promise<number> {
    const prefix = this.deps.config.redis.prefix;
    await this.deps.redis.zremrangebyscore(roundKeys(prefix).movesLog, 0, nowMs - HOUR_MS);
    return movesInLastHour(this.deps.redis, prefix, nowMs);
  }

  private async record(record: RoundRecord, events: RedisEventLog): Promise<void> {
    const prefix = this.deps.config.redis.prefix;
    await this.deps.redis.set(roundKeys(prefix).lastRound, JSON.stringify(record));
    const event: LbvmEvent = {
      type: 'monitor.round',
      timeMs: record.timeMs,
      planId: record.roundId,
      detail: {
        mode: record.mode,
        imbalanceBefore: record.imbalanceBefore,
        imbalanceAfter: record.imbalanceAfter,
        enqueued: record.enqueued.length,
        heldBack: record.heldBack.length,
        unknownHosts: record.inputs.unknownHosts.length,
      },
    };
    await events.emit(event);
    try {
      await this.deps.store.writeEvents([event]);
    } catch (error) {
      this.deps.log.warn(
        { error: (error as Error).message, store: this.deps.store.displayUrl },
        'could not store the round record; it is in Redis',
      );
    }
  }
}

function summariseMove(move: Move): RoundRecord['moves'][number] {
  return {
    vm: move.vm,
    from: move.from,
    to: move.to,
    policy: move.policy,
    reason: move.reason,
    gain: move.gain,
    costMs: move.cost.durationMs,
  };
}

function fmt(value: number | null): string {
  return value === null ? '-' : value.toFixed(3);
}
