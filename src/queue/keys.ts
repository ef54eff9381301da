/**
 * Every Redis key LBVM's queue part uses, in one place. Names (VMs, hosts) are binary-safe parts
 * of keys; they never reach a shell or a file path.
 */
export const QUEUE_NAME = 'migrations';

export function queueKeys(prefix: string) {
  return {
    /** The current leader's fencing token: an integer the monitor INCRs on each lease acquisition. */
    fence: `${prefix}:leader:fence`,
    /** Stream of LbvmEvent (field `event`, JSON). */
    events: `${prefix}:events`,
    /** Hash vm -> `jobId|claimedAtMs` of the job that owns the VM's in-flight migration. */
    vmClaims: `${prefix}:migrations:vm-claims`,
    /** Prefix of BullMQ's own job hashes (`${prefix}:migrations:<jobId>`), read by the claim script. */
    bullJob: `${prefix}:${QUEUE_NAME}:`,
    /**
     * BullMQ's lists and sorted sets of the jobs that have not finished: those MigrationQueue.inFlight
     * reads (waiting, prioritized, delayed, active; BullMQ reads `paused` with waiting). Redis drops a
     * list or set when it empties, so when none exists, no job is in flight (test/queue/in-flight.test.ts).
     */
    bullUnfinished: ['wait', 'paused', 'prioritized', 'delayed', 'active'].map(
      (state) => `${prefix}:${QUEUE_NAME}:${state}`,
    ),
    /** The per-VM migration lock, held while a job works on it. */
    vmLock: (vm: string) => `${prefix}:lock:vm:${vm}`,
    sourceSlots: (host: string) => `${prefix}:slots:source:${host}`,
    destinationSlots: (host: string) => `${prefix}:slots:destination:${host}`,
    clusterSlots: `${prefix}:slots:cluster`,
    slotPattern: `${prefix}:slots:*`,
  };
}
