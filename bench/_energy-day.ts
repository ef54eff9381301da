// One day of bench/energy through one planner, in its own process so days run in parallel.
// argv[2]: {"dir", "policy", "order"}; prints the CloudsimDayResult (without the simulator's refusals) as one JSON line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { cloudsimSettings, runCloudsimDay } from '../src/sim/cloudsim-run.ts';
import type { VmOrder } from '../src/sim/cloudsim.ts';
import { readTrace } from '../src/sim/traces.ts';

const spec = JSON.parse(process.argv[2]!) as { dir: string; policy: string; order: VmOrder };
// The operator's LBVM_* overrides and LBVM_CONFIG apply, as to the monitor; no ./lbvm.yaml is picked up by accident.
const { config } = loadConfig({ env: process.env, cwd: fs.mkdtempSync(path.join(os.tmpdir(), 'lbvm-energy-')) });
const day = readTrace(spec.dir, 'planetlab');
const result = runCloudsimDay(day, { policy: spec.policy, settings: cloudsimSettings(config, day), order: spec.order });
process.stdout.write(`${JSON.stringify({ ...result, sim: { ...result.sim, refusedByReason: undefined } })}\n`);
