/**
 * Loads the configuration: the YAML file, then LBVM_* environment variables, then command-line
 * flags, validated at once by the schema. Every problem becomes one line naming where it came from
 * (file or variable), the key, the value and what was expected; all are thrown together as a
 * ConfigError (exit code 2).
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { configSchema, type LbvmConfig } from './schema.ts';
import { redactUrl } from '../util/address.ts';

export const DEFAULT_CONFIG_PATH = './lbvm.yaml';
/**
 * Environment variables that are not config keys but belong to LBVM: LBVM_FROM_SOURCE=1 makes bin/
 * run the TypeScript sources; LBVM_CACHE_DIR, LBVM_CODE_CACHE and LBVM_CODE_CACHE_DEBUG steer its
 * code cache (bin/code-cache.js); deploy/influxdb/setup.sh reads LBVM_INFLUX_PASSWORD.
 */
export const NON_KEY_ENV = new Set([
  'LBVM_CONFIG',
  'LBVM_AGENT_TOKEN',
  'LBVM_PROXMOX_TOKEN',
  'LBVM_FROM_SOURCE',
  'LBVM_CACHE_DIR',
  'LBVM_CODE_CACHE',
  'LBVM_CODE_CACHE_DEBUG',
  'LBVM_INFLUX_PASSWORD',
]);

export interface LoadOptions {
  /** --config; else LBVM_CONFIG; else ./lbvm.yaml when it exists. */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Command-line flags, by dotted key path (`store.url`), applied last. */
  overrides?: Record<string, unknown>;
  cwd?: string;
}

export interface LoadedConfig {
  config: LbvmConfig;
  /** The file read, or null when only defaults and environment were used. */
  file: string | null;
}

type Path = string[];

/** Unwraps defaults, optionals and transforms to the schema underneath. */
function unwrap(schema: z.ZodTypeAny): z.ZodTypeAny {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodDefault) current = current._def.innerType;
    else if (current instanceof z.ZodOptional || current instanceof z.ZodNullable) current = current._def.innerType;
    else if (current instanceof z.ZodEffects) current = current._def.schema;
    else return current;
  }
}

/** `spoolMaxBytes` -> `SPOOL_MAX_BYTES` */
function toEnvSegment(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

/** Every leaf key of the schema with its environment variable name. Objects are walked; records and arrays are leaves. */
export function envKeys(schema: z.ZodTypeAny = configSchema, prefix: Path = []): Map<string, Path> {
  const result = new Map<string, Path>();
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodTypeAny>)) {
      for (const [env, keyPath] of envKeys(child, [...prefix, key])) result.set(env, keyPath);
    }
  } else {
    result.set(`LBVM_${prefix.map(toEnvSegment).join('_')}`, prefix);
  }
  return result;
}

function setPath(target: Record<string, unknown>, keyPath: Path, value: unknown): void {
  let node = target;
  for (const key of keyPath.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1]!] = value;
}

function getPath(target: unknown, keyPath: (string | number)[]): unknown {
  let node = target;
  for (const key of keyPath) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

/** Shows a value as the user wrote it, shortened. */
function show(value: unknown): string {
  if (value === undefined) return '(missing)';
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** Environment values are read as YAML scalars: `10` is a number, `true` a boolean, `[a, b]` a list. */
function parseEnvValue(raw: string): unknown {
  try {
    return YAML.parse(raw);
  } catch {
    return raw;
  }
}

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];
  const explicit = options.configPath ?? env.LBVM_CONFIG;
  const file = path.resolve(cwd, explicit ?? DEFAULT_CONFIG_PATH);
  const fileLabel = explicit ?? DEFAULT_CONFIG_PATH;
  let raw: Record<string, unknown> = {};
  let usedFile: string | null = null;

  if (fs.existsSync(file)) {
    usedFile = file;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError([`${fileLabel}: cannot read the config file (${(error as Error).message})`]);
    }
    const document = YAML.parseDocument(text, { prettyErrors: true });
    if (document.errors.length > 0) {
      throw new ConfigError(
        document.errors.map((error) => {
          const line = error.linePos?.[0];
          return `${fileLabel}${line ? `:${line.line}:${line.col}` : ''}: YAML syntax error: ${error.message.split('\n')[0]}`;
        }),
      );
    }
    const parsed = document.toJS() as unknown;
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new ConfigError([
          `${fileLabel}: the top level is ${show(parsed)}; expected a mapping of keys (node:, store:, redis:, ...)`,
        ]);
      }
      raw = parsed as Record<string, unknown>;
    }
  } else if (explicit) {
    throw new ConfigError([
      `${fileLabel}: config file not found (given by ${options.configPath ? '--config' : 'LBVM_CONFIG'}); expected a readable YAML file`,
    ]);
  }

  // Where each key's value came from, for messages.
  const sources = new Map<string, string>();
  const keys = envKeys();
  for (const [name, value] of Object.entries(env)) {
    // An empty variable (`LBVM_REDIS_SENTINEL_PASSWORD=`, a template's unset value) counts as unset: read as
    // YAML it would be null, and every command would stop on "expected string, got null".
    if (!name.startsWith('LBVM_') || NON_KEY_ENV.has(name) || value === undefined || value.trim() === '') continue;
    const keyPath = keys.get(name);
    if (!keyPath) {
      // A variable named like a secret is never echoed, even when it is not one of ours.
      const shown = /(TOKEN|PASSWORD|SECRET)/i.test(name) ? '***' : show(value);
      problems.push(
        `${name}: unknown LBVM_ environment variable (value ${shown}); expected one of the ` +
          `config keys' variables, e.g. LBVM_STORE_URL, LBVM_REDIS_URL, LBVM_MONITOR_INTERVAL`,
      );
      continue;
    }
    setPath(raw, keyPath, parseEnvValue(value));
    sources.set(keyPath.join('.'), name);
  }
  for (const [dotted, value] of Object.entries(options.overrides ?? {})) {
    if (value === undefined) continue;
    setPath(raw, dotted.split('.'), value);
    sources.set(dotted, 'command line');
  }

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      if (issue.code === z.ZodIssueCode.unrecognized_keys) {
        for (const key of issue.keys) {
          const where = [...issue.path, key].join('.');
          const parent = unwrap(schemaAt(issue.path));
          const allowed = parent instanceof z.ZodObject ? Object.keys(parent.shape).join(', ') : '';
          problems.push(
            `${fileLabel}: ${where}: unknown key (value ${show(getPath(raw, [...issue.path, key]))}); expected one of: ${allowed}`,
          );
        }
        continue;
      }
      const dotted = issue.path.join('.');
      const source = sources.get(dotted) ?? fileLabel;
      const value = getPath(raw, issue.path);
      const expected = describeExpectation(issue);
      problems.push(`${source}: ${dotted || '(top level)'}: ${show(value)}: ${expected}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { config: result.data!, file: usedFile };
}

function schemaAt(keyPath: (string | number)[]): z.ZodTypeAny {
  let node: z.ZodTypeAny = configSchema;
  for (const key of keyPath) {
    const inner = unwrap(node);
    if (inner instanceof z.ZodObject) node = (inner.shape as Record<string, z.ZodTypeAny>)[String(key)] ?? inner;
    else if (inner instanceof z.ZodRecord) node = inner._def.valueType;
    else if (inner instanceof z.ZodArray) node = inner._def.type;
    else return inner;
  }
  return node;
}

function describeExpectation(issue: z.ZodIssue): string {
  switch (issue.code) {
    case z.ZodIssueCode.invalid_type:
      if (issue.received === 'undefined') return `required; expected ${issue.expected}`;
      return `expected ${issue.expected}, got ${issue.received}`;
    case z.ZodIssueCode.invalid_enum_value:
      return `expected one of: ${issue.options.join(', ')}`;
    case z.ZodIssueCode.invalid_union:
      return 'expected a string or a number';
    default:
      return issue.message.startsWith('expected')
        ? issue.message
        : `expected ${issue.message.charAt(0).toLowerCase()}${issue.message.slice(1)}`;
  }
}

/** The config with secrets hidden: passwords in URLs, and any key naming a token, password or secret. */
export function redactConfig<T>(value: T): T {
  return redactValue(value, '') as T;
}

function redactValue(value: unknown, key: string): unknown {
  if (typeof value === 'string') {
    if (/(token|password|secret)$/i.test(key) && !/env$/i.test(key)) return '***';
    return redactUrl(value);
  }
  if (Array.isArray(value)) return value.map((item) => redactValue(item, key));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactValue(v, k)]));
  }
  return value;
}
