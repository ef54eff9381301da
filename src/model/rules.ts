/**
 * Placement rules. `hard` rules are never broken by any policy (nor by a manual move without
 * `--force` being enough: `--force` overrides soft rules only); soft rules cost score.
 */

/** VMs that must (affinity) or must not (anti-affinity) share a host. */
export interface VmGroupRule {
  name: string;
  kind: 'affinity' | 'anti-affinity';
  vms: string[];
  hard: boolean;
}

/** A VM pinned to a set of hosts: `must` (hard) or `should` (soft). */
export interface PinRule {
  name: string;
  vm: string;
  hosts: string[];
  hard: boolean;
}

export interface Rules {
  groups: VmGroupRule[];
  pins: PinRule[];
  /** VMs the balancer never moves (names; the config may also give glob patterns, expanded before). */
  ignoredVms: string[];
}

export const NO_RULES: Rules = { groups: [], pins: [], ignoredVms: [] };
