/**
 * The small state file (`collect.stateFile`) that keeps counters between cron runs, so each round's
 * CPU, disk and network are averages since the previous round. One entry per node, so collectors of
 * several logical hosts on one machine can share the file. Written to a temporary file and renamed:
 * a crash leaves the old state or the new one, never half of one. A missing or unreadable file only
 * costs a one-second baseline measurement.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ProcReading } from './proc.ts';
import type { VmCounters } from './samples.ts';
import { makeDirs } from '../src/util/dirs.ts';

export interface NodeState {
  proc?: ProcReading;
  vms?: Record<string, VmCounters>;
}

interface StateFile {
  version: 1;
  nodes: Record<string, NodeState>;
}

function readAll(file: string): StateFile {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as StateFile;
    if (parsed && parsed.version === 1 && typeof parsed.nodes === 'object' && parsed.nodes !== null) return parsed;
  } catch {
    /* missing or corrupt: start afresh */
  }
  return { version: 1, nodes: {} };
}

export function loadNodeState(file: string, node: string): NodeState {
  return readAll(file).nodes[node] ?? {};
}

export function saveNodeState(file: string, node: string, state: NodeState): void {
  const all = readAll(file);
  all.nodes[node] = state;
  makeDirs(path.dirname(file));
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(all));
  fs.renameSync(temporary, file);
}
