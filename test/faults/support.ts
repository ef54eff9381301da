/**
 * Shared set-up of the fault scenarios: `lbvm worker` processes for a queue rig (sim driver), and a
 * queue plus worker processes driving two real agents (qemu driver). Each scenario file starts its
 * own servers; these only spare the copies.
 */
import path from 'node:path';
import { after, before } from 'node:test';
import type { LbvmConfig } from '../../src/config/schema.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis } from '../../src/util/redis.ts';
import type { TestAgent } from '../helpers/agent.ts';
import { cleanEnv, ROOT } from '../helpers/cli.ts';
import { spawnTracked, type Tracked } from '../helpers/processes.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { tmpDir } from '../helpers/tmp.ts';
import { configEnv, queueRig, testConfig, type QueueRig } from '../queue/support.ts';

/** Starts real `lbvm` daemons (worker, monitor) from a config; stops every one of them at the end. */
export class Daemons {
  readonly started: Tracked[] = [];

  spawn(command: 'worker' | 'monitor', env: NodeJS.ProcessEnv, args: string[] = []): Tracked {
    const daemon = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), command, ...args], { env, cwd: tmpDir() });
    this.started.push(daemon);
    return daemon;
  }

  /** An `lbvm worker --driver sim` on the rig's config. */
  simWorker(config: LbvmConfig, extraEnv: Record<string, string> = {}): Tracked {
    return this.spawn('worker', cleanEnv({ ...configEnv(config), ...extraEnv }), ['--driver', 'sim']);
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.started.map((daemon) => daemon.stop(2000)));
  }
}

/** A queue on `redisUrl` and `lbvm worker` processes using the qemu driver through agents a and b. */
export function qemuQueueRig(redisUrl: string, daemons: Daemons, a: TestAgent, b: TestAgent, bandwidthBytesPerSec: number, attempts = 3) {
  const settings = { 'migration.lockDuration': '3s', 'migration.slotWait': '200ms', 'migration.bandwidthBytesPerSec': bandwidthBytesPerSec, 'migration.attempts': attempts, 'migration.backoff': '500ms' };
  const config = testConfig(redisUrl, settings);
  const redisClient = connectRedis(redisUrl);
  const queue = new MigrationQueue(redisClient, config);
  const env = cleanEnv({
    LBVM_REDIS_URL: redisUrl,
    LBVM_REDIS_PREFIX: config.redis.prefix,
    LBVM_COLLECT_DRIVER: 'qemu',
    LBVM_HOSTS: JSON.stringify({ [a.host]: { cpuCores: 2, memBytes: '4GiB', agent: a.address }, [b.host]: { cpuCores: 2, memBytes: '4GiB', agent: b.address } }),
    LBVM_AGENT_TOKEN: a.token,
    LBVM_MIGRATION_LOCK_DURATION: settings['migration.lockDuration'],
    LBVM_MIGRATION_SLOT_WAIT: settings['migration.slotWait'],
    LBVM_MIGRATION_BANDWIDTH_BYTES_PER_SEC: String(bandwidthBytesPerSec),
    LBVM_MIGRATION_ATTEMPTS: String(attempts),
    LBVM_MIGRATION_BACKOFF: settings['migration.backoff'],
    LBVM_LOG_FORMAT: 'json',
  });
  return {
    config,
    queue,
    events: queue.events,
    spawnWorker: () => daemons.spawn('worker', env),
    close: async () => {
      await queue.close();
      redisClient.disconnect();
    },
  };
}

/** Stops every guest of the agents, then the agents. */
export async function stopAgents(...agents: (TestAgent | undefined)[]): Promise<void> {
  for (const agent of agents) {
    if (!agent) continue;
    for (const guest of (await agent.client.list().catch(() => ({ guests: [] }))).guests) await agent.client.stop(guest.name).catch(() => {});
    await agent.stop();
  }
}

type RigArgs = Parameters<typeof queueRig> extends [string, ...infer Rest] ? Rest : never;

/**
 * For one scenario file (call inside `describe`): a real Redis started before its tests, and the
 * `lbvm` daemons and queue rigs they make, all stopped after them.
 */
export function faultEnvironment() {
  const environment = {
    redis: undefined as unknown as RedisServer,
    daemons: new Daemons(),
    rigs: [] as QueueRig[],
    async rig(...args: RigArgs): Promise<QueueRig> {
      const made = await queueRig(environment.redis.url, ...args);
      environment.rigs.push(made);
      return made;
    },
  };
  before(async () => {
    environment.redis = await startRedis();
  });
  after(async () => {
    await environment.daemons.stopAll();
    await Promise.all(environment.rigs.map((rig) => rig.close()));
    await environment.redis?.stop();
  });
  return environment;
}
