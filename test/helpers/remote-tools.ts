/**
 * Recorded-output stand-ins for the tools the openvz driver runs on other hosts: `ssh`, `vzlist`,
 * `vzmigrate`, `vzctl`, `prlctl`, `nproc` and `cat` (for /proc/vz/vestat), put first on PATH. They are
 * not LBVM's: each one appends the argv it received to `calls.jsonl` and answers as the real tool does
 * with what was recorded for its host:
 *
 * - `vzlist -j [-o FIELDS]` prints the recorded containers the way vzctl's src/vzlist.c does: one
 *   field a line, strings between quotes but not escaped (print_json_str), UBC objects of five
 *   counters, only the fields asked with `-o`.
 * - `vzmigrate [--online] DEST CTID` behaves as the host's OpenVZ release does (bin/vzmigrate.in for
 *   OpenVZ 6): it prepends `root@` to DEST itself, so a DEST with a user fails to connect (exit 4); a
 *   live migration of a container that is not running fails (exit 2).
 * - `ssh` does what the real one does with a command: the words after the target are joined with
 *   spaces and run by the remote user's shell (`sh -c`), here in the folder `remote/`, so a badly
 *   quoted name would really run as a command there (a test looks for the files it would make).
 */
import fs from 'node:fs';
import path from 'node:path';
import { tmpDir } from './tmp.ts';

export interface RemoteCall {
  tool: string;
  /** The ssh target the command ran on (for the tools run through ssh). */
  host?: string;
  argv: string[];
}

/** A container as vzlist knows it: field -> value (a string of digits prints as a number, for LONG_MAX). */
export type VzlistRecord = Record<string, unknown>;

export interface RemoteHostRecording {
  /** The containers `vzlist -j -a` prints, in vzlist's own format. */
  vzlist?: VzlistRecord[];
  /** What `prlctl list -j -i -a` prints (as JSON). */
  prlctl?: unknown;
  /** What `cat /proc/vz/vestat` prints. */
  vestat?: string;
  /** What `vzctl --version` prints (`vzctl version 4.9.4` on OpenVZ 6, `vzctl version 7.0.229` on 7); absent: no vzctl. */
  vzctlVersion?: string;
  /** What `nproc` prints. */
  cores?: number;
  /** When set, vzmigrate / prlctl migrate print `stderr` and exit with `code` (1 unless told). */
  migrateFails?: string | { stderr: string; code: number };
}

export interface RemoteTools {
  dir: string;
  binDir: string;
  /** Where the remote commands run: an injected `touch pwned` would make a file here. */
  remoteDir: string;
  env: NodeJS.ProcessEnv;
  calls(): RemoteCall[];
  record(target: string, recording: RemoteHostRecording): void;
}

const RECORD = `
const fs = require('fs');
const path = require('path');
const dir = process.env.STANDIN_DIR;
function record(tool, argv) {
  fs.appendFileSync(path.join(dir, 'calls.jsonl'), JSON.stringify({ tool, host: process.env.STANDIN_HOST, argv }) + '\\n');
}
function recording() {
  const file = path.join(dir, 'hosts', encodeURIComponent(process.env.STANDIN_HOST || '') + '.json');
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
}
`;

const TOOLS: Record<string, string> = {
  ssh: `
const argv = process.argv.slice(2);
record('ssh', argv);
const separator = argv.indexOf('--');
if (separator < 1) { process.stderr.write('ssh stand-in: expected OPTIONS TARGET -- COMMAND\\n'); process.exit(255); }
const target = argv[separator - 1];
const command = argv.slice(separator + 1).join(' ');
const result = require('child_process').spawnSync('/bin/sh', ['-c', command], { cwd: path.join(dir, 'remote'), env: { ...process.env, STANDIN_HOST: target }, stdio: 'inherit' });
process.exit(result.status === null ? 255 : result.status);
`,
  vzlist: `
const argv = process.argv.slice(2);
record('vzlist', argv);
const r = recording();
if (!r.vzlist) { process.stderr.write('vzlist: command not found\\n'); process.exit(127); }
const fieldsAt = argv.indexOf('-o');
const asked = fieldsAt >= 0 ? argv[fieldsAt + 1].split(',') : null;
const UBC = ['held', 'maxheld', 'barrier', 'limit', 'failcnt'];
// vzctl src/vzlist.c: print_json_str, print_ubc, print_one_ve_json, print_ve.
const value = (v) => v === null || v === undefined ? 'null'
  : typeof v === 'string' ? (/^\\d{10,}$/.test(v) ? v : '"' + v + '"')
  : Array.isArray(v) ? '[' + v.map((item) => '"' + item + '"').join(', ') + ']'
  : typeof v === 'object' ? '{\\n' + UBC.map((k) => '      "' + k + '": ' + value(v[k] ?? 0)).join(',\\n') + '\\n    }'
  : String(v);
let out = '[';
r.vzlist.forEach((ct, i) => {
  out += (i ? ',' : '') + '\\n  {';
  (asked || Object.keys(ct)).forEach((field, j) => { out += (j ? ',' : '') + '\\n    "' + field + '": ' + value(ct[field]); });
  out += '\\n  }';
});
process.stdout.write(out + '\\n]\\n');
`,
  vzctl: `
const argv = process.argv.slice(2);
record('vzctl', argv);
const r = recording();
if (!r.vzctlVersion) { process.stderr.write('vzctl: command not found\\n'); process.exit(127); }
if (argv[0] === '--version') { process.stdout.write(r.vzctlVersion + '\\n'); process.exit(0); }
process.exit(2);
`,
  nproc: `
record('nproc', process.argv.slice(2));
process.stdout.write(String(recording().cores ?? 2) + '\\n');
`,
  prlctl: `
const argv = process.argv.slice(2);
record('prlctl', argv);
const r = recording();
if (argv[0] === 'list') { process.stdout.write(JSON.stringify(r.prlctl || [], null, 2) + '\\n'); process.exit(0); }
if (argv[0] === 'migrate') {
  if (r.migrateFails) { process.stderr.write((r.migrateFails.stderr ?? r.migrateFails) + '\\n'); process.exit(r.migrateFails.code ?? 1); }
  process.stdout.write('Migrate the CT ' + argv[1] + ' on ' + argv[2] + '\\nThe CT has been successfully migrated.\\n');
  process.exit(0);
}
process.exit(2);
`,
  vzmigrate: `
// As vzctl bin/vzmigrate.in (OpenVZ 6) behaves; OpenVZ 7's takes [user@]host.
const argv = process.argv.slice(2);
record('vzmigrate', argv);
const r = recording();
const online = argv.includes('--online') || argv.includes('--live');
const [host, ctid] = argv.filter((word) => !word.startsWith('-'));
const release = /version (\\d+)/.exec(r.vzctlVersion || '')?.[1] ?? '4';
const fail = (code, ...lines) => { process.stderr.write(lines.map((line) => 'Error: ' + line + '\\n').join('')); process.exit(code); };
const ct = (r.vzlist || []).find((entry) => String(entry.ctid) === ctid);
if (!ct) fail(10, 'CT #' + ctid + " doesn't exist");
if (online && ct.status !== 'running') fail(2, "Can't perform live migration of a stopped container");
process.stdout.write('Starting ' + (online ? 'live migration' : 'migration') + ' of CT ' + ctid + ' to ' + host + '\\n');
// OpenVZ 6 runs \\$SSH root@\\$host: a host given with a user becomes root@root@host.
if (Number(release) < 7 && host.includes('@')) fail(4, "Can't connect to destination address using public key", 'Please put your public key to destination node');
if (r.migrateFails) { process.stderr.write((r.migrateFails.stderr ?? r.migrateFails) + '\\n'); process.exit(r.migrateFails.code ?? 1); }
process.stdout.write('Preparing remote node\\nSyncing private\\n' + (online ? 'Live migrating container...\\n' : '') + 'Cleaning up\\n');
`,
  cat: `
const argv = process.argv.slice(2);
if (argv.length === 1 && argv[0] === '/proc/vz/vestat') {
  record('cat', argv);
  const r = recording();
  if (r.vestat === undefined) { process.stderr.write('cat: /proc/vz/vestat: No such file or directory\\n'); process.exit(1); }
  process.stdout.write(r.vestat);
  process.exit(0);
}
const result = require('child_process').spawnSync('/bin/cat', argv, { stdio: 'inherit' });
process.exit(result.status === null ? 1 : result.status);
`,
};

export function installRemoteTools(): RemoteTools {
  const dir = tmpDir('lbvm-remote-');
  const binDir = path.join(dir, 'bin');
  const remoteDir = path.join(dir, 'remote');
  for (const sub of [binDir, remoteDir, path.join(dir, 'hosts')]) fs.mkdirSync(sub, { recursive: true });
  for (const [tool, body] of Object.entries(TOOLS)) {
    const file = path.join(binDir, tool);
    fs.writeFileSync(file, `#!${process.execPath}\n${RECORD}${body}`, { mode: 0o755 });
  }
  fs.writeFileSync(path.join(dir, 'calls.jsonl'), '');
  return {
    dir,
    binDir,
    remoteDir,
    env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, STANDIN_DIR: dir },
    calls: () =>
      fs
        .readFileSync(path.join(dir, 'calls.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as RemoteCall),
    record: (target, recording) =>
      fs.writeFileSync(path.join(dir, 'hosts', `${encodeURIComponent(target)}.json`), JSON.stringify(recording)),
  };
}
