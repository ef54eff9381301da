// One case of bench/quality (a trace at one size), run in its own process so cases run in parallel.
// argv[2]: {"dir", "format", "targetUse", "hostCores", "hostMemGiB"}; prints the CaseResult as one JSON line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { hostsFor, runCase } from '../src/sim/quality.ts';
import { readTrace } from '../src/sim/traces.ts';

const spec = JSON.parse(process.argv[2]!) as {
  dir: string;
  format: string;
  name?: string;
  targetUse: number;
  hostCores: number;
  hostMemGiB: number;
};
// The operator's LBVM_* overrides and LBVM_CONFIG apply, as to the monitor; no ./lbvm.yaml is picked up by accident.
const { config } = loadConfig({ env: process.env, cwd: fs.mkdtempSync(path.join(os.tmpdir(), 'lbvm-quality-')) });
const read = readTrace(spec.dir, spec.format);
const trace = spec.name ? { ...read, name: spec.name } : read;
const hosts = hostsFor(trace, spec.hostCores, spec.targetUse);
const result = runCase(
  { trace, targetUse: spec.targetUse, hosts, hostCores: spec.hostCores, hostMemBytes: spec.hostMemGiB * 1024 ** 3 },
  config,
  config.monitor.policies.join(','),
  (label, s) =>
    process.stderr.write(
      `${trace.name}@${Math.round(spec.targetUse * 100)}% ${label}: ${s.migrations} ` +
        `migrations, imbalance ${s.meanImbalance}, overloaded ${s.overloadedHostSteps}\n`,
    ),
);
process.stdout.write(`${JSON.stringify(result)}\n`);
