#!/usr/bin/env node
// Entry point of `lbm`: TypeScript sources are loaded through tsx, no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/lbm.ts');
await main(process.argv);
