/**
 * The real VM utilisation traces (`shared/traces`, beside the repository; never copied into it) for
 * the simulator's tests and benchmarks: the nearest ancestor folder of the repository that holds
 * `shared/traces`, so a clone or a worktree anywhere below the workplace finds them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The `shared/traces` folder, or an error saying where it was looked for and where it belongs. */
export function sharedTraces(): string {
  for (let dir = path.dirname(ROOT); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'shared/traces'))) return path.join(dir, 'shared/traces');
    if (dir === path.dirname(dir)) {
      throw new Error(
        `the real VM traces (shared/traces) are in no folder above ${ROOT}: the simulator's tests and bench/quality replay them. ` +
          `CI and the workplace keep shared/ beside the repository (../shared/traces); clone next to it (for example /work/<name>) to run these`,
      );
    }
  }
}

/** One trace folder below shared/traces, e.g. `planetlab/20110306`. */
export function sharedTrace(name: string): string {
  return path.join(sharedTraces(), name);
}
