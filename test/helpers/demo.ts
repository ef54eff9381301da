/**
 * What the demo tests share: the demo's --json summary, and the demo processes a test's own run left
 * (by the folder it gave the demo as TMPDIR: the other lane of npm test may run the other demo at once).
 */
import fs from 'node:fs';
import { tmpDir } from './tmp.ts';

export interface DemoJson {
  driver: string;
  imbalanceBefore: number;
  imbalanceAfter: number;
  balanced: boolean;
  stopReason: string | null;
  hosts: { host: string; cpuShare: number; memUsedShare: number; memCommittedShare: number | null; vms: number }[];
  migrations: { vm: string; from: string; to: string; mode: string; totalMs: number; downtimeMs: number | null }[];
  leftoverProcesses: number;
  reportHtml: string | null;
}

export function lastJson(stdout: string): DemoJson {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as DemoJson;
}

/**
 * A folder for the demo's own (its TMPDIR: it makes its lbvm-demo-* folder there). Short, under /tmp:
 * the QEMU demo's guest sockets live below it and a socket path holds at most 107 bytes.
 */
export function demoTmp(): string {
  return tmpDir('lbvm-d-');
}

/** Processes still running from a demo given `tmp` as its TMPDIR (its command line names its folder). */
export function demoProcesses(tmp: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(`${tmp}/lbvm-demo-`)) found.push(cmdline.replace(/\0/g, ' '));
    } catch {
      /* gone */
    }
  }
  return found;
}
