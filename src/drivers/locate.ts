/**
 * Where a VM is, from every host's answer (the libvirt and openvz drivers ask each host in turn).
 * A VM active (running, paused) on one host is there; active on two is an error worth a human's
 * eyes; a host that could not be asked makes "nowhere" unknown, so that throws (a retry later)
 * rather than answering null; a VM only defined (stopped) on exactly one host is there.
 */
export interface HostAnswer {
  host: string;
  /** The VM runs (or is paused) on this host. */
  active: boolean;
  /** The VM is defined on this host, in any state. */
  defined: boolean;
  /** What the host said, for messages (e.g. its state). */
  detail?: string;
  /** The host could not be asked. */
  error?: Error | null;
}

export function locateFromAnswers(vm: string, answers: HostAnswer[]): string | null {
  const active = answers.filter((answer) => answer.active);
  if (active.length > 1)
    throw new Error(
      `VM ${JSON.stringify(vm)} is active on several hosts: ` +
        `${active.map((answer) => `${answer.host}${answer.detail ? ` (${answer.detail})` : ''}`).join(', ')}`,
    );
  if (active.length === 1) return active[0]!.host;
  const failed = answers.filter((answer) => answer.error);
  if (failed.length)
    throw new Error(
      `cannot tell where ${JSON.stringify(vm)} is: ${failed.map((answer) => answer.error!.message).join('; ')}`,
    );
  const defined = answers.filter((answer) => answer.defined);
  return defined.length === 1 ? defined[0]!.host : null;
}
