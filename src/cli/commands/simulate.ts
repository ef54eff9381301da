/**
 * `lbvm simulate`: replays a real utilisation trace (PlanetLab or Bitbrains) through a policy and
 * scores it: migrations, imbalance, overloaded host-steps, unserved demand, plan time. The policy
 * code and snapshot type are the monitor's own.
 */
import fs from 'node:fs';
import { Command } from 'commander';
import type { ThresholdLevel } from '../../../policies/index.ts';
import { UsageError } from '../../errors.ts';
import { simulationSettings } from '../../sim/settings.ts';
import { simulate, type SimResult } from '../../sim/simulate.ts';
import { readTrace, TRACE_FORMATS, withLocalDisks } from '../../sim/traces.ts';
import { teach } from '../help.ts';
import { loadFor, output, withCommon, type CommonOptions } from '../run.ts';

interface SimulateOptions extends CommonOptions {
  trace?: string;
  format?: string;
  hosts?: string;
  hostCores?: string;
  hostMemGib: string;
  initial?: string;
  policy: string;
  threshold?: string;
  movesOut?: string;
  localDisks?: string;
}

function required(value: string | undefined, flag: string, expected: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag}: missing; expected ${expected}`);
  return value;
}

function number(
  text: string,
  flag: string,
  { integer = false, min = 0, max = Number.POSITIVE_INFINITY, exclusiveMin = false } = {},
): number {
  const value = Number(text);
  const expected = `${integer ? 'a whole number' : 'a number'} ${exclusiveMin ? '>' : '>='} ${min}${Number.isFinite(max) ? ` and <= ${max}` : ''}`;
  if (
    text.trim() === '' ||
    !Number.isFinite(value) ||
    (integer && !Number.isInteger(value)) ||
    (exclusiveMin ? value <= min : value < min) ||
    value > max
  ) {
    throw new UsageError(`${flag}: "${text}": expected ${expected}`);
  }
  return value;
}

/** A JSON object read from `file`, or a UsageError naming `flag`, the file and what was `expected`. */
function readJsonObject(file: string, flag: string, expected: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`${flag}: file "${file}" not found or unreadable; expected ${expected}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `${flag}: ${file}: not valid JSON (${(error as Error).message.split('\n')[0]}); expected ${expected}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(
      `${flag}: ${file}: expected ${expected}, got ${Array.isArray(parsed) ? 'an array' : typeof parsed}`,
    );
  }
  return parsed as Record<string, unknown>;
}

function readInitial(file: string): Record<string, string> {
  const parsed = readJsonObject(file, '--initial', 'a JSON object {"<vm>": "h<index>", ...}');
  for (const [vm, host] of Object.entries(parsed)) {
    if (typeof host !== 'string')
      throw new UsageError(
        `--initial: ${file}: VM "${vm}" placed on ${JSON.stringify(host)}; expected a host name like "h3"`,
      );
  }
  return parsed as Record<string, string>;
}

/** A small terminal chart: `height` rows, at most `width` columns (each the mean of its steps). */
export function chart(series: readonly number[], width = 72, height = 8): string {
  if (series.length === 0) return '(no steps)';
  const columns = Math.min(width, series.length);
  const values: number[] = [];
  for (let c = 0; c < columns; c++) {
    const from = Math.floor((c * series.length) / columns);
    const to = Math.max(from + 1, Math.floor(((c + 1) * series.length) / columns));
    let sum = 0;
    for (let i = from; i < to; i++) sum += series[i]!;
    values.push(sum / (to - from));
  }
  // The axis spans min..max of the series, so small changes stay visible.
  const top = Math.max(...values);
  const bottom = Math.min(...values);
  const span = Math.max(top - bottom, 1e-9);
  const rows: string[] = [];
  for (let r = height; r >= 1; r--) {
    const label = r === height ? top.toFixed(3).padStart(6) : r === 1 ? bottom.toFixed(3).padStart(6) : ''.padStart(6);
    rows.push(
      `${label} │${values.map((v) => (1 + ((v - bottom) / span) * (height - 1) >= r - 0.5 ? '█' : ' ')).join('')}`,
    );
  }
  rows.push(`${''.padStart(6)} └${'─'.repeat(columns)}`);
  return rows.join('\n');
}

function text(result: SimResult): string {
  const s = result.summary;
  const refused = Object.entries(s.refusedByReason);
  const hours = (s.steps * 5) / 60;
  return [
    `trace ${s.trace}: ${s.vms} VMs on ${s.hosts} hosts, ${s.steps} steps (${hours.toFixed(1)} h), policy ${s.policy}`,
    ...s.notes.map((note) => `  note: ${note}`),
    '',
    `  migrations             ${s.migrations} (${s.movedGiB.toLocaleString('en-US')} GiB of memory moved)`,
    `  imbalance              mean ${s.meanImbalance.toFixed(4)}, p95 ${s.p95Imbalance.toFixed(4)} (std dev of host CPU use)`,
    `  overloaded host-steps  ${s.overloadedHostSteps} (CPU demand above capacity)`,
    `  unserved demand        ${(s.unservedFraction * 100).toFixed(4)}% of all CPU demand`,
    `  active hosts           ${s.meanActiveHosts.toFixed(1)} on average`,
    `  plan time              median ${s.planMsMedian.toFixed(2)} ms, p99 ${s.planMsP99.toFixed(2)} ms`,
    `  passed over            ${
      refused.length
        ? refused
            .slice(0, 6)
            .map(([reason, n]) => `${reason} ×${n.toLocaleString('en-US')}`)
            .join(', ')
        : 'nothing'
    }`,
    '',
    'imbalance over time:',
    chart(result.imbalance),
  ].join('\n');
}

export function simulateCommand(): Command {
  const command = withCommon(new Command('simulate'));
  teach(command, {
    summary: 'replay a real utilisation trace through a policy and score the result',
    details:
      'Hosts are h0 … h{N-1}. Step 0 places VMs from --initial (a JSON object VM → host) or round-robin in sorted name order. ' +
      'At step t the policy sees demands up to t; its moves apply before step t+1 is scored.\n\n' +
      'Policies: balance, overload, consolidate, evacuate, several joined by commas (one monitor round), ' +
      'or a peer to compare with: none, proxlb, xo, drs, ovirt, lownode, crs (src/sim/peers.ts says what each does). ' +
      'Other settings (watermarks, limits, cooldown, weights, monitor.window) come from the config.\n\n' +
      '--json adds movedGiB (memory copied), refusedByReason (candidates passed over, by named reason) and notes ' +
      '(a start no move can fix, such as hosts given less memory than their VMs, named with the flag that fixes it).',
    examples: [
      'lbvm simulate --trace ../shared/traces/planetlab/20110303 --format planetlab --hosts 60 --host-cores 4',
      'lbvm simulate --trace ../shared/traces/planetlab/20110303 --format planetlab --hosts 60 --host-cores 4 --policy balance --threshold 5 --json',
      'lbvm simulate --trace ../shared/traces/bitbrains-rnd/2013-8 --format bitbrains --hosts 13 ' +
        '--host-cores 16 --host-mem-gib 1024 --policy evacuate,overload,balance --moves-out moves.jsonl',
    ],
  });
  command
    .option('--trace <dir>', 'folder of the trace files')
    .option('--format <format>', `trace format: ${TRACE_FORMATS.join(' or ')}`)
    .option('--hosts <n>', 'number of hosts')
    .option('--host-cores <n>', 'CPU cores per host')
    .option('--host-mem-gib <n>', 'memory per host in GiB', '64')
    .option('--initial <file>', 'JSON object VM → host for step 0 (default: round-robin)')
    .option(
      '--policy <name>',
      'balance, overload, consolidate, evacuate, comma-joined, or a peer: none, proxlb, xo, drs, ovirt, lownode, crs',
      'balance',
    )
    .option(
      '--threshold <level>',
      "balance's migration threshold, 1 (cautious) to 5 (aggressive); default from the config (3)",
    )
    .option(
      '--local-disks <file>',
      'JSON object VM → local disk size ("20GiB" or bytes): those VMs copy their disk when moved (traces give no disk sizes)',
    )
    .option('--moves-out <file>', 'write one JSON line per step: {"t": 3, "moves": [{"vm", "from", "to"}]}');
  return command.action((options: SimulateOptions) => {
    const traceDir = required(options.trace, '--trace', 'a folder of trace files');
    const format = required(options.format, '--format', TRACE_FORMATS.join(' or '));
    if (!(TRACE_FORMATS as readonly string[]).includes(format))
      throw new UsageError(`--format: unknown trace format "${format}"; expected one of: ${TRACE_FORMATS.join(', ')}`);
    const hosts = number(required(options.hosts, '--hosts', 'a whole number >= 1'), '--hosts', {
      integer: true,
      min: 1,
    });
    const hostCores = number(required(options.hostCores, '--host-cores', 'a number > 0'), '--host-cores', {
      min: 0,
      exclusiveMin: true,
    });
    const hostMemGib = number(options.hostMemGib, '--host-mem-gib', { min: 0, exclusiveMin: true });
    const { config } = loadFor(options);
    const threshold =
      options.threshold === undefined
        ? config.policies.balance.threshold
        : number(options.threshold, '--threshold', { integer: true, min: 1, max: 5 });
    const initial = options.initial ? readInitial(options.initial) : undefined;
    let trace = readTrace(traceDir, format);
    if (options.localDisks)
      trace = withLocalDisks(
        trace,
        readJsonObject(options.localDisks, '--local-disks', 'a JSON object {"<vm>": "20GiB", ...}'),
        `--local-disks: ${options.localDisks}`,
      );
    const settings = simulationSettings(config, trace, threshold as ThresholdLevel);
    let movesOut: number | null = null;
    if (options.movesOut) {
      try {
        movesOut = fs.openSync(options.movesOut, 'w');
      } catch (error) {
        throw new UsageError(
          `--moves-out: cannot write "${options.movesOut}" ` +
            `(${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); expected a writable file path`,
        );
      }
    }
    try {
      const result = simulate(trace, {
        hosts,
        hostCores,
        hostMemBytes: hostMemGib * 1024 ** 3,
        initial,
        policy: options.policy,
        settings,
        windowSamples: settings.demand.maxWindowSamples,
        onStep:
          movesOut === null ? undefined : (t, moves) => fs.writeSync(movesOut!, `${JSON.stringify({ t, moves })}\n`),
      });
      output(options, result.summary, () => text(result));
    } finally {
      if (movesOut !== null) fs.closeSync(movesOut);
    }
  });
}
