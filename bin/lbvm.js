#!/usr/bin/env node
// `lbvm`: the runtime (collect, monitor, worker, agent, simulate, demo). See src/cli/lbvm.ts.
import { run } from './entry.js';

await run('lbvm');
