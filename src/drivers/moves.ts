/**
 * How the configured driver carries out a move, in a sentence for the operator (`lbm explain`). Pure:
 * it loads no driver and reaches no hypervisor; what it says is what each driver's module does.
 */
import type { LbvmConfig } from '../config/schema.ts';
import type { VmState } from '../model/index.ts';

export function howMoved(config: LbvmConfig, vm: Pick<VmState, 'haState'>): string {
  switch (config.collect.driver) {
    case 'qemu':
      return 'live, by the lbvm agents: QEMU sends it (QMP migrate) to a guest the destination agent starts with -incoming, within migration.downtimeLimit';
    case 'libvirt':
      return 'live, by virsh migrate --live --persistent --undefinesource from its source URI to the destination';
    case 'proxmox':
      return vm.haState
        ? 'by the Proxmox HA manager: LBVM asks it (a hamigrate task); its resource agent then runs the migration itself (a qmigrate task for a VM, ' +
            'vzmigrate for a container, as root@pam), which LBVM follows to its end; the HA rules and rounds decide when, and a container is shut down first'
        : "by a Proxmox migration task: a VM live (online, with local disks; Proxmox applies the guest's " +
            'migrate_downtime), a container by restart (stopped, moved and started again: down for the whole span)';
    case 'openvz':
      return config.drivers.openvz.flavour === 'prlctl'
        ? 'by prlctl migrate on its source host, over ssh'
        : 'by vzmigrate on its source host, over ssh: --online (checkpoint and restore) while it ' +
            'runs, offline when stopped; vzmigrate logs in to the destination as root with its own ssh';
    default:
      return 'by the sim driver (simulated)';
  }
}
