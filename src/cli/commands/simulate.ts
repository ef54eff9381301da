/**
 * `lbvm simulate`: replays a real utilisation trace (PlanetLab or Bitbrains) through a policy and
 * scores it: migrations, imbalance, overloaded host-steps, unserved demand, plan time. The policy
 * code and snapshot type are the monitor's own.
 */
import fs from 'node:fs';
import { Command } from 'commander';
import type { ThresholdLevel } from '../../../policies/index.ts';
import { UsageError } from '../../errors.ts';
import { VM_ORDERS, type VmOrder } from '../../sim/cloudsim.ts';
import { CLOUDSIM_PEERS, isCloudsimPeer } from '../../sim/cloudsim-peers.ts';
import { CLOUDSIM_ROUND, cloudsimSettings, runCloudsimDay, type CloudsimDayResult } from '../../sim/cloudsim-run.ts';
import { simulationSettings } from '../../sim/settings.ts';
import { plannerFor, simulate, type SimResult } from '../../sim/simulate.ts';
import { readTrace, TRACE_FORMATS, withLocalDisks } from '../../sim/traces.ts';
import { teach } from '../help.ts';
import { numberOption as number } from '../options.ts';
import { loadFor, output, withCommon, type CommonOptions } from '../run.ts';

interface SimulateOptions extends CommonOptions {
  trace?: string;
  format?: string;
  hosts?: string;
  hostCores?: string;
  hostMemGib?: string;
  initial?: string;
  policy?: string;
  setup?: string;
  vmOrder: string;
  ramLimit?: boolean;
  threshold?: string;
  movesOut?: string;
  localDisks?: string;
}

function required(value: string | undefined, flag: string, expected: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag}: missing; expected ${expected}`);
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

const SETUPS = ['cloudsim-planetlab'] as const;

const pct = (share: number, digits: number) => `${(share * 100).toFixed(digits)}%`;

function energyText(r: CloudsimDayResult): string {
  const e = r.energy;
  const s = r.sim;
  return [
    `CloudSim PlanetLab setup, day ${r.day}: ${r.vms} VMs on 800 hosts (400 HP ML110 G4, 400 G5), 5-minute steps, ` +
      `VM types by ${r.order} order${r.ramLimit ? ', RAM a limit all day' : ''}; policy ${r.policy}`,
    ...s.notes.map((note) => `  note: ${note}`),
    '',
    `  energy                 ${e.energyKWh.toFixed(2)} kWh`,
    `  SLATAH                 ${pct(e.slatah, 3)} of the time hosts were on, they were CPU-starved`,
    `  PDM                    ${pct(e.pdm, 4)} of the demand lost to migrations`,
    `  SLAV                   ${pct(e.slav, 6)} (SLATAH × PDM)`,
    `  migrations             ${e.migrations.toLocaleString('en-US')}`,
    `  hosts                  ${e.hostsOnFirst} on after the first step, ${e.hostsOnLast} at the end, ${e.meanHostsOn.toFixed(1)} on average; ` +
      `switched off ${e.hostsSwitchedOff}, on ${e.hostsSwitchedOn}`,
    `  VMs                    ${e.vmsRunningAtEnd} of ${r.vms} still running at the end (the rest finished: two zero samples in a row)`,
    `  overloaded host-steps  ${s.overloadedHostSteps} (demand above capacity)`,
    `  plan time              median ${s.planMsMedian.toFixed(2)} ms, p99 ${s.planMsP99.toFixed(2)} ms`,
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
      '(a start no move can fix, such as hosts given less memory than their VMs, named with the flag that fixes it).\n\n' +
      "--setup cloudsim-planetlab replays a PlanetLab day in the data centre of CloudSim 3.0.3's power experiments " +
      '(800 hosts, half HP ML110 G4 and half G5 with their SPECpower curves, four VM types, 5-minute steps) and prints ' +
      'energy (kWh), SLATAH, PDM, SLAV, migrations and hosts switched off and on. Its policy defaults to ' +
      `${CLOUDSIM_ROUND}; none is CloudSim's DVFS run (no migrations); ${CLOUDSIM_PEERS.join(' and ')} are CloudSim's ` +
      "algorithms as LBVM writes them. --vm-order says which files become which VM type: directory (the folder's own " +
      'order, what CloudSim reads), name or hash (the same on every copy). README.md, "Energy", says where the model ' +
      'differs from CloudSim.',
    examples: [
      'lbvm simulate --trace ../shared/traces/planetlab/20110303 --format planetlab --hosts 60 --host-cores 4',
      'lbvm simulate --trace ../shared/traces/planetlab/20110303 --format planetlab --hosts 60 --host-cores 4 --policy balance --threshold 5 --json',
      'lbvm simulate --trace ../shared/traces/bitbrains-rnd/2013-8 --format bitbrains --hosts 13 ' +
        '--host-cores 16 --host-mem-gib 1024 --policy evacuate,overload,balance --moves-out moves.jsonl',
      'lbvm simulate --setup cloudsim-planetlab --trace ../shared/traces/planetlab/20110303',
      'lbvm simulate --setup cloudsim-planetlab --trace ../shared/traces/planetlab/20110303 --policy none --vm-order hash --json',
      'lbvm simulate --trace azure-v2-sample --format azure --hosts 40 --host-cores 48 --host-mem-gib 512  ' +
        '# a folder holding vmtable.csv(.gz) and vm_cpu_readings-file-*.csv(.gz)',
    ],
  });
  command
    .option('--trace <dir>', 'folder of the trace files')
    .option('--format <format>', `trace format: ${TRACE_FORMATS.join(' or ')}`)
    .option('--hosts <n>', 'number of hosts')
    .option('--host-cores <n>', 'CPU cores per host')
    .option('--host-mem-gib <n>', 'memory per host in GiB (default 64)')
    .option('--initial <file>', 'JSON object VM → host for step 0 (default: round-robin)')
    .option(
      '--policy <name>',
      'balance (default), overload, consolidate, evacuate, comma-joined, or a peer: none, proxlb, xo, drs, ovirt, lownode, crs; ' +
        `with --setup cloudsim-planetlab also ${CLOUDSIM_PEERS.join(', ')} (default ${CLOUDSIM_ROUND})`,
    )
    .option(
      '--setup <name>',
      `a whole simulated data centre in place of --format/--hosts/--host-cores: ${SETUPS.join(', ')}`,
    )
    .option(
      '--vm-order <order>',
      `with --setup: which files become which VM type: ${VM_ORDERS.join(', ')}`,
      'directory',
    )
    .option(
      '--ram-limit',
      "with --setup: keep the hosts' 4 GB as a limit all day (CloudSim checks it only at the start)",
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
    if (options.setup !== undefined) return simulateSetup(options);
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
    const hostMemGib = number(options.hostMemGib ?? '64', '--host-mem-gib', { min: 0, exclusiveMin: true });
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
        policy: options.policy ?? 'balance',
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

function simulateSetup(options: SimulateOptions): void {
  const setup = options.setup!;
  if (!(SETUPS as readonly string[]).includes(setup))
    throw new UsageError(`--setup: unknown setup "${setup}"; expected one of: ${SETUPS.join(', ')}`);
  const ignored = (
    [
      ['--hosts', options.hosts],
      ['--host-cores', options.hostCores],
      ['--host-mem-gib', options.hostMemGib],
      ['--initial', options.initial],
      ['--moves-out', options.movesOut],
    ] as const
  ).filter(([, value]) => value !== undefined);
  if (ignored.length > 0)
    throw new UsageError(
      `${ignored.map(([flag]) => flag).join(', ')}: not used with --setup ${setup}, which brings its own hosts ` +
        `and placement; leave ${ignored.length > 1 ? 'them' : 'it'} out`,
    );
  if (options.format !== undefined && options.format !== 'planetlab')
    throw new UsageError(
      `--format: "${options.format}": --setup ${setup} replays PlanetLab days; expected planetlab or no --format`,
    );
  if (!(VM_ORDERS as readonly string[]).includes(options.vmOrder))
    throw new UsageError(`--vm-order: "${options.vmOrder}": expected one of: ${VM_ORDERS.join(', ')}`);
  const traceDir = required(options.trace, '--trace', 'a folder of PlanetLab files (one day)');
  const { config } = loadFor(options);
  const day = readTrace(traceDir, 'planetlab');
  const policy = options.policy ?? CLOUDSIM_ROUND;
  const settings = cloudsimSettings(config, day);
  if (!isCloudsimPeer(policy)) {
    try {
      plannerFor(policy, settings);
    } catch (error) {
      if (error instanceof UsageError)
        throw new UsageError(`${error.message}; with --setup ${setup} also ${CLOUDSIM_PEERS.join(', ')}`);
      throw error;
    }
  }
  const result = runCloudsimDay(day, {
    policy,
    settings,
    order: options.vmOrder as VmOrder,
    ramLimit: options.ramLimit,
  });
  output(options, result, energyText);
}
