/**
 * Folders. `makeDirs`: `mkdir -p` that always ends. Node's own `{ recursive: true }` spins at 100% CPU forever where a
 * filesystem answers ENOENT for a directory whose parent exists (procfs, sysfs: `files:/proc/x`
 * hung a cron collector). Here a parent that exists (or was just made) and a child still refused is
 * final: the error is thrown.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's (or installed package's) root: the nearest folder above this file with a package.json (works from dist/ too). */
export const PACKAGE_ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

export function makeDirs(dir: string, mode?: number, parentMade = false): void {
  try {
    fs.mkdirSync(dir, mode === undefined ? undefined : { mode });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && fs.statSync(dir).isDirectory()) return;
    const parent = path.dirname(dir);
    // Once the parent is there, a second ENOENT will not go away by trying again.
    if (code !== 'ENOENT' || parentMade || parent === dir) throw error;
    makeDirs(parent, mode);
    makeDirs(dir, mode, true);
  }
}
