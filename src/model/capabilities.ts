/**
 * What each driver can do, from its settings alone: the driver classes report it as their
 * `capabilities`, and the monitor and `lbm` read it (through the config) without building a driver
 * (they never touch a hypervisor), so a policy never plans a move the configured driver cannot do.
 */
export interface DriverCapabilities {
  live: boolean;
  checkpoint: boolean;
  /** Can a running migration be cancelled (the guest stays on its source)? */
  cancel: boolean;
  /** Does migrate() report progress (bytes copied / remaining)? */
  progress: boolean;
  /** Does inventory() report per-VM CPU/disk/net use (not only sizes)? */
  stats: boolean;
  /** Does migrate() move a VM whose disks are local (copying them), not only VMs on shared storage? */
  localDisks: boolean;
}

export type DriverName = 'qemu' | 'sim' | 'libvirt' | 'proxmox' | 'openvz';

export interface CapabilityOptions {
  /** drivers.libvirt.copyStorage: `virsh migrate --copy-storage-all`. */
  libvirtCopyStorage: boolean;
}

export function capabilitiesOf(driver: DriverName, options: CapabilityOptions): DriverCapabilities {
  switch (driver) {
    case 'qemu':
      // Local disks: mirrored over NBD alongside the memory (agent/disks.ts).
      return { live: true, checkpoint: true, cancel: true, progress: true, stats: true, localDisks: true };
    case 'sim':
      return { live: true, checkpoint: true, cancel: true, progress: true, stats: true, localDisks: true };
    case 'libvirt':
      // `virsh migrate --copy-storage-all` only when drivers.libvirt.copyStorage asks for it:
      // without it libvirt refuses a domain whose disks are not on shared storage.
      return libvirtCapabilities(options.libvirtCopyStorage);
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
