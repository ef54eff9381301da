/**
 * A QEMU process's use from /proc: CPU time and start time from /proc/<pid>/stat, resident memory from
 * /proc/<pid>/statm, disk bytes from /proc/<pid>/io (proc(5)). The parsers are pure, for tests on
 * fixed text.
 */
import fs from 'node:fs';

export interface ProcStats {
  /** Field 22 of stat: with the pid, names one process instance (a recycled pid has another). */
  startTime: string;
  cpuTimeMs: number;
  rssBytes: number;
  readBytes: number | null;
  writeBytes: number | null;
}

const CLOCK_TICKS_PER_SEC = 100;
const PAGE_SIZE = 4096;

/** The fields of /proc/<pid>/stat after the command name (in parentheses, which may hold spaces). */
export function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** utime+stime and starttime from stat, RSS from statm, bytes read and written from io (when readable). */
export function parseProcStats(stat: string, statm: string, io: string | null): ProcStats {
  const fields = statFields(stat);
  const bytes = (name: string) => {
    const value = Number(io?.match(new RegExp(`^${name}: (\\d+)`, 'm'))?.[1] ?? NaN);
    return Number.isFinite(value) ? value : null;
  };
  return {
    startTime: fields[19]!,
    cpuTimeMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SEC,
    rssBytes: Number(statm.split(' ')[1]) * PAGE_SIZE,
    readBytes: bytes('read_bytes'),
    writeBytes: bytes('write_bytes'),
  };
}

export function readProcStats(pid: number): ProcStats | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const statm = fs.readFileSync(`/proc/${pid}/statm`, 'utf8');
    let io: string | null = null;
    try {
      io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    } catch {
      /* /proc/<pid>/io needs the same user or CAP_SYS_PTRACE */
    }
    return parseProcStats(stat, statm, io);
  } catch {
    return null;
  }
}

/** True when `pid` is alive and is the QEMU of guest `id` (not a recycled pid, not a zombie). */
export function isOurQemu(pid: number, id: string): boolean {
  try {
    const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmdline.includes(`lbvm-${id}`)) return false;
    return statFields(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))[0] !== 'Z';
  } catch {
    return false;
  }
}
