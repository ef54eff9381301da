/**
 * The code's shape: Prettier's (.prettierrc.json, 120 columns) on every .ts, .js and .mjs file, and no
 * line over 160 characters (Prettier does not break a long string) except a line holding a URL and, in
 * tests, test data: a line inside a multi-line template literal, or one that is a string, template
 * or regular expression literal alone (a recorded answer, an expected message).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CommandFailed, runFile } from '../../src/util/processes.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAX_LINE = 160;
const FOLDERS = ['src', 'policies', 'collectors', 'test', 'bench', 'bin', 'deploy'];
const CODE = /\.(ts|js|mjs|sh)$/;

function* files(dir: string): Iterable<string> {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* files(full);
    else if (CODE.test(entry.name)) yield full;
  }
}

/**
 * For each line of a JavaScript or TypeScript text, whether it starts inside a template literal. A
 * small scanner: strings, templates with `${}` nesting, comments, and regular expression literals
 * (a `/` where an expression may start).
 */
export function linesInTemplate(text: string): boolean[] {
  const starts: boolean[] = [false];
  const stack: ('template' | number)[] = []; // open templates, and brace depth inside each `${`
  let state: 'code' | 'template' | "'" | '"' | 'line' | 'block' | 'regex' = 'code';
  let braces = 0;
  let inClass = false;
  let last = ''; // the last significant code character, to tell a regex from a division
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '\n') {
      if (state === 'line') state = 'code';
      starts.push(state === 'template');
      continue;
    }
    switch (state) {
      case 'code':
        if (c === '/' && next === '/') state = 'line';
        else if (c === '/' && next === '*') state = 'block';
        else if (c === "'" || c === '"') state = c;
        else if (c === '`') state = 'template';
        else if (c === '/' && (last === '' || '(,=:[!&|?{};+-*%<>~^'.includes(last))) state = 'regex';
        else if (c === '{') braces++;
        else if (c === '}') {
          if (braces === 0 && stack.length > 0) {
            stack.pop();
            state = 'template';
            braces = typeof stack[stack.length - 1] === 'number' ? (stack.pop() as number) : 0;
            continue;
          }
          braces--;
        }
        if (!/\s/.test(c)) last = c;
        break;
      case 'template':
        if (c === '\\') i++;
        else if (c === '`') {
          state = 'code';
          last = '`';
        } else if (c === '$' && next === '{') {
          stack.push(braces, 'template');
          braces = 0;
          state = 'code';
          last = '{';
          i++;
        }
        break;
      case "'":
      case '"':
        if (c === '\\') i++;
        else if (c === state) {
          state = 'code';
          last = c;
        }
        break;
      case 'regex':
        if (c === '\\') i++;
        else if (c === '[') inClass = true;
        else if (c === ']') inClass = false;
        else if (c === '/' && !inClass) {
          state = 'code';
          last = 'r';
        }
        break;
      case 'block':
        if (c === '*' && next === '/') {
          state = 'code';
          i++;
        }
        break;
      case 'line':
        break;
    }
  }
  return starts;
}

describe('code shape', () => {
  it('Prettier finds every file formatted (npx prettier --write . fixes it)', async () => {
    try {
      await runFile('npx', ['--no-install', 'prettier', '--check', '--log-level', 'warn', '.'], {
        cwd: ROOT,
        timeoutMs: 120_000,
      });
    } catch (error) {
      if (!(error instanceof CommandFailed)) throw error;
      assert.fail(`not formatted (exit ${error.exitCode}):\n${error.stderr}${error.stdout}`);
    }
  });

  it(`no line is over ${MAX_LINE} characters but URLs and test data`, () => {
    const long: string[] = [];
    let lines = 0;
    for (const folder of FOLDERS) {
      for (const file of files(path.join(ROOT, folder))) {
        const text = fs.readFileSync(file, 'utf8');
        const inTemplate = /\.(ts|js|mjs)$/.test(file) ? linesInTemplate(text) : [];
        const isTest = file.startsWith(path.join(ROOT, 'test') + path.sep);
        text.split('\n').forEach((line, index) => {
          lines++;
          if (line.length <= MAX_LINE || /[a-z]+:\/\//.test(line)) return;
          if (isTest && (inTemplate[index] || /^\s*[`'"/]/.test(line))) return;
          long.push(`${path.relative(ROOT, file)}:${index + 1} (${line.length})`);
        });
      }
    }
    assert.ok(lines > 20_000, `only ${lines} lines read`);
    assert.deepEqual(long, []);
  });
});
