/**
 * Reading a Proxmox migration task: its UPID, its exit status and its log lines, as Proxmox's own code
 * writes them. Pure: no I/O. The shapes, and where they come from:
 *
 * - UPID `UPID:node:pid:pstart:starttime:type:id:user:`, pid/pstart/starttime in hex
 *   (pve-common PVE/Tools.pm `upid_decode`).
 * - Exit status: `OK`, `WARNINGS: N` (the task ran, N warnings: a success) or an error text
 *   (pve-common PVE/Tools.pm `upid_status_is_error`: `!($status eq 'OK' || $status =~ m/^WARNINGS: \d+$/)`).
 * - Log pages: `GET .../tasks/{upid}/log?start=S&limit=L` answers `[{ n, t }]`, `n` the 1-based line
 *   number; an empty log is answered `[{ n: 1, t: "no content" }]` (pve-common PVE/Tools.pm
 *   `dump_logfile_by_filehandle`, "ExtJS store.guaranteeRange() does not like empty array").
 * - Lines written by qemu-server PVE/QemuMigrate.pm and pve-container PVE/LXC/Migrate.pm through
 *   pve-guest-common PVE/AbstractMigrate.pm `log`, which prefixes `YYYY-MM-DD HH:MM:SS `:
 *     `migration downtime limit: 100 ms`
 *     `migration active, transferred 512.0 MiB of 2.0 GiB VM-state, 110.2 MiB/s`
 *     `average migration speed: 806.6 MiB/s - downtime 59 ms`      (absent when it took under 1 s)
 *     `migration completed, transferred 11.7 GiB VM-state`
 *     `auto-increased downtime to continue migration: 200 ms`
 *     `shutdown CT 101` ... `start container on target node` ... `migration finished successfully (duration 00:00:12)`
 *   and, printed without a timestamp by qemu-server PVE/QemuServer/BlockJob.pm for local disks:
 *     `drive-scsi0: transferred 1.0 GiB of 32.0 GiB (3.13%) in 5s`
 */
import type { MigrationProgress } from '../../model/index.ts';
import { parseBytes } from '../../units.ts';

export interface Upid {
  node: string;
  /** The task's start, epoch seconds on the node's clock. */
  startTimeSec: number;
  /** `qmigrate`, `vzmigrate`, `hamigrate`, ... */
  type: string;
  id: string;
  user: string;
}

/** `UPID:pve1:0000ABCD:0001E240:6553F0A0:qmigrate:100:root@pam:` -> its parts, or null when it is not a UPID. */
export function parseUpid(upid: string): Upid | null {
  const match = upid.match(/^UPID:([^:]+):[0-9A-Fa-f]{8,}:[0-9A-Fa-f]{8,}:([0-9A-Fa-f]{8,}):([^:]+):([^:]*):([^:]+):/);
  return match
    ? { node: match[1]!, startTimeSec: parseInt(match[2]!, 16), type: match[3]!, id: match[4]!, user: match[5]! }
    : null;
}

/** Proxmox's own rule: `OK` and `WARNINGS: N` are successes, anything else (or nothing) is an error. */
export function taskSucceeded(exitstatus: string | undefined): boolean {
  return exitstatus === 'OK' || /^WARNINGS: \d+$/.test(exitstatus ?? '');
}

/** One line of a task log page. */
export interface TaskLogEntry {
  n: number;
  t: string;
}

/** The placeholder Proxmox answers for an empty log: not a line of the task. */
export function isEmptyLogPlaceholder(entries: readonly TaskLogEntry[], start: number): boolean {
  return start === 0 && entries.length === 1 && entries[0]!.n === 1 && entries[0]!.t === 'no content';
}

/** "500.0 MiB" / "1.2 GiB" in a log line -> bytes. */
function logBytes(text: string): number | undefined {
  return parseBytes(text.replace(/\s+/g, '')) ?? undefined;
}

const SIZE = String.raw`([\d.]+\s*[KMGT]?i?B)`;

/**
 * Progress in one line: memory (`migration active, transferred X of Y VM-state`) or a local disk's
 * mirror (`drive-scsi0: transferred X of Y (p%)`), named by `stream` (`VM-state`, `drive-scsi0`).
 */
export function parseProgressLine(line: string): { stream: string; bytesCopied: number; bytesTotal: number } | null {
  const memory = line.match(new RegExp(String.raw`transferred ${SIZE} of ${SIZE} VM-state`));
  const disk = memory ? null : line.match(new RegExp(String.raw`(?:^|\s)([\w.-]+): transferred ${SIZE} of ${SIZE} \(`));
  const match = memory ?? disk;
  if (!match) return null;
  const [copiedText, totalText] = memory ? [match[1]!, match[2]!] : [match[2]!, match[3]!];
  const copied = logBytes(copiedText);
  const total = logBytes(totalText);
  return copied !== undefined && total !== undefined
    ? { stream: memory ? 'VM-state' : match[1]!, bytesCopied: copied, bytesTotal: total }
    : null;
}

/** `average migration speed: 105.3 MiB/s - downtime 52 ms` -> 52 */
export function parseDowntimeLine(line: string): number | null {
  const match = line.match(/downtime (\d+(?:\.\d+)?) ?ms/);
  return match ? Number(match[1]) : null;
}

/** `migration completed, transferred 11.7 GiB VM-state` -> bytes of memory sent in all. */
export function parseCompletedLine(line: string): number | null {
  const match = line.match(new RegExp(String.raw`migration completed, transferred ${SIZE} VM-state`));
  return match ? (logBytes(match[1]!) ?? null) : null;
}

/** The `YYYY-MM-DD HH:MM:SS` a line starts with, as milliseconds (the node's wall clock read as UTC: only differences count). */
export function lineTimeMs(line: string): number | null {
  const match = line.match(/^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) /);
  if (!match) return null;
  const [, year, month, day, hour, minute, second] = match.map(Number) as number[];
  return Date.UTC(year!, month! - 1, day!, hour!, minute!, second!);
}

/**
 * What a migration task's log said so far, fed page by page. Pages are asked from the last line
 * number read (`start`), so no line is read twice or skipped, placeholder or not.
 */
export class MigrationLog {
  readonly lines: string[] = [];
  /** The last line number read: where the next page starts. */
  start = 0;
  /** Downtime QEMU measured (`downtime N ms`), or null when the line is absent (a migration under 1 s). */
  downtimeMs: number | null = null;
  /** `migration downtime limit: N ms`: the guest's own limit (its `migrate_downtime`), which Proxmox applies. */
  downtimeLimitMs: number | null = null;
  /** The highest `auto-increased downtime to continue migration: N ms`, when Proxmox raised the limit. */
  raisedDowntimeLimitMs: number | null = null;
  /** When a restart migration stopped the container (`shutdown CT N`) and when the task said it was done. */
  private stoppedAtMs: number | null = null;
  private finishedAtMs: number | null = null;
  private completedVmStateBytes: number | null = null;
  private readonly streams = new Map<string, { copied: number; total: number }>();

  /** Adds a page (placeholder already dropped); true when a progress line was among it. */
  add(entries: readonly TaskLogEntry[]): boolean {
    let progressed = false;
    for (const entry of entries) {
      if (entry.n <= this.start) continue;
      this.start = entry.n;
      const line = entry.t;
      this.lines.push(line);
      const progress = parseProgressLine(line);
      if (progress) {
        this.streams.set(progress.stream, { copied: progress.bytesCopied, total: progress.bytesTotal });
        progressed = true;
      }
      this.downtimeMs = parseDowntimeLine(line) ?? this.downtimeMs;
      this.completedVmStateBytes = parseCompletedLine(line) ?? this.completedVmStateBytes;
      const limit = line.match(/migration downtime limit: (\d+(?:\.\d+)?) ms/);
      if (limit) this.downtimeLimitMs = Number(limit[1]);
      const raised = line.match(/auto-increased downtime to continue migration: (\d+(?:\.\d+)?) ms/);
      if (raised) this.raisedDowntimeLimitMs = Math.max(this.raisedDowntimeLimitMs ?? 0, Number(raised[1]));
      if (/ shutdown CT \d+$/.test(line)) this.stoppedAtMs = lineTimeMs(line);
      if (/ migration finished successfully \(duration /.test(line)) this.finishedAtMs = lineTimeMs(line);
    }
    return progressed;
  }

  /**
   * Bytes copied so far: every local disk's mirror plus memory (the completed line's total once it
   * came; memory sent again for pages dirtied meanwhile can make it exceed the guest's size).
   */
  get bytesCopied(): number {
    let sum = 0;
    for (const [stream, { copied }] of this.streams)
      sum += stream === 'VM-state' && this.completedVmStateBytes !== null ? 0 : copied;
    return sum + (this.completedVmStateBytes ?? 0);
  }

  /** Progress over disks and memory; memory counts `memEstimateBytes` (the guest's size) until its first line. */
  progress(memEstimateBytes: number): MigrationProgress {
    let total = this.streams.has('VM-state') ? 0 : memEstimateBytes;
    for (const { total: streamTotal } of this.streams.values()) total += streamTotal;
    const copied = this.bytesCopied;
    return {
      bytesCopied: copied,
      bytesRemaining: Math.max(0, total - copied),
      fraction: total > 0 ? Math.min(1, copied / total) : 0,
    };
  }

  /** A restart migration's downtime: from `shutdown CT` to the end of the task (the container started on the target), or null. */
  restartDowntimeMs(): number | null {
    return this.stoppedAtMs !== null && this.finishedAtMs !== null
      ? Math.max(0, this.finishedAtMs - this.stoppedAtMs)
      : null;
  }
}
