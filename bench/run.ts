/**
 * `npm run bench -- NAME [args]`: runs bench/NAME.ts, which prints exactly one JSON object on stdout
 * (progress goes to stderr). Benchmarks report medians and ratios: these machines are shared and noisy.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const available = fs
  .readdirSync(here)
  .filter((file) => file.endsWith('.ts') && file !== 'run.ts' && !file.startsWith('_'))
  .map((file) => file.slice(0, -3))
  .sort();
const name = process.argv[2];
if (!name || !available.includes(name)) {
  process.stderr.write(
    `usage: npm run bench -- NAME [args]\n${name ? `unknown benchmark "${name}". ` : ''}available: ${available.length ? available.join(', ') : '(none yet)'}\n`,
  );
  process.exit(2);
}
process.argv.splice(2, 1);
// Commands run as an operator's do: from the compiled bundle, built now if a source is newer.
execFileSync('bash', [path.join(here, '..', 'deploy', 'build.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
await import(pathToFileURL(path.join(here, `${name}.ts`)).href);
