/**
 * Shared set-up of the fault scenarios: `lbvm worker` processes for a queue rig (sim driver), and a
 * queue plus worker processes driving two real agents (qemu driver). Each scenario file starts its
 * own servers; these only spare the copies.
 */
import path from 'node:path';
import { after, before } from 'node:test';
import type { LbvmConfig } from '../../src/config/schema.ts';
import { MigrationQueue } from '../../src/queue/queue.ts';
import { connectRedis, type RedisTarget } from '../../src/util/redis.ts';
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
    const daemon = spawnTracked(process.execPath, [path.join(ROOT, 'bin/lbvm.js'), command, ...args], {
      env,
      cwd: tmpDir(),
    });
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

/**
 * A queue on Redis (a URL, or a Sentinel target: then the rig and the workers follow the master) and
 * `lbvm worker` processes using the qemu driver through agents a and b.
 */
export function qemuQueueRig(
  redis: string | Required<Omit<RedisTarget, 'ca'>>,
  daemons: Daemons,
  a: TestAgent,
  b: TestAgent,
  bandwidthBytesPerSec: number,
  attempts = 3,
  extra: Record<string, unknown> = {},
) {
  const target = typeof redis === 'string' ? { url: redis, sentinels: [], name: '', sentinelPassword: '' } : redis;
  const settings = {
    'migration.lockDuration': '3s',
    'migration.slotWait': '200ms',
    'migration.bandwidthBytesPerSec': bandwidthBytesPerSec,
    'migration.attempts': attempts,
    'migration.backoff': '500ms',
    ...extra,
  };
  const config = testConfig(target.url, {
    ...settings,
    'redis.sentinels': target.sentinels,
    'redis.name': target.name,
    'redis.sentinelPassword': target.sentinelPassword,
  });
  const redisClient = connectRedis(config.redis);
  const queue = new MigrationQueue(redisClient, config);
  const env = cleanEnv({
    ...configEnv(config),
    LBVM_COLLECT_DRIVER: 'qemu',
    LBVM_HOSTS: JSON.stringify({
      [a.host]: { cpuCores: 2, memBytes: '4GiB', agent: a.address },
      [b.host]: { cpuCores: 2, memBytes: '4GiB', agent: b.address },
    }),
    LBVM_AGENT_TOKEN: a.token,
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
    for (const guest of (await agent.client.list().catch(() => ({ guests: [] }))).guests)
      await agent.client.stop(guest.name).catch(() => {});
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
