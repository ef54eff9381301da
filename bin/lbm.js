#!/usr/bin/env node
// `lbm`: the operator's tool. See src/cli/lbm.ts.
import { run } from './entry.js';

await run('lbm');
