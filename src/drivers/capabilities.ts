/**
 * What each driver can do, from the configuration alone: the driver classes report it as their
 * `capabilities`, and the monitor and `lbm` read it without building a driver (they never touch a
 * hypervisor), so a policy never plans a move the configured driver cannot carry out.
 */
import type { LbvmConfig } from '../config/schema.ts';
import type { DriverCapabilities } from './driver.ts';

export function capabilitiesOf(config: LbvmConfig, driver = config.collect.driver): DriverCapabilities {
  switch (driver) {
    case 'qemu':
      // Local disks: mirrored over NBD alongside the memory (agent/disks.ts).
      return { live: true, checkpoint: true, cancel: true, progress: true, stats: true, localDisks: true };
    case 'sim':
      return { live: true, checkpoint: true, cancel: true, progress: true, stats: true, localDisks: true };
    case 'libvirt':
      // `virsh migrate --copy-storage-all` only when drivers.libvirt.copyStorage asks for it:
      // without it libvirt refuses a domain whose disks are not on shared storage.
      return libvirtCapabilities(config.drivers.libvirt.copyStorage);
    case 'proxmox':
      // VMs migrate with `with-local-disks=1`; containers by restart, which copies local volumes.
      return { live: true, checkpoint: false, cancel: true, progress: true, stats: true, localDisks: true };
    case 'openvz':
      // vzmigrate and prlctl migrate copy the container's private area unless it is on shared storage.
      return { live: true, checkpoint: false, cancel: false, progress: false, stats: true, localDisks: true };
  }
}

/** The libvirt driver's: local disks only with `--copy-storage-all` (drivers.libvirt.copyStorage). */
export function libvirtCapabilities(copyStorage: boolean): DriverCapabilities {
  return { live: true, checkpoint: false, cancel: true, progress: true, stats: true, localDisks: copyStorage };
}
