// Runs `lbvm collect` exactly as bin/lbvm.js does (the compiled dist/ when it is fresh, else the
// sources through tsx), then prints this process's CPU time and peak RSS as one JSON line on fd 3.
// Used by bench/collect.ts to measure a whole cron round: process start, loading, measuring, writing.
import fs from 'node:fs';
import { run } from '../bin/entry.js';

process.argv = [process.argv[0], 'lbvm', ...process.argv.slice(2)];
await run('lbvm');
const usage = process.resourceUsage();
fs.writeSync(
  3,
  `${JSON.stringify({ cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000, maxRssBytes: usage.maxRSS * 1024, exitCode: process.exitCode ?? 0 })}\n`,
);
