/**
 * Host names become file names. A name is data from a hypervisor or an operator: it may be
 * `../../etc`, `x; rm -rf /`, 10 KB long or not valid UTF-16. The encoding keeps [A-Za-z0-9.-] and
 * writes every other UTF-16 code unit as `_XXXX` (hex), so it is injective, never contains `/`, never
 * starts with a dot, and never is `.` or `..`. Names whose encoding would pass 200 bytes keep a prefix
 * and end in the SHA-256 of the name. The real name always travels inside the sample itself.
 */
import type { createHash as CreateHash } from 'node:crypto';
import { createRequire } from 'node:module';

// node:crypto only for the rare long name: a cron collect round does not load it.
const require = createRequire(import.meta.url);

const SAFE = /^[A-Za-z0-9.-]$/;
const MAX_FILE_NAME = 200;

export function encodeName(name: string): string {
  if (name.length === 0) throw new Error('an empty name cannot be stored');
  let encoded = '';
  for (let index = 0; index < name.length; index++) {
    const char = name[index]!;
    if (SAFE.test(char) && !(index === 0 && char === '.')) encoded += char;
    else encoded += `_${name.charCodeAt(index).toString(16).padStart(4, '0')}`;
    if (encoded.length > MAX_FILE_NAME) break;
  }
  if (encoded.length > MAX_FILE_NAME) {
    const { createHash } = require('node:crypto') as { createHash: typeof CreateHash };
    const digest = createHash('sha256').update(Buffer.from(name, 'utf16le')).digest('hex');
    return `${encoded.slice(0, 100)}~${digest}`;
  }
  return encoded;
}

/** The name back from a file name, or null when it was shortened with a hash. */
export function decodeName(encoded: string): string | null {
  if (encoded.includes('~')) return null;
  return encoded.replace(/_([0-9a-f]{4})/g, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}
