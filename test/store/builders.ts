/** Sample builders with overrides, for store and collector tests. */
import type { HostSample, VmSample } from '../../src/model/index.ts';

export function hostSample(host: string, timeMs: number, overrides: Partial<HostSample> = {}): HostSample {
  return { kind: 'host', host, timeMs, cpuCores: 8, cpuUsedCores: 2.5, memBytes: 32 * 2 ** 30, memUsedBytes: 12 * 2 ** 30, ...overrides };
}

export function vmSample(vm: string, host: string, timeMs: number, overrides: Partial<VmSample> = {}): VmSample {
  return { kind: 'vm', vm, host, timeMs, vcpus: 2, cpuUsedCores: 0.5, memBytes: 2 ** 30, memUsedBytes: 2 ** 29, state: 'running', ...overrides };
}
