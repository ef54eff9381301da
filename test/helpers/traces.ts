/**
 * The real VM utilisation traces (`shared/traces`, beside the repository; never copied into it) for
 * the simulator's tests and benchmarks: $SHARED_TRACES when set, else the nearest ancestor folder of
 * the repository that holds `shared/traces` (a clone or a worktree anywhere below the workplace),
 * else the workplace's own /work/shared/traces (a clone in a temporary folder elsewhere).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WORKPLACE_TRACES = '/work/shared/traces';

/** The `shared/traces` folder, or an error saying where it was looked for and where it belongs. */
export function sharedTraces(): string {
  const given = process.env.SHARED_TRACES;
  if (given) {
    if (fs.existsSync(given)) return path.resolve(given);
    throw new Error(`SHARED_TRACES: folder "${given}" not found; expected the shared/traces folder`);
  }
  for (let dir = path.dirname(ROOT); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'shared/traces'))) return path.join(dir, 'shared/traces');
    if (dir === path.dirname(dir)) break;
  }
  if (fs.existsSync(WORKPLACE_TRACES)) return WORKPLACE_TRACES;
  throw new Error(
    `the real VM traces (shared/traces) are in no folder above ${ROOT}, nor in ${WORKPLACE_TRACES}: the simulator's ` +
      `tests and bench/quality replay them. CI and the workplace keep shared/ beside the repository ` +
      `(../shared/traces); clone next to it, or give the folder in SHARED_TRACES`,
  );
}

/** One trace folder below shared/traces, e.g. `planetlab/20110306`. */
export function sharedTrace(name: string): string {
  return path.join(sharedTraces(), name);
}
