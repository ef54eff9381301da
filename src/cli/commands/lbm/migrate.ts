/**
 * `lbm migrate VM HOST [--wait] [--checkpoint] [--force]`: a manual move through the same queue and
 * the same rule checks as the monitor's. A move that breaks a hard rule is refused naming the rule;
 * soft rules (and cooldowns) are overridden only with --force. `--wait` follows the migration with a
 * progress bar; Ctrl-C while waiting asks whether to cancel it.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import readline from 'node:readline/promises';
import { Command } from 'commander';
import { policySettingsFromConfig } from '../../../config/policy-settings.ts';
import { ExitError, MigrationRefused, UsageError } from '../../../errors.ts';
import { checkMove } from '../../../../policies/index.ts';
import { requestCancel } from '../../../queue/cancel.ts';
import { formatBytes, formatDuration } from '../../../units.ts';
import { findHost, findVm, openCluster } from '../../cluster.ts';
import { CliContext } from '../../context.ts';
import { teach } from '../../help.ts';
import { numberOption } from '../../options.ts';
import { bar, safeJson, safeOutput } from '../../render.ts';
import { withCommon, type CommonOptions } from '../../run.ts';

interface MigrateOptions extends CommonOptions {
  wait?: boolean;
  checkpoint?: boolean;
  force?: boolean;
  timeout?: string;
}

export function migrateCommand(): Command {
  const command = withCommon(new Command('migrate'))
    .argument('<vm>', 'the VM to move')
    .argument('<host>', 'the destination host')
    .option('--wait', 'follow the migration with a progress bar until it ends')
    .option('--checkpoint', 'checkpoint mode (stop, save, copy, restore) instead of live')
    .option('--force', 'override soft rules, cooldown and ping-pong protection (never hard rules)')
    .option('--timeout <seconds>', 'with --wait: give up waiting after this long (the migration goes on)', '900');
  teach(command, {
    summary: 'move a VM by hand through the same queue and rule checks as the monitor',
    details:
      'Checks the move against every rule first: capacity, memory, anti-affinity, pins, maintenance,\n' +
      'unknown hosts (hard: refused, naming the rule) and soft rules, cooldown, ping-pong (refused unless\n' +
      '--force). Exit codes: 0 done (or queued without --wait), 4 refused, 5 unknown VM or host, 6 failed.',
    examples: [
      'lbm migrate vm-17 n5',
      'lbm migrate vm-17 n5 --wait',
      'lbm migrate db-1 n2 --checkpoint --wait --force',
    ],
  });
  return command.action(async (vmName: string, hostName: string, options: MigrateOptions) => {
    // Checked before anything is queued: a typo must not leave a move running that nobody follows.
    const timeoutSeconds = numberOption(options.timeout ?? '900', '--timeout', { min: 0, exclusiveMin: true });
    const context = CliContext.open(options, 'migrate');
    try {
      // Where the VM is now, not a round ago: a manual move reads the store.
      const view = await openCluster(context, Date.now(), { fromStore: true });
      const vm = findVm(view, vmName);
      findHost(view, hostName);
      if (vm.host === hostName) throw new UsageError(`${vmName} already runs on ${hostName}; nothing to do`);
      // A move of a VM that already has one queued or running is a duplicate, whoever asked first.
      const busy = view.inFlight.find((job) => job.vm === vmName);
      if (busy) throw duplicateMove(vmName, busy.jobId);
      const check = checkMove(
        view.snapshot,
        { vm: vmName, from: vm.host, to: hostName },
        policySettingsFromConfig(context.config),
      );
      if (check.hard.length > 0) {
        throw new MigrationRefused(
          `refused: moving ${vmName} to ${hostName} breaks ${check.hard.map((v) => `${v.rule} (${v.detail})`).join('; ')}. Hard rules cannot be overridden.`,
          check.hard[0]!.rule,
        );
      }
      if (check.soft.length > 0 && !options.force) {
        throw new MigrationRefused(
          `refused: moving ${vmName} to ${hostName} breaks soft rules: ` +
            `${check.soft.map((v) => `${v.rule} (${v.detail})`).join('; ')}. Add --force to move it anyway.`,
          check.soft[0]!.rule,
        );
      }
      const queue = await context.queue();
      const operator = `operator:${process.env.SUDO_USER ?? process.env.USER ?? 'unknown'}@${os.hostname()}`;
      const result = await queue.enqueue({
        vm: vmName,
        from: vm.host,
        to: hostName,
        reason: `manual move by ${operator}${check.soft.length ? ` (forced over ${check.soft.map((v) => v.rule).join(', ')})` : ''}`,
        // One decision per invocation: two `lbm migrate` started in the same millisecond made the same
        // planId, hence the same job id, and the second was told 'duplicate' of a move to another host.
        planId: `manual-${Date.now()}-${randomUUID()}`,
        requestedBy: operator,
        fencingToken: null,
        mode: options.checkpoint ? 'checkpoint' : 'live',
      });
      if (result.status === 'vm-busy') throw duplicateMove(vmName, result.busyWith);
      if (result.status !== 'queued' && result.status !== 'duplicate')
        throw new ExitError(`not queued: ${result.status}`, 4);
      const jobId = result.jobId;
      if (options.json && !options.wait) {
        process.stdout.write(
          `${safeJson({ status: result.status, jobId, vm: vmName, from: vm.host, to: hostName })}\n`,
        );
        return;
      }
      if (!options.wait) {
        process.stdout.write(
          safeOutput(
            `queued: ${vmName} ${vm.host} → ${hostName} (job ${jobId}). Follow it with: lbm jobs, or add --wait\n`,
          ),
        );
        return;
      }
      const outcome = await follow(
        context,
        jobId,
        vmName,
        vm.host,
        hostName,
        timeoutSeconds * 1000,
        options.json === true,
      );
      if (options.json)
        process.stdout.write(`${safeJson({ jobId, vm: vmName, from: vm.host, to: hostName, ...outcome })}\n`);
      else process.stdout.write(`${safeOutput(outcome.message)}\n`);
      if (outcome.state === 'failed') process.exitCode = 6;
    } finally {
      await context.close();
    }
  });
}

function duplicateMove(vm: string, jobId: string): MigrationRefused {
  return new MigrationRefused(
    `refused: duplicate: ${vm} already has a migration queued or running (job ${jobId}); nothing enqueued. See lbm jobs`,
    'IN_FLIGHT',
  );
}

interface Outcome {
  state: string;
  totalMs: number | null;
  downtimeMs: number | null;
  bytesCopied: number | null;
  error: string | null;
  message: string;
}

async function follow(
  context: CliContext,
  jobId: string,
  vm: string,
  from: string,
  to: string,
  timeoutMs: number,
  quiet: boolean,
): Promise<Outcome> {
  const queue = await context.queue();
  const redis = await context.redis();
  const tty = process.stderr.isTTY === true && !quiet;
  let interrupted = false;
  let asking = false;
  const onInterrupt = async () => {
    if (asking) return;
    if (!process.stdin.isTTY) {
      interrupted = true;
      return;
    }
    asking = true;
    const prompt = readline.createInterface({ input: process.stdin, output: process.stderr });
    const answer = (await prompt.question(`\ncancel the migration of ${vm}? It stays on ${from}. [y/N] `))
      .trim()
      .toLowerCase();
    prompt.close();
    asking = false;
    if (answer === 'y' || answer === 'yes') {
      const heard = await requestCancel(redis, context.config.redis.prefix, jobId);
      process.stderr.write(
        heard > 0
          ? 'cancel requested\n'
          : 'no worker is listening: the migration is not running (yet); it may still start\n',
      );
    } else process.stderr.write('still waiting (Ctrl-C again to be asked again)\n');
  };
  process.on('SIGINT', onInterrupt);
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const job = await queue.job(jobId);
      if (!job) throw new ExitError(`job ${jobId} disappeared from the queue`, 6);
      if (job.state === 'completed') {
        const r = job.result;
        return {
          state: 'completed',
          totalMs: r?.totalMs ?? null,
          downtimeMs: r?.downtimeMs ?? null,
          bytesCopied: r?.bytesCopied ?? null,
          error: null,
          message:
            `${tty ? '\n' : ''}done: ${vm} ${from} → ${to}${r?.outcome === 'already-there' ? ' (it was already there)' : ''} ` +
            `in ${r ? formatDuration(r.totalMs) : '?'}, ` +
            `downtime ${r?.downtimeMs === null || r?.downtimeMs === undefined ? 'unknown' : `${Math.round(r.downtimeMs)} ms`}, ` +
            `${formatBytes(r?.bytesCopied ?? 0)} copied`,
        };
      }
      if (job.state === 'failed') {
        return {
          state: 'failed',
          totalMs: null,
          downtimeMs: null,
          bytesCopied: null,
          error: job.failedReason,
          message: `${tty ? '\n' : ''}failed: ${vm} stays on ${from}: ${job.failedReason ?? 'unknown reason'}`,
        };
      }
      if (interrupted || Date.now() > deadline) {
        return {
          state: job.state,
          totalMs: null,
          downtimeMs: null,
          bytesCopied: null,
          error: null,
          message: `stopped waiting; the migration goes on (job ${jobId}, ${job.state}). Follow it with: lbm jobs`,
        };
      }
      const progress = job.progress;
      const line = progress
        ? `${vm} ${from} → ${to} ${bar(progress.fraction, 30)} ${Math.round(progress.fraction * 100)}%  ${formatBytes(progress.bytesCopied)} copied, ` +
          `${formatBytes(progress.bytesRemaining)} ` +
          `left${progress.expectedDowntimeMs ? `, expected downtime ${Math.round(progress.expectedDowntimeMs)} ms` : ''}`
        : `${vm} ${from} → ${to} ${job.state}...`;
      if (tty) process.stderr.write(`\r\u001b[K${safeOutput(line)}`);
      else if (!quiet) process.stderr.write(`${safeOutput(line)}\n`);
      await new Promise((resolve) => setTimeout(resolve, tty ? 250 : 1000));
    }
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}
