/**
 * The policies by name, and the round the monitor runs by default. Kept apart from the registry
 * (registry.ts) so the config schema can name them without loading every policy.
 */
export const POLICY_NAMES = ['evacuate', 'overload', 'balance', 'consolidate'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

/** `monitor.policies` unless configured: evacuate, then relieve hot spots, then balance. */
export const DEFAULT_ROUND: readonly PolicyName[] = ['evacuate', 'overload', 'balance'];

export function isPolicyName(name: string): name is PolicyName {
  return (POLICY_NAMES as readonly string[]).includes(name);
}
