import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/index.ts';
import { policySettingsFromConfig, rulesFromConfig } from '../../src/config/policy-settings.ts';
import { tmpDir } from '../helpers/tmp.ts';

describe('config → policy settings and rules', () => {
  it('maps policies, limits, demand and migration bandwidth from the config', () => {
    const { config } = loadConfig({
      env: {
        LBVM_POLICIES_BALANCE_THRESHOLD: '5',
        LBVM_LIMITS_MOVES_PER_ROUND: '4',
        LBVM_LIMITS_COOLDOWN: '10m',
        LBVM_POLICIES_OVERLOAD_HIGH_WATERMARK: '0.9',
        LBVM_MIGRATION_BANDWIDTH_BYTES_PER_SEC: '100MiB',
      },
      cwd: tmpDir(),
    });
    const settings = policySettingsFromConfig(config);
    assert.equal(settings.balance.threshold, 5);
    assert.equal(settings.limits.movesPerRound, 4);
    assert.equal(settings.limits.cooldownMs, 600_000);
    assert.equal(settings.limits.pingPongWindowMs, 2 * 3_600_000, 'unset: 2 h (4 × a 10-minute cooldown is less)');
    assert.equal(settings.overload.highWatermark, 0.9);
    assert.equal(settings.cost.bandwidthBytesPerSec, 100 * 1024 ** 2);
    // 2 hours of 60-second samples; a 15-minute horizon.
    assert.equal(settings.demand.maxWindowSamples, 120);
    assert.equal(settings.demand.horizonMs, 900_000);
  });

  it('takes limits.pingPongWindow as given; unset, 4 × the cooldown when that is over 2 h; a bad value names the key', () => {
    const limitsOf = (env: Record<string, string>) =>
      policySettingsFromConfig(loadConfig({ env, cwd: tmpDir() }).config).limits;
    assert.equal(
      limitsOf({ LBVM_LIMITS_PING_PONG_WINDOW: '80s', LBVM_LIMITS_COOLDOWN: '20s' }).pingPongWindowMs,
      80_000,
    );
    assert.equal(limitsOf({ LBVM_LIMITS_COOLDOWN: '1h' }).pingPongWindowMs, 4 * 3_600_000);
    assert.throws(
      () => loadConfig({ env: { LBVM_LIMITS_PING_PONG_WINDOW: 'soon' }, cwd: tmpDir() }),
      /limits\.pingPongWindow.*expected a duration like 500ms, 10s, 5m or 1h/s,
    );
  });

  it('says whether the configured driver copies local disks (Driver.capabilities.localDisks)', () => {
    const settingsOf = (env: Record<string, string>) =>
      policySettingsFromConfig(loadConfig({ env, cwd: tmpDir() }).config);
    assert.equal(settingsOf({ LBVM_COLLECT_DRIVER: 'qemu' }).movesLocalDisks, true);
    assert.equal(settingsOf({ LBVM_COLLECT_DRIVER: 'proxmox' }).movesLocalDisks, true);
    assert.equal(settingsOf({ LBVM_COLLECT_DRIVER: 'libvirt' }).movesLocalDisks, false);
    assert.equal(
      settingsOf({ LBVM_COLLECT_DRIVER: 'libvirt', LBVM_DRIVERS_LIBVIRT_COPY_STORAGE: 'true' }).movesLocalDisks,
      true,
    );
  });

  it('turns rule lists into Rules, expanding ignore globs against the known VMs', () => {
    const { config } = loadConfig({
      env: {
        LBVM_RULES_IGNORE: '["db-*", "exact"]',
        LBVM_RULES_ANTI_AFFINITY: '[{name: dns, vms: [dns-1, dns-2]}]',
        LBVM_RULES_PINS: '[{name: lic, vm: ora, hosts: [n1], strength: should}]',
      },
      cwd: tmpDir(),
    });
    const rules = rulesFromConfig(config, ['db-1', 'db-2', 'web-1', 'xdb-1']);
    assert.deepEqual(rules.ignoredVms, ['db-1', 'db-2', 'exact']);
    assert.deepEqual(rules.groups, [{ name: 'dns', kind: 'anti-affinity', vms: ['dns-1', 'dns-2'], hard: true }]);
    assert.deepEqual(rules.pins, [{ name: 'lic', vm: 'ora', hosts: ['n1'], hard: false }]);
  });
});
