/**
 * Runs `lbvm collect` with the given arguments exactly as bin/lbvm.js does (tsx loads the sources),
 * then prints this process's CPU time and peak RSS as one JSON line on fd 3. Used by bench/collect.ts
 * to measure a whole cron round: process start, module loading, measuring, writing.
 */
import fs from 'node:fs';
import { main } from '../src/cli/lbvm.ts';

await main([process.argv[0]!, 'lbvm', ...process.argv.slice(2)]);
const usage = process.resourceUsage();
fs.writeSync(3, `${JSON.stringify({ cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, maxRssBytes: usage.maxRSS * 1024, exitCode: process.exitCode ?? 0 })}\n`);
