/**
 * Node options the monitor runs with (deploy/systemd/lbvm-monitor.service, the demo, `bench round`).
 *
 * A round at 1,000 hosts × 30,000 VMs allocates a few hundred MB that lives about as long as the round
 * (the new samples decoded, the snapshot, each policy's working state): with V8's default 16 MB
 * semi-spaces most of it is copied by several scavenges and promoted before it dies. 64 MB semi-spaces
 * let it die young. `bench round` at 1,000 × 30,000 on InfluxDB: the monitor's CPU per round 685 and
 * 802 ms against 855 and 1,041 ms without (two alternating pairs, load 3–5), for about 30 MB more RSS.
 * V8 reads this size when the process starts only: it cannot be set from inside the monitor.
 */
export const MONITOR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/** Whether this process was started with MONITOR_NODE_FLAGS (on its command line or in NODE_OPTIONS). */
export function hasMonitorNodeFlags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env.NODE_OPTIONS ?? '',
): boolean {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  return MONITOR_NODE_FLAGS.every((flag) => given.includes(flag));
}
