/**
 * Cancelling a running migration from anywhere (`lbm migrate --wait`, Ctrl-C): the request is
 * published on a Redis channel; every worker listens and aborts the job if it runs it (the guest
 * stays on its source). Publishing reaches only live workers: a job not running yet is not touched.
 */
import type { Redis } from 'ioredis';

export function cancelChannel(prefix: string): string {
  return `${prefix}:migrations:cancel`;
}

/** Asks every worker to cancel `jobId`; returns how many workers heard it. */
export async function requestCancel(redis: Redis, prefix: string, jobId: string): Promise<number> {
  return redis.publish(cancelChannel(prefix), jobId);
}

/** Subscribes `subscriber` (a connection used for nothing else) and calls `onCancel` per request. */
export async function listenForCancels(
  subscriber: Redis,
  prefix: string,
  onCancel: (jobId: string) => void,
): Promise<void> {
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === cancelChannel(prefix)) onCancel(message);
  });
  await subscriber.subscribe(cancelChannel(prefix));
}
