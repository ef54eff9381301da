/**
 * The layering of ../shared/DESIGN.md ("Parts and where they live"), checked on the sources: each part
 * imports only the parts it may. A type-only import of the config's shape (`import type { LbvmConfig }`)
 * is allowed to every part that is given a config; the leaves every part shares are errors, log,
 * units and util.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LEAVES = ['src/errors', 'src/log', 'src/units', 'src/util'];

/** What each part may import besides itself (value imports). */
const MAY_IMPORT: Record<string, string[]> = {
  'src/model': [],
  policies: ['src/model'],
  'src/util': ['src/errors'],
  'src/errors': [],
  'src/units': [],
  'src/log': ['src/errors', 'src/units', 'src/util'],
  'src/config': ['src/model', 'policies', ...LEAVES],
  'src/store': ['src/model', ...LEAVES],
  collectors: ['src/model', 'src/store', 'src/drivers', ...LEAVES],
  'src/drivers': ['src/model', ...LEAVES],
  'src/queue': ['src/model', 'src/drivers', 'src/config', ...LEAVES],
  'src/monitor': ['src/model', 'src/store', 'policies', 'src/queue', 'src/config', ...LEAVES],
  'src/sim': ['src/model', 'policies', 'src/config', ...LEAVES],
  'src/cli': ['*'],
};
/** Parts that are never given the config, so may not even name its type. */
const NO_CONFIG = new Set(['src/model', 'policies', 'src/util', 'src/errors', 'src/units']);

function partOf(file: string): string {
  const [top, second] = path.relative(ROOT, file).split(path.sep);
  if (top !== 'src') return top!;
  return `src/${second!.replace(/\.ts$/, '')}`;
}

function* sources(dir: string): Iterable<string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* sources(full);
    else if (entry.name.endsWith('.ts')) yield full;
  }
}

describe('layering', () => {
  it('every part imports only what DESIGN.md allows it (nothing in src/drivers imports src/queue)', () => {
    const problems: string[] = [];
    let checked = 0;
    for (const top of ['src', 'policies', 'collectors']) {
      for (const file of sources(path.join(ROOT, top))) {
        const from = partOf(file);
        const allowed = MAY_IMPORT[from];
        if (!allowed) {
          problems.push(`${path.relative(ROOT, file)}: part ${from} is not in the layering table`);
          continue;
        }
        const text = fs.readFileSync(file, 'utf8');
        const imports = /^(?:import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)/gms;
        for (const match of text.matchAll(imports)) {
          checked++;
          const typeOnly = Boolean(match[1]);
          const to = partOf(path.resolve(path.dirname(file), match[2] ?? match[3]!));
          if (to === from || allowed.includes('*') || allowed.includes(to)) continue;
          if (typeOnly && to === 'src/config' && !NO_CONFIG.has(from)) continue;
          problems.push(`${path.relative(ROOT, file)} (${from}) imports ${to}${typeOnly ? ' (type)' : ''}`);
        }
      }
    }
    assert.ok(checked > 300, `only ${checked} imports found: the pattern no longer matches the sources`);
    assert.deepEqual(problems, []);
  });
});
