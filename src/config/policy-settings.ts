/**
 * From the configuration to what policies read: PolicySettings (policies, limits, migration
 * bandwidth, the sampling interval and window) and Rules (affinity, anti-affinity, pins, ignored
 * VMs with globs expanded against the VMs the monitor knows).
 */
import { DEFAULT_SETTINGS, type PolicySettings, type ThresholdLevel } from '../../policies/index.ts';
import { capabilitiesOf, type Rules } from '../model/index.ts';
import { limitsFromConfig } from './limits.ts';
import type { LbvmConfig } from './schema.ts';

export function policySettingsFromConfig(config: LbvmConfig): PolicySettings {
  const p = config.policies;
  const sampleIntervalMs = config.collect.interval;
  return {
    ...DEFAULT_SETTINGS,
    cpuOvercommit: p.cpuOvercommit,
    weights: { ...p.balance.weights },
    demand: {
      horizonMs: p.demand.horizon,
      sampleIntervalMs,
      maxWindowSamples: Math.max(1, Math.ceil(config.monitor.window / sampleIntervalMs)),
    },
    cost: {
      ...DEFAULT_SETTINGS.cost,
      bandwidthBytesPerSec: config.migration.bandwidthBytesPerSec,
      streamBytesPerSec: config.migration.streamBytesPerSec,
      dirtyTrackingBytesPerSec: config.migration.dirtyTrackingBytesPerSec,
      mode: config.migration.mode,
      downtimeLimitMs: config.migration.downtimeLimit,
      // The qemu agent always switches auto-converge on; libvirt as configured.
      autoConverge: config.collect.driver !== 'libvirt' || config.drivers.libvirt.autoConverge,
      tls: Boolean(config.tls.ca && config.tls.cert && config.tls.key && config.tls.migration),
    },
    limits: limitsFromConfig(config),
    balance: { threshold: p.balance.threshold as ThresholdLevel },
    overload: {
      ...DEFAULT_SETTINGS.overload,
      highWatermark: p.overload.highWatermark,
      lowWatermark: p.overload.lowWatermark,
    },
    consolidate: { headroom: p.consolidate.headroom, spareHosts: p.consolidate.spareHosts },
    movesLocalDisks: capabilitiesOf(config.collect.driver, { libvirtCopyStorage: config.drivers.libvirt.copyStorage })
      .localDisks,
  };
}

/** `db-*` → /^db-.*$/ ; `?` is one character. */
export function globToRegExp(glob: string): RegExp {
  const escaped = glob
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

export function rulesFromConfig(config: LbvmConfig, vmNames: readonly string[] = []): Rules {
  const r = config.rules;
  const patterns = r.ignore.map(globToRegExp);
  const ignored = new Set<string>(r.ignore.filter((name) => !/[*?]/.test(name)));
  for (const name of vmNames) if (patterns.some((re) => re.test(name))) ignored.add(name);
  return {
    groups: [
      ...r.affinity.map((g) => ({ name: g.name, kind: 'affinity' as const, vms: g.vms, hard: g.hard })),
      ...r.antiAffinity.map((g) => ({ name: g.name, kind: 'anti-affinity' as const, vms: g.vms, hard: g.hard })),
    ],
    pins: r.pins.map((pin) => ({ name: pin.name, vm: pin.vm, hosts: pin.hosts, hard: pin.strength === 'must' })),
    ignoredVms: [...ignored].sort(),
  };
}
