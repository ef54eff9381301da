/** `lbm pause`, `lbm resume`, `lbm maintenance HOST on|off [--evacuate]`: operator controls kept in Redis. */
import os from 'node:os';
import { Command } from 'commander';
import { UsageError } from '../../../errors.ts';
import { readMaintenance, readPause, setMaintenance, setPaused } from '../../../monitor/control.ts';
import { withContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { output, withCommon, type CommonOptions } from '../../run.ts';

function operator(): string {
  return `${process.env.SUDO_USER ?? process.env.USER ?? 'operator'}@${os.hostname()}`;
}

export function pauseCommand(): Command {
  const command = withCommon(new Command('pause')).option(
    '--reason <text>',
    'why, shown by lbm status and in the monitor log',
  );
  teach(command, {
    summary: 'stop the monitor from starting new moves (takes effect within one interval)',
    details:
      'Migrations already running finish. The monitor keeps planning and logs what it would have ' +
      'done.\nThe flag lives in Redis: it survives monitor restarts and reaches every monitor.',
    examples: ['lbm pause --reason "storage maintenance"', 'lbm pause --json'],
  });
  return command.action(async (options: CommonOptions & { reason?: string }) => {
    const state = await withContext(options, 'pause', async (context) => {
      const redis = await context.redis();
      await setPaused(redis, context.config.redis.prefix, true, {
        by: operator(),
        nowMs: Date.now(),
        reason: options.reason,
      });
      return readPause(redis, context.config.redis.prefix);
    });
    output(
      options,
      state,
      () =>
        `paused by ${state.by}${state.reason ? ` (${state.reason})` : ''}: the monitor starts no new move from its next round. Undo with: lbm resume`,
    );
  });
}

export function resumeCommand(): Command {
  const command = withCommon(new Command('resume'));
  teach(command, { summary: 'let the monitor move VMs again', examples: ['lbm resume'] });
  return command.action(async (options: CommonOptions) => {
    const state = await withContext(options, 'resume', async (context) => {
      const redis = await context.redis();
      const before = await readPause(redis, context.config.redis.prefix);
      await setPaused(redis, context.config.redis.prefix, false, { by: operator(), nowMs: Date.now() });
      return { paused: false, wasPaused: before.paused };
    });
    output(options, state, () =>
      state.wasPaused
        ? 'resumed: the monitor may move VMs from its next round'
        : 'the monitor was not paused; nothing changed',
    );
  });
}

export function maintenanceCommand(): Command {
  const command = withCommon(new Command('maintenance'))
    .argument('<host>', 'the host to flag')
    .argument('<state>', 'on or off')
    .option('--evacuate', 'with on: ask the monitor to move every VM off the host (the evacuate policy)');
  teach(command, {
    summary: 'flag a host for maintenance: no VM moves to it; with --evacuate its VMs are moved off',
    details: 'The flag lives in Redis and is read by the monitor at the start of every round.',
    examples: ['lbm maintenance n3 on --evacuate', 'lbm maintenance n3 off', 'lbm maintenance n3 on --json'],
  });
  return command.action(async (host: string, state: string, options: CommonOptions & { evacuate?: boolean }) => {
    if (state !== 'on' && state !== 'off')
      throw new UsageError(`lbm maintenance ${host} ${JSON.stringify(state)}: expected on or off`);
    const result = await withContext(options, 'maintenance', async (context) => {
      const redis = await context.redis();
      await setMaintenance(redis, context.config.redis.prefix, host, state === 'on', {
        by: operator(),
        sinceMs: Date.now(),
        evacuate: options.evacuate === true,
      });
      const flags = await readMaintenance(redis, context.config.redis.prefix);
      return {
        host,
        maintenance: flags.has(host),
        evacuate: flags.get(host)?.evacuate ?? false,
        hostsInMaintenance: [...flags.keys()].sort(),
      };
    });
    output(options, result, () =>
      result.maintenance
        ? `${host} is in maintenance: no VM will be moved to it${result.evacuate ? ', and the monitor will move its VMs off (evacuate policy)' : ''}.`
        : `${host} is out of maintenance.`,
    );
  });
}
