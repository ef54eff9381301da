/**
 * The demo: a throwaway local cluster balanced live. QEMU mode: 3 `lbvm agent` hosts (logical hosts
 * of 1 core and 2 GiB each) with 6 real TCG guests, all started on h1 on purpose, each burning its
 * own CPU share; `lbvm collect` per host every 2 s, one `lbvm monitor`, one `lbvm worker`. Sim mode
 * (`--sim`, or when QEMU or the test guest is missing): the `sim` driver with 20 hosts and 300 VMs
 * packed onto the fewest hosts. With `--netns` (QEMU mode, root), each agent host is a network namespace
 * on a bridge with `tc`-shaped links (src/util/netns.ts), its agent and collector inside it on its own
 * address, and the cluster has its own CA (deploy/certs.sh): mutual TLS to the agents, TLS migration
 * streams; the worker and the monitor stay in the root namespace, as on management machines. The story is shown live; the end is a report (text and HTML) and a
 * summary with `imbalanceBefore`, `imbalanceAfter`, the migrations and `leftoverProcesses`.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { standardDeviation } from 'simple-statistics';
import { collectRound } from '../../../collectors/collect.ts';
import { loadConfig } from '../../config/load.ts';
import type { LbvmConfig } from '../../config/schema.ts';
import { AgentClient } from '../../drivers/qemu/client.ts';
import { guestId, guestKernelArgs } from '../../drivers/qemu/guest.ts';
import { SimDriver, generateSimCluster, type SimVm } from '../../drivers/sim.ts';
import { createLogger } from '../../log.ts';
import { foundAlreadyMoved, type LbvmEvent, type Sample } from '../../model/index.ts';
import { roundKeys } from '../../monitor/control.ts';
import type { RoundRecord } from '../../monitor/daemon.ts';
import { RedisEventLog } from '../../queue/events.ts';
import { MigrationQueue } from '../../queue/queue.ts';
import { connectRedis } from '../../util/redis.ts';
import { openStore, spoolFor, type SampleStore } from '../../store/index.ts';
import { formatDuration } from '../../units.ts';
import { freePort, waitFor } from '../../util/processes.ts';
import { buildReport } from '../report/data.ts';
import { renderHtml } from '../report/html.ts';
import { DemoStack, REPO_ROOT } from './stack.ts';
import { DemoView, type HostLine } from './view.ts';
import { makeDirs } from '../../util/dirs.ts';
import { makeClusterCerts, type ClusterCerts } from '../../util/certs.ts';
import { createNetnsCluster, type NetnsCluster } from '../../util/netns.ts';
import { readTls } from '../../util/tls.ts';
import { THRESHOLD_LEVELS, type ThresholdLevel } from '../../../policies/index.ts';

const GiB = 1024 ** 3;
const QUIET_ROUNDS = 5;
/** What a stop names when only a rule of time holds the next move back (policies/constraints.ts reasons). */
const TIMED_HOLD = /\b(PING_PONG|COOLDOWN)\b/;
/** The imbalance "after" is the mean of this many measurements (2 s apart). */
const AFTER_SAMPLES = 5;
/** The longest a migration's events wait for the decision line of the round that queued the job. */
const EVENT_HOLD_MS = 10_000;
export const GUEST_DIR = path.join(REPO_ROOT, '.cache', 'guest');

export interface DemoOptions {
  sim: boolean;
  durationMs: number;
  /** Where the live view goes (stderr when --json keeps stdout for the result). */
  out: NodeJS.WriteStream;
  /** Folder the HTML report is written to (it outlives the demo's temporary folder). */
  reportDir: string;
  /** Aborted on Ctrl-C: the demo stops waiting and tears down. */
  signal: AbortSignal;
  /** Keep the temporary folder (logs, samples, config) for a look afterwards. */
  keep?: boolean;
  /** QEMU mode: each host in its own network namespace, links shaped to `rate` (`1gbit`), TLS everywhere. */
  netns?: { rate: string };
}

export interface DemoMigration {
  vm: string;
  from: string;
  to: string;
  mode: string;
  totalMs: number | null;
  downtimeMs: number | null;
}

/** A host at the end: measured CPU share, memory measured in use and committed to VMs (shares of capacity). */
export interface DemoHost {
  host: string;
  cpuShare: number;
  memUsedShare: number;
  memCommittedShare: number | null;
  vms: number;
}

export interface DemoResult {
  driver: 'qemu' | 'sim';
  imbalanceBefore: number | null;
  imbalanceAfter: number | null;
  /** True only when the imbalance is under the threshold level's target and no hot host could give a VM to a cool one. */
  balanced: boolean;
  /** Why the demo stopped: balanced (with the figures), the limit or rule that holds moves back, or the time. */
  stopReason: string | null;
  /** The hosts as last measured. */
  hosts: DemoHost[];
  migrations: DemoMigration[];
  failedMigrations: number;
  /**
   * Jobs that found their VM already on the destination (an earlier attempt of the job moved it and
   * was reported failed, e.g. after losing its lock): not migrations, and not in `migrations`.
   */
  alreadyThere: number;
  leftoverProcesses: number;
  reportHtml: string | null;
  durationMs: number;
  notes: string[];
}

/** Why the QEMU demo cannot run here, or null when it can. */
export function qemuMissing(): string | null {
  try {
    execFileSync('qemu-system-x86_64', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'qemu-system-x86_64 is not installed (Debian package qemu-system-x86)';
  }
  for (const file of ['kernel', 'initramfs.cpio.gz']) {
    if (!fs.existsSync(path.join(GUEST_DIR, file)))
      return `the test guest is not built (${path.join(GUEST_DIR, file)} missing: run deploy/setup.sh)`;
  }
  return null;
}

/** Guests of the QEMU demo: their CPU burn adds up to 1.1 cores, all of it on h1 (1 core) at start. */
const QEMU_GUESTS = [30, 25, 20, 15, 10, 10].map((cpuPercent, index) => ({ name: `vm-${index + 1}`, cpuPercent }));

function baseConfig(stack: DemoStack, redisUrl: string, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    log: { level: 'info', format: 'json' },
    store: { url: `files:${path.join(stack.dir, 'samples')}`, spoolDir: path.join(stack.dir, 'spool') },
    redis: { url: redisUrl, prefix: 'demo' },
    monitor: { interval: '3s', window: '30s', lease: '6s', listen: '127.0.0.1:0', staleAfterIntervals: 4 },
    // Samples every 2 s: a forecast looks a few rounds ahead, not the default quarter of an hour.
    policies: { demand: { horizon: '10s' } },
    ...extra,
  };
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const startedMs = Date.now();
  const notes: string[] = [];
  let driver: 'qemu' | 'sim' = options.sim ? 'sim' : 'qemu';
  const missing = driver === 'qemu' ? qemuMissing() : null;
  if (missing && options.netns) throw new Error(`--netns needs the QEMU demo, which is not possible here: ${missing}`);
  if (missing) {
    notes.push(`QEMU demo not possible: ${missing}; running the sim driver instead`);
    driver = 'sim';
  }
  const netnsTitle = options.netns ? `, network namespaces at ${options.netns.rate}, TLS` : '';
  const view = new DemoView(
    options.out,
    `LBVM demo (${driver === 'qemu' ? `3 hosts, 6 QEMU guests, live migration${netnsTitle}` : 'sim driver, 20 hosts, 300 VMs'})`,
    startedMs,
  );
  for (const note of notes) view.say(note);
  const stack = new DemoStack();
  let redis: Redis | null = null;
  let queue: MigrationQueue | null = null;
  let store: SampleStore | null = null;
  const stopCollectors = new AbortController();
  let inProcessCollectors: Promise<void> | null = null;
  let agents: AgentClient[] = [];
  let net: NetnsCluster | null = null;
  const result: DemoResult = {
    driver,
    imbalanceBefore: null,
    imbalanceAfter: null,
    balanced: false,
    stopReason: null,
    hosts: [],
    migrations: [],
    failedMigrations: 0,
    alreadyThere: 0,
    leftoverProcesses: 0,
    reportHtml: null,
    durationMs: 0,
    notes,
  };
  let config: LbvmConfig | null = null;
  const ticker = setInterval(() => view.render(), 500);
  try {
    view.say(`starting a private redis-server in ${stack.dir}`);
    const server = await stack.startRedis();
    const token = randomBytes(16).toString('hex');
    if (driver === 'qemu') {
      let certs: ClusterCerts | null = null;
      if (options.netns) {
        view.say(`making 3 network namespaces on a bridge, links shaped to ${options.netns.rate}`);
        net = await createNetnsCluster({ hosts: ['h1', 'h2', 'h3'], rate: options.netns.rate });
        view.say(`making the cluster's CA and certificates (deploy/certs.sh) in ${path.join(stack.dir, 'tls')}`);
        certs = await makeClusterCerts(path.join(stack.dir, 'tls'), {
          agents: Object.fromEntries(net.hosts.map((host) => [host.name, [host.address]])),
          clients: ['worker'],
        });
      }
      // In a namespace every agent has an address of its own, and the port can be the same.
      const addresses = [1, 2, 3].map((n) => net?.host(`h${n}`).address ?? '127.0.0.1');
      const ports = net ? [7300, 7300, 7300] : await Promise.all([1, 2, 3].map(() => freePort()));
      const hosts = Object.fromEntries(
        [1, 2, 3].map((n, i) => [`h${n}`, { cpuCores: 1, memBytes: '2GiB', agent: `${addresses[i]}:${ports[i]}` }]),
      );
      stack.writeConfig(
        baseConfig(stack, server.url, {
          hosts,
          collect: { driver: 'qemu', interval: '2s' },
          limits: {
            movesPerRound: 2,
            migrationsPerSourceHost: 1,
            migrationsPerDestinationHost: 1,
            migrationsInCluster: 2,
            cooldown: '20s',
            // The demo's time runs 90 times faster than a cluster's (20 s cooldown for 30 min): the
            // 2-hour default would forbid any move back for the whole run, and with 6 guests on 3 hosts
            // that can leave the cluster one move short of flat. Twice the cooldown, so a move back
            // the demo waits for comes within its --duration.
            pingPongWindow: '40s',
          },
          migration: { mode: 'live', downtimeLimit: '300ms' },
          agent: { accel: 'tcg' },
          // The worker's, the monitor's and the collectors' certificate; each agent gets its own below.
          ...(certs ? { tls: { ca: certs.ca, ...certs.files('worker') } } : {}),
        }),
      );
      config = loadConfig({ configPath: stack.configFile, env: {} }).config;
      const env = { LBVM_AGENT_TOKEN: token };
      const inNamespace = (host: string) =>
        net ? (command: string, args: string[]) => net!.exec(host, command, args) : undefined;
      const clientTls = certs ? readTls({ ca: certs.ca, ...certs.files('worker') }) : undefined;
      view.say(
        `starting 3 agents (h1, h2, h3: 1 core and 2 GiB each)${net ? ` at ${addresses.join(', ')}, mutual TLS` : ''}`,
      );
      agents = [1, 2, 3].map((n, i) => {
        const own = certs?.files(`h${n}`);
        stack.spawnLbvm(
          `agent-h${n}`,
          [
            'agent',
            '--node',
            `h${n}`,
            '--listen',
            `${addresses[i]}:${ports[i]}`,
            '--state-dir',
            path.join(stack.dir, `agent-h${n}`),
          ],
          {
            ...env,
            LBVM_AGENT_MIGRATION_ADDRESS: addresses[i]!,
            ...(own ? { LBVM_TLS_CERT: own.cert, LBVM_TLS_KEY: own.key } : {}),
          },
          inNamespace(`h${n}`),
        );
        return new AgentClient(`${addresses[i]}:${ports[i]}`, token, `h${n}`, clientTls);
      });
      for (const agent of agents)
        await waitFor(`agent ${agent.host}`, async () => (await agent.health(1000)).host === agent.host, {
          timeoutMs: 30_000,
        });
      view.say(
        `starting 6 guests on h1, badly placed on purpose (CPU burn ${QEMU_GUESTS.map((g) => `${g.cpuPercent}%`).join(', ')} = 1.1 cores on a 1-core host)`,
      );
      for (const guest of QEMU_GUESTS) {
        await agents[0]!.start({
          name: guest.name,
          vcpus: 1,
          memMiB: 128,
          kernel: path.join(GUEST_DIR, 'kernel'),
          initrd: path.join(GUEST_DIR, 'initramfs.cpio.gz'),
          append: guestKernelArgs({ cpuPercent: guest.cpuPercent, memPercent: 10, dirtyPercent: 2 }),
        });
      }
      view.say('waiting for the 6 guests to boot (TCG: about 20 s)');
      const serialLog = (name: string) => path.join(stack.dir, 'agent-h1', 'guests', guestId(name), 'serial.log');
      await waitFor(
        'the demo guests to boot',
        () =>
          QEMU_GUESTS.every(
            (guest) =>
              fs.existsSync(serialLog(guest.name)) &&
              fs.readFileSync(serialLog(guest.name), 'utf8').includes('lbvm-guest: up'),
          ),
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      view.say('starting collectors (every 2 s), a monitor and a worker');
      // A host's collector runs on it (in its namespace); the worker and the monitor on a management machine.
      for (const n of [1, 2, 3])
        stack.spawnLbvm(
          `collect-h${n}`,
          ['collect', '--every', '2s', '--node', `h${n}`],
          { ...env, LBVM_COLLECT_STATE_FILE: path.join(stack.dir, `collect-h${n}.json`) },
          inNamespace(`h${n}`),
        );
      stack.spawnLbvm('worker', ['worker'], env);
      stack.spawnLbvm('monitor', ['monitor'], env);
    } else {
      stack.writeConfig(
        baseConfig(stack, server.url, {
          collect: { driver: 'sim', interval: '2s' },
          limits: {
            movesPerRound: 12,
            migrationsPerSourceHost: 2,
            migrationsPerDestinationHost: 2,
            migrationsInCluster: 12,
            cooldown: '20s',
            movesPerHour: 1000,
          },
          sim: { hosts: 20, vms: 300, hostCpuCores: 32, hostMem: '192GiB', speedup: 20, seed: 7 },
        }),
      );
      config = loadConfig({ configPath: stack.configFile, env: {} }).config;
      redis = connectRedis(server.url);
      const sim = new SimDriver({ config, redis });
      const cluster = generateSimCluster(config.sim);
      const placement = packBadly(
        cluster.vms,
        cluster.hosts.map((h) => h.name),
        config.sim.hostMem,
      );
      await sim.cluster.define(cluster.hosts, cluster.vms, placement);
      const used = new Set(Object.values(placement)).size;
      view.say(`sim cluster: 20 hosts of 32 cores and 192 GiB, 300 VMs packed onto ${used} of them on purpose`);
      view.say('starting collectors (every 2 s, in this process), a monitor and a worker');
      store = openStore(config.store.url, { log: createLogger({ level: 'error', format: 'json' }) });
      const spool = spoolFor(config, createLogger({ level: 'error', format: 'json' }));
      const collectAll = async () => {
        for (const host of cluster.hosts) {
          await collectRound({
            node: host.name,
            store: store!,
            spool,
            driver: sim,
            stateFile: path.join(stack.dir, 'collect-state.json'),
            logicalCapacity: { cpuCores: host.cpuCores, memBytes: host.memBytes },
            baselineWaitMs: 0,
          });
        }
      };
      await collectAll();
      inProcessCollectors = (async () => {
        while (!stopCollectors.signal.aborted) {
          await new Promise((resolve) => setTimeout(resolve, 2000));
          if (!stopCollectors.signal.aborted)
            await collectAll().catch((error: Error) => view.say(`collect round failed: ${error.message}`));
        }
      })();
      stack.spawnLbvm('worker', ['worker']);
      stack.spawnLbvm('monitor', ['monitor']);
    }

    redis ??= connectRedis(server.url);
    store ??= openStore(config!.store.url, { log: createLogger({ level: 'error', format: 'json' }) });
    queue = new MigrationQueue(redis, config!);
    await watch({
      config: config!,
      redis,
      queue,
      store,
      view,
      result,
      options,
      startedMs,
      stack,
      expectedHosts: driver === 'qemu' ? 3 : 20,
      expectedVms: driver === 'qemu' ? QEMU_GUESTS.length : 300,
    });
  } finally {
    clearInterval(ticker);
    view.say('tearing down');
    stopCollectors.abort();
    await inProcessCollectors;
    if (redis && store && config) {
      try {
        const html = await writeReport(config, store, new RedisEventLog(redis, 'demo'), startedMs, options.reportDir);
        result.reportHtml = html;
      } catch (error) {
        notes.push(`no HTML report: ${(error as Error).message}`);
      }
    }
    await queue?.close().catch(() => {});
    await store?.close().catch(() => {});
    redis?.disconnect();
    result.leftoverProcesses = await stack.teardown(async () => {
      // Guests run detached from their agents (they survive an agent restart): stop them first.
      for (const agent of agents) {
        const { guests } = await agent.list().catch(() => ({ guests: [] as { name: string }[] }));
        for (const guest of guests) await agent.stop(guest.name).catch(() => {});
      }
    });
    await net?.teardown();
    result.durationMs = Date.now() - startedMs;
    view.finish();
    if (options.keep) notes.push(`kept the demo folder: ${stack.dir} (logs/, samples/, lbvm.yaml)`);
    else stack.removeFolder();
  }
  return result;
}

/** Packs VMs first-fit by memory onto as few hosts as possible (90% of memory), the worst start. */
export function packBadly(vms: SimVm[], hosts: string[], hostMemBytes: number): Record<string, string> {
  const placement: Record<string, string> = {};
  let index = 0;
  let used = 0;
  for (const vm of vms) {
    if (used + vm.memBytes > hostMemBytes * 0.9 && index < hosts.length - 1) {
      index++;
      used = 0;
    }
    placement[vm.name] = hosts[index]!;
    used += vm.memBytes;
  }
  return placement;
}

interface WatchContext {
  config: LbvmConfig;
  redis: Redis;
  queue: MigrationQueue;
  store: SampleStore;
  view: DemoView;
  result: DemoResult;
  options: DemoOptions;
  startedMs: number;
  stack: DemoStack;
  expectedHosts: number;
  expectedVms: number;
}

/**
 * The demo's imbalance: the population standard deviation of the hosts' measured CPU use as a
 * share of capacity (what the bars show), so before and after are plain facts from the samples.
 */
export function cpuImbalance(hosts: HostLine[]): number {
  if (hosts.length === 0) return 0;
  return standardDeviation(hosts.map((h) => (h.cpuCores > 0 ? h.cpuUsedCores / h.cpuCores : 0)));
}

/** Follows rounds, events, jobs and samples until the cluster is balanced or time is up. */
async function watch(context: WatchContext): Promise<void> {
  const { config, redis, queue, store, view, result, options, startedMs, stack, expectedHosts, expectedVms } = context;
  let lastSampleMs = 0;
  let firstHostSeenMs = 0;
  const events = new RedisEventLog(redis, config.redis.prefix);
  let after: string | undefined;
  let lastRound = '';
  let quietRoundsAfterMove = 0;
  let waitingOnTimer = false;
  let lastMoveMs = 0;
  let lastRecord: RoundRecord | null = null;
  // A worker starts a job before the round that queued it has stored its record: a job's events wait
  // (up to EVENT_HOLD_MS, for jobs no round queued) until its decision line has been shown.
  const decided = new Set<string>();
  const pending: { event: LbvmEvent; seenMs: number }[] = [];
  const tellEvents = (all: boolean) => {
    while (pending.length > 0) {
      const { event, seenMs } = pending[0]!;
      if (!all && event.jobId && !decided.has(event.jobId) && Date.now() - seenMs < EVENT_HOLD_MS) break;
      pending.shift();
      describeEvent(event, view, result);
      if (event.type === 'migration.finished') lastMoveMs = event.timeMs;
    }
  };
  const recent: number[] = [];
  const deadline = startedMs + options.durationMs;
  while (Date.now() < deadline && !options.signal.aborted) {
    for (const name of ['monitor', 'worker']) {
      const crashed = stack.logOf(name).includes('"level":60') || stack.logOf(name).includes('internal error');
      if (crashed)
        throw new Error(
          `the ${name} stopped: see ${path.join(stack.dir, 'logs', `${name}.log`)}\n${stack.logOf(name).slice(-1500)}`,
        );
    }
    // Hosts: the newest host sample of each, and VM counts from the newest VM samples.
    const nowMs = Date.now();
    const latest = new Map<string, Sample & { kind: 'host' }>();
    const vmHost = new Map<string, { host: string; timeMs: number }>();
    for await (const sample of store.readSamples({ fromMs: nowMs - 8000, toMs: nowMs, nowMs })) {
      if (sample.kind === 'host') {
        const seen = latest.get(sample.host);
        if (!seen || seen.timeMs < sample.timeMs) latest.set(sample.host, sample);
      } else {
        const seen = vmHost.get(sample.vm);
        if (!seen || seen.timeMs < sample.timeMs) vmHost.set(sample.vm, { host: sample.host, timeMs: sample.timeMs });
      }
    }
    const counts = new Map<string, number>();
    for (const { host } of vmHost.values()) counts.set(host, (counts.get(host) ?? 0) + 1);
    const lines: HostLine[] = [...latest.values()]
      .sort((a, b) => (a.host < b.host ? -1 : 1))
      .map((s) => ({
        host: s.host,
        cpuUsedCores: s.cpuUsedCores,
        cpuCores: s.cpuCores,
        memUsedBytes: s.memUsedBytes,
        memBytes: s.memBytes,
        memCommittedBytes: s.memCommittedBytes,
        vms: counts.get(s.host) ?? 0,
      }));
    // The cluster is shown once every host has reported (a host's first round waits a second for its
    // CPU baselines, so a partial picture would first show the empty hosts without the loaded one),
    // or after a grace period, so that a host that never reports is seen missing rather than hidden.
    if (lines.length > 0 && firstHostSeenMs === 0) firstHostSeenMs = nowMs;
    if (lines.length >= expectedHosts || (firstHostSeenMs > 0 && nowMs - firstHostSeenMs > 15_000))
      view.setHosts(lines);
    const newest = Math.max(0, ...[...latest.values()].map((s) => s.timeMs));
    if (lines.length >= expectedHosts && vmHost.size >= expectedVms && newest > lastSampleMs) {
      lastSampleMs = newest;
      const value = cpuImbalance(lines);
      // "Before" is the cluster as placed: the worst imbalance measured until the first move lands
      // (a collector's first round has no CPU baseline for its VMs yet, so it reads low).
      if (lastMoveMs === 0) result.imbalanceBefore = Math.max(result.imbalanceBefore ?? 0, value);
      // "After" is the mean of the last few measurements: one sample's noise neither makes a settled
      // cluster look balanced nor unbalanced.
      recent.push(value);
      if (recent.length > AFTER_SAMPLES) recent.shift();
      result.imbalanceAfter = recent.reduce((a, b) => a + b, 0) / recent.length;
      result.hosts = lines.map(demoHost);
    }

    // Rounds: each decision with its reason.
    const raw = await redis.get(roundKeys(config.redis.prefix).lastRound);
    if (raw) {
      const record = JSON.parse(raw) as RoundRecord;
      lastRecord = record;
      if (record.roundId !== lastRound) {
        lastRound = record.roundId;
        const queued = record.enqueued.filter((e) => e.status === 'queued');
        for (const entry of queued) {
          const move = record.moves.find((m) => m.vm === entry.vm);
          view.say(`decision: ${move?.reason ?? `${entry.vm} ${entry.from} → ${entry.to}`}`);
          decided.add(entry.jobId);
        }
        if (queued.length === 0 && lastMoveMs > 0) quietRoundsAfterMove++;
        else if (queued.length > 0) {
          quietRoundsAfterMove = 0;
          waitingOnTimer = false;
        }
        view.setStatus(
          `CPU imbalance ${result.imbalanceAfter?.toFixed(3) ?? '-'}  ·  monitor score ${record.imbalanceBefore?.toFixed(3) ?? '-'}  ·  round ` +
            `${record.mode}  ·  ${result.migrations.length} migrations  ·  ${formatDuration(Date.now() - startedMs)} of ${formatDuration(options.durationMs)}`,
        );
      }
    }

    // Migration events.
    for (const { id, event } of await events.read({ after, count: 1000 })) {
      after = id;
      pending.push({ event, seenMs: Date.now() });
    }
    tellEvents(false);

    // Progress of running migrations.
    const jobs = (await queue.jobs(50)).filter((job) => job.state === 'active');
    view.setActive(
      jobs.map((job) => ({
        vm: job.data.vm,
        from: job.data.from,
        to: job.data.to,
        fraction: job.progress?.fraction ?? 0,
        bytesCopied: job.progress?.bytesCopied ?? 0,
        bytesRemaining: job.progress?.bytesRemaining ?? 0,
      })),
    );

    const inFlight = await queue.inFlight();
    // Settled: moves were made, none is running, and the monitor has queued nothing for QUIET_ROUNDS
    // rounds in a row (cooldowns and fresh samples have had time to settle). Whether that is "balanced"
    // is judged from the numbers, not from the quiet.
    if (result.migrations.length > 0 && inFlight.length === 0 && quietRoundsAfterMove >= QUIET_ROUNDS) {
      const end = judgeEnd(result.hosts, result.imbalanceAfter ?? 0, lastRecord, config);
      // Quiet because a rule of time holds the next move (cooldown, no move back yet) is not settled:
      // the monitor moves again when it lapses, so wait for that (until --duration) rather than end.
      if (!end.balanced && TIMED_HOLD.test(end.reason)) {
        if (!waitingOnTimer) view.say(`waiting for a rule of time to lapse: ${end.reason}`);
        waitingOnTimer = true;
        await new Promise((resolve) => setTimeout(resolve, 500));
        continue;
      }
      tellEvents(true);
      result.balanced = end.balanced;
      result.stopReason = end.reason;
      view.say(
        `${end.balanced ? 'balanced' : 'stopped, not balanced'}: imbalance ` +
          `${result.imbalanceBefore?.toFixed(3)} → ${result.imbalanceAfter?.toFixed(3)}; ${end.reason}`,
      );
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  tellEvents(true);
  result.stopReason = options.signal.aborted
    ? 'interrupted'
    : `time is up (--duration ${Math.round(options.durationMs / 1000)}) with imbalance ${result.imbalanceAfter?.toFixed(3) ?? '-'}`;
  view.say(result.stopReason);
}

function demoHost(line: HostLine): DemoHost {
  const share = (part: number, whole: number) => (whole > 0 ? Number((part / whole).toFixed(3)) : 0);
  return {
    host: line.host,
    cpuShare: share(line.cpuUsedCores, line.cpuCores),
    memUsedShare: share(line.memUsedBytes, line.memBytes),
    memCommittedShare: line.memCommittedBytes === undefined ? null : share(line.memCommittedBytes, line.memBytes),
    vms: line.vms,
  };
}

/**
 * Is the settled cluster balanced? Only when the measured imbalance is under the threshold level's
 * target and no host is above the high watermark (CPU, or memory committed) while one under the low
 * watermark holds room for one of its VMs. Otherwise the reason is the limit or rule the last round
 * named (held-back moves first, then the plan's own stop note), so the operator reads what stopped it.
 */
export function judgeEnd(
  hosts: readonly DemoHost[],
  imbalance: number,
  record: RoundRecord | null,
  config: LbvmConfig,
): { balanced: boolean; reason: string } {
  const level = config.policies.balance.threshold as ThresholdLevel;
  const target = THRESHOLD_LEVELS[level].targetImbalance;
  const { highWatermark: high, lowWatermark: low } = config.policies.overload;
  const pct = (share: number) => `${Math.round(share * 100)}%`;
  const load = (h: DemoHost) => Math.max(h.cpuShare, h.memCommittedShare ?? 0);
  const hot = hosts.filter((h) => load(h) > high);
  const cool = hosts.filter((h) => load(h) < low);
  const problems: string[] = [];
  if (imbalance > target)
    problems.push(`imbalance ${imbalance.toFixed(3)} is above threshold ${level}'s target ${target}`);
  if (hot.length > 0 && cool.length > 0) {
    problems.push(
      `${hot.map((h) => `${h.host} (${pct(load(h))})`).join(', ')} above high ${pct(high)} while ` +
        `${cool.length} host(s) are under low ${pct(low)} (e.g. ${cool[0]!.host} at ${pct(load(cool[0]!))})`,
    );
  }
  if (problems.length === 0)
    return {
      balanced: true,
      reason: `imbalance under threshold ${level}'s target ${target} and no host above high ${pct(high)} with room elsewhere`,
    };
  const held = record?.heldBack[0];
  const notes = record?.notes ?? [];
  const stop = held
    ? `${held.reason}: ${held.detail}`
    : (notes.find((n) => /stopped|limit|COOLDOWN|budget/.test(n)) ??
      notes.find((n) => !/nothing to do/.test(n)) ??
      'the monitor queues no move and names no limit');
  return { balanced: false, reason: `${problems.join('; ')}; what stops it: ${stop}` };
}

/** One migration event in the story and in the result: a job that found its VM moved is not a migration. */
export function describeEvent(event: LbvmEvent, view: DemoView, result: DemoResult): void {
  const move = `${event.vm} ${event.from} → ${event.to}`;
  if (event.type === 'migration.started') view.say(`migrating ${move} (${event.mode ?? 'live'})`);
  else if (foundAlreadyMoved(event)) {
    result.alreadyThere++;
    view.say(`${event.vm} was already on ${event.to} when its job ran (an earlier attempt moved it): nothing moved`);
  } else if (event.type === 'migration.finished') {
    result.migrations.push({
      vm: event.vm!,
      from: event.from!,
      to: event.to!,
      mode: event.mode ?? 'live',
      totalMs: event.totalMs ?? null,
      downtimeMs: event.downtimeMs ?? null,
    });
    view.say(
      `migrated ${move} in ${event.totalMs === undefined ? '?' : formatDuration(event.totalMs)}, downtime ` +
        `${event.downtimeMs === null || event.downtimeMs === undefined ? 'unknown' : `${Math.round(event.downtimeMs)} ms`}`,
    );
  } else if (event.type === 'migration.failed') {
    result.failedMigrations++;
    view.say(`migration of ${move} failed: ${event.error ?? 'unknown error'}`);
  } else if (event.type === 'migration.dropped') view.say(`migration of ${move} dropped: ${event.error ?? ''}`);
}

async function writeReport(
  config: LbvmConfig,
  store: SampleStore,
  events: RedisEventLog,
  fromMs: number,
  reportDir: string,
): Promise<string> {
  const toMs = Date.now();
  const samples: Sample[] = [];
  for await (const sample of store.readSamples({ fromMs, toMs, kinds: ['host'], nowMs: toMs })) samples.push(sample);
  const all = (await events.read({ count: 100_000 })).map((entry) => entry.event);
  const data = buildReport({
    fromMs,
    toMs,
    samples,
    events: all,
    highWatermark: config.policies.overload.highWatermark,
  });
  makeDirs(reportDir);
  const file = path.join(reportDir, `demo-report-${new Date(fromMs).toISOString().replace(/[:.]/g, '-')}.html`);
  fs.writeFileSync(
    file,
    renderHtml(data, {
      title: 'LBVM demo report',
      highWatermark: config.policies.overload.highWatermark,
      generatedMs: toMs,
    }),
  );
  return file;
}
