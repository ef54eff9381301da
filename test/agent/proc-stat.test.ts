/** The agent's reading of a QEMU process's use from /proc (src/drivers/qemu/agent/proc-stat.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isOurQemu, parseProcStats, readProcStats } from '../../src/drivers/qemu/agent/proc-stat.ts';

describe('proc-stat', () => {
  it('reads CPU time, start time, RSS and disk bytes, with a command name holding spaces and parentheses', () => {
    // proc(5): pid (comm) state ppid ... utime(14) stime(15) ... starttime(22); statm: size resident ...
    const stat = '4242 (qemu (lbvm) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 3 0 987654 1 2 3\n';
    const io = 'rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n';
    assert.deepEqual(parseProcStats(stat, '50000 3000 100 1 0 2000 0\n', io), {
      startTime: '987654',
      cpuTimeMs: 3800,
      rssBytes: 3000 * 4096,
      readBytes: 4096,
      writeBytes: 8192,
    });
    // /proc/<pid>/io unreadable (another user, no CAP_SYS_PTRACE): no disk bytes, the rest stands.
    const noIo = parseProcStats(stat, '50000 3000\n', null);
    assert.equal(noIo.readBytes, null);
    assert.equal(noIo.cpuTimeMs, 3800);
  });

  it('reads this process, and tells that it is not a guest QEMU', () => {
    const self = readProcStats(process.pid);
    assert.ok(self && self.cpuTimeMs > 0 && self.rssBytes > 0, JSON.stringify(self));
    assert.equal(isOurQemu(process.pid, 'no-such-guest'), false);
    assert.equal(readProcStats(2 ** 30), null);
  });
});
