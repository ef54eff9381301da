/**
 * Running a command on another host over ssh, safely. ssh does not pass an argv to the far side: it
 * joins its arguments with spaces into one string that the remote user's shell parses again. So each
 * argument is quoted here for a POSIX shell (`'...'`, a single quote written `'\''`), and the whole
 * command goes to ssh as one argument after `--`, so neither ssh nor the remote shell can read a VM
 * name as an option, a second command or a substitution.
 */

/** Quotes one argument for a POSIX shell: `x; rm -rf /` -> `'x; rm -rf /'`, `it's` -> `'it'\''s'`. */
export function shellQuote(argument: string): string {
  if (argument.includes('\0'))
    throw new Error(`an argument for the remote shell contains a NUL byte: ${JSON.stringify(argument)}`);
  return `'${argument.replace(/'/g, `'\\''`)}'`;
}

/** The remote command line for `argv`, every word quoted. */
export function remoteCommand(argv: string[]): string {
  return argv.map(shellQuote).join(' ');
}

/** An ssh target (`host`, `user@host`, `user@[fe80::1]`): never an option, never with spaces. */
export function checkSshTarget(target: string): string | null {
  if (target.startsWith('-')) return 'must not start with "-" (ssh would read it as an option)';
  if (!/^[A-Za-z0-9._@:%[\]-]+$/.test(target))
    return 'expected [user@]host with letters, digits and . _ - @ : [ ] only';
  return null;
}

/** The ssh argv that runs `argv` on `target`: ssh OPTIONS TARGET -- 'arg1' 'arg2' ... */
export function sshArgv(sshOptions: string[], target: string, argv: string[]): string[] {
  const problem = checkSshTarget(target);
  if (problem) throw new Error(`ssh target ${JSON.stringify(target)}: ${problem}`);
  return [...sshOptions, target, '--', remoteCommand(argv)];
}
