#!/usr/bin/env node
// Entry point of `lbvm`: TypeScript sources are loaded through tsx, no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/lbvm.ts');
await main(process.argv);
