/**
 * Recorded-output stand-ins for the tools the openvz driver runs on other hosts: `ssh`, `vzlist`,
 * `vzmigrate`, `prlctl` and `cat` (for /proc/vz/vestat), put first on PATH. They are not LBVM's:
 * each one appends the argv it received to `calls.jsonl` and prints the output recorded for its host.
 *
 * `ssh` does what the real one does with a command: the words after the target are joined with
 * spaces and run by the remote user's shell (`sh -c`), here in the folder `remote/`, so a badly
 * quoted name would really run as a command there (a test looks for the files it would make).
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

export interface RemoteHostRecording {
  /** What `vzlist -j -a` prints. */
  vzlist?: unknown;
  /** What `prlctl list -j -i -a` prints. */
  prlctl?: unknown;
  /** What `cat /proc/vz/vestat` prints. */
  vestat?: string;
  /** When set, vzmigrate / prlctl migrate print this on stderr and exit 1. */
  migrateFails?: string;
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
record('vzlist', process.argv.slice(2));
const r = recording();
if (!r.vzlist) { process.stderr.write('vzlist: command not found\\n'); process.exit(127); }
process.stdout.write(JSON.stringify(r.vzlist, null, 2) + '\\n');
`,
  prlctl: `
const argv = process.argv.slice(2);
record('prlctl', argv);
const r = recording();
if (argv[0] === 'list') { process.stdout.write(JSON.stringify(r.prlctl || [], null, 2) + '\\n'); process.exit(0); }
if (argv[0] === 'migrate') {
  if (r.migrateFails) { process.stderr.write(r.migrateFails + '\\n'); process.exit(1); }
  process.stdout.write('Migrate the CT ' + argv[1] + ' on ' + argv[2] + '\\nThe CT has been successfully migrated.\\n');
  process.exit(0);
}
process.exit(2);
`,
  vzmigrate: `
const argv = process.argv.slice(2);
record('vzmigrate', argv);
const r = recording();
if (r.migrateFails) { process.stdout.write('Starting online migration of CT ' + argv[argv.length - 1] + ' to ' + argv[argv.length - 2] + '\\n'); process.stderr.write(r.migrateFails + '\\n'); process.exit(1); }
process.stdout.write('Starting online migration of CT ' + argv[argv.length - 1] + ' to ' + argv[argv.length - 2] + '\\nLive migration completed\\n');
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
    record: (target, recording) => fs.writeFileSync(path.join(dir, 'hosts', `${encodeURIComponent(target)}.json`), JSON.stringify(recording)),
  };
}
