// Shared by bin/lbvm.js and bin/lbm.js. Installed from the package (`npm pack`, then `npm install -g`:
// no sources beside it), a command runs its bundle, dist/bundle/NAME.cjs, which holds every dependency
// but pino, through V8's code cache (bin/code-cache.js). In a clone it runs the compiled JavaScript in
// dist/ (the bundle when there is one) when that is at least as new as every TypeScript source
// (deploy/setup.sh builds it), else the sources through tsx, a development dependency. The compiled
// path starts about half a second faster per command, the bundle a quarter of a second faster again,
// and its code cache a tenth to a fifth of a second faster again.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { runBundle } from './code-cache.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = ['src', 'collectors', 'policies'];

function newestSourceMs(dir) {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSourceMs(full));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** Installed from the package: the bundle and no sources. */
function installed() {
  return !fs.existsSync(path.join(root, 'src'));
}

/** The compiled JavaScript (and bundle) is at least as new as every TypeScript source: a command runs it, not tsx. */
export function compiledIsFresh() {
  const stamp = path.join(root, 'dist', '.build-stamp');
  if (process.env.LBVM_FROM_SOURCE === '1' || !fs.existsSync(stamp)) return false;
  const built = fs.statSync(stamp).mtimeMs;
  return SOURCES.every((dir) => newestSourceMs(path.join(root, dir)) <= built);
}

/** Runs `main` of src/cli/NAME.ts (or its compiled twin). */
export async function run(name) {
  // `lbm jobs | head`: a reader that stops early is not an error.
  process.stdout.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  const bundled = path.join(root, 'dist', 'bundle', `${name}.cjs`);
  let module;
  if (installed()) {
    if (!fs.existsSync(bundled)) {
      process.stderr.write(
        `${name}: ${bundled} is missing: this package was packed without its bundle (npm pack builds it)\n`,
      );
      process.exit(70);
    }
    module = runBundle(bundled, name, process.argv[2]);
  } else if (compiledIsFresh()) {
    module = fs.existsSync(bundled)
      ? runBundle(bundled, name, process.argv[2])
      : await import(pathToFileURL(path.join(root, 'dist', 'src', 'cli', `${name}.js`)).href);
  } else {
    const { register } = await import('tsx/esm/api');
    register();
    module = await import(pathToFileURL(path.join(root, 'src', 'cli', `${name}.ts`)).href);
  }
  await module.main(process.argv);
  if (name === 'lbm') {
    // `lbm` is done when main returns (a command that follows or waits does so inside it), and its
    // logs are written synchronously. End now: after a reply larger than a socket read (the published
    // VMs), ioredis's parser keeps a 50 ms interval that shrinks its buffer pool, which held the
    // process a second past its answer (a third of `lbm vms` and `lbm plan` at 30,000 VMs).
    const end = () => process.exit(process.exitCode ?? 0);
    if (process.stdout.writableLength > 0) process.stdout.once('drain', end);
    else end();
    return;
  }
  // The command is done (daemons return only after their shutdown). A client a command forgot to
  // close must not keep the process alive, retrying: leave 2 s for a natural exit, then end it.
  setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
}
