// Runs a command's CommonJS bundle (dist/bundle/NAME.cjs) with V8's code cache: the machine code V8
// compiled for the bundle in an earlier run of the same command, handed back so this run skips most of
// parsing and compiling (Node 20 keeps no such cache for ES modules; module.enableCompileCache is
// Node 22). Measured at 1,000 hosts × 30,000 VMs: `lbm status --json` 221–297 ms with the cache
// against 326–483 ms from the ES module bundle.
//
// The cache is a file per (bundle, build, command) in a private folder of the user's: LBVM_CACHE_DIR,
// else systemd's $CACHE_DIRECTORY (a unit's CacheDirectory=), else $XDG_CACHE_HOME/lbvm, else
// ~/.cache/lbvm. The build id hashes the bundle's content with Node's version and architecture: V8
// checks only a source's length against its cache, so a cache of another build of the same length
// would run that build's code. (V8 itself rejects a cache made under other V8 flags; Node's own flags,
// --cpu-prof or --import, do not matter to it.) Cached data is code: a folder not owned by this user,
// or writable by group or others, is not used. A file is written when the process
// exits, when there was none or V8 rejected it (written whole, then renamed: many commands start at
// once in the demo and the tests), and the files of this bundle's other builds are removed then.
// Any failure means no cache; a command's output and exit code never depend on it.
// LBVM_CODE_CACHE=0 turns it off; LBVM_CODE_CACHE_DEBUG=1 says on stderr what happened.
import crypto from 'node:crypto';
import fs from 'node:fs';
import Module from 'node:module';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';

/** The folder the cache lives in (it may not exist yet). */
export function codeCacheDir(env = process.env) {
  if (env.LBVM_CACHE_DIR) return path.resolve(env.LBVM_CACHE_DIR);
  // systemd's CacheDirectory= (deploy/systemd): the units' daemons have no home (ProtectHome=yes).
  if (env.CACHE_DIRECTORY) return path.resolve(env.CACHE_DIRECTORY.split(':')[0]);
  const base = env.XDG_CACHE_HOME ? path.resolve(env.XDG_CACHE_HOME) : path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'lbvm');
}

/**
 * The cache folder, made (mode 0700) when missing, or why it cannot be used. Only two levels are
 * made (~/.cache and ~/.cache/lbvm): mkdir's own `recursive` spins forever on procfs (src/util/dirs.ts).
 */
function privateDir(dir) {
  for (const made of [dir, path.dirname(dir), dir]) {
    try {
      fs.mkdirSync(made, { mode: 0o700 });
    } catch (error) {
      if (error.code !== 'EEXIST' && error.code !== 'ENOENT') break;
    }
  }
  let stat;
  try {
    stat = fs.statSync(dir);
  } catch (error) {
    return { reason: `${dir}: ${error.code ?? error.message}` };
  }
  if (!stat.isDirectory()) return { reason: `${dir} is not a folder` };
  const uid = process.getuid?.();
  if (uid === undefined || stat.uid !== uid) return { reason: `${dir} is owned by uid ${stat.uid}, not ${uid}` };
  if ((stat.mode & 0o022) !== 0)
    return { reason: `${dir} is writable by group or others (mode ${(stat.mode & 0o777).toString(8)})` };
  return { dir };
}

/**
 * Runs the bundle as a CommonJS module and returns its exports. `command` is the first word of the
 * command line; its own cache file is used when the bundle names it among `COMMAND_NAMES`.
 */
export function runBundle(bundle, tool, command) {
  const debug = process.env.LBVM_CODE_CACHE_DEBUG === '1' ? (line) => fs.writeSync(2, `code cache: ${line}\n`) : null;
  const bytes = fs.readFileSync(bundle);
  const source = bytes.toString('utf8');
  let cache = null;
  if (process.env.LBVM_CODE_CACHE === '0') debug?.('off (LBVM_CODE_CACHE=0)');
  else {
    try {
      cache = openCache(bundle, tool, bytes, command, debug);
    } catch (error) {
      debug?.(`not used: ${error.message}`);
    }
  }
  // The wrapper CommonJS modules run in (Module.wrap's, written out: that one is not documented).
  const wrapped = `(function (exports, require, module, __filename, __dirname) { ${source}\n});`;
  const script = new vm.Script(wrapped, {
    filename: bundle,
    cachedData: cache?.data ?? undefined,
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
  if (cache?.data) debug?.(`${script.cachedDataRejected ? 'rejected' : 'accepted'} ${cache.file}`);
  const module = new Module(bundle);
  module.filename = bundle;
  const run = script.runInThisContext();
  run.call(module.exports, module.exports, Module.createRequire(bundle), module, bundle, path.dirname(bundle));
  const known = module.exports.COMMAND_NAMES;
  const name = Array.isArray(known) && known.includes(command) ? command : 'main';
  if (cache && (!cache.data || script.cachedDataRejected || cache.name !== name)) {
    // Written as the process ends, so the file holds what this command compiled, not only the start.
    process.once('exit', () => {
      try {
        cache.write(script.createCachedData(), name);
      } catch (error) {
        debug?.(`not written: ${error.message}`);
      }
    });
  }
  return module.exports;
}

/** The cached data for this run (null when there is none yet) and how to write it. */
function openCache(bundle, tool, bytes, command, debug) {
  const { dir, reason } = privateDir(codeCacheDir());
  if (!dir) {
    debug?.(`not used: ${reason}`);
    return null;
  }
  // Each installed bundle (a clone, a package) has its slot; a slot keeps one build.
  const slot = crypto.createHash('sha256').update(bundle).digest('hex').slice(0, 12);
  const build = crypto
    .createHash('sha256')
    .update(bytes)
    .update(`\0${process.version}\0${process.arch}`)
    .digest('hex')
    .slice(0, 24);
  const prefix = `${tool}-${slot}-`;
  const fileOf = (name) => path.join(dir, `${prefix}${build}-${name}.v8`);
  // The command's own file, else the one of a run without a known command (--help, --version).
  const names = /^[a-z][a-z-]*$/.test(command ?? '') && command !== 'main' ? [command, 'main'] : ['main'];
  for (const name of names) {
    try {
      return { file: fileOf(name), name, data: fs.readFileSync(fileOf(name)), write };
    } catch {
      // none (yet)
    }
  }
  debug?.(`none in ${dir}`);
  return { data: null, write };

  function write(cached, name) {
    const target = fileOf(name);
    const temporary = `${target}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
    try {
      fs.writeFileSync(temporary, cached, { mode: 0o600 });
      fs.renameSync(temporary, target);
    } catch (error) {
      fs.rmSync(temporary, { force: true });
      throw error;
    }
    debug?.(`written ${target} (${cached.length} bytes)`);
    for (const entry of fs.readdirSync(dir)) {
      if (entry.startsWith(prefix) && !entry.startsWith(`${prefix}${build}-`))
        fs.rmSync(path.join(dir, entry), { force: true });
    }
  }
}
