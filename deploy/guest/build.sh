#!/usr/bin/env bash
# Builds the LBVM test guest into OUT_DIR (default .cache/guest): a copy of the host's Debian kernel
# and a busybox initramfs whose /init (deploy/guest/init) burns CPU and dirties memory as told on the
# kernel command line, and whose disk writer (deploy/guest/disk) logs a sequence on /dev/vda.
# Rebuilds only when the init script, the disk writer or the kernel changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../.cache/guest"}
mkdir -p "$out"
kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$kernel" ]; then
  echo "deploy/guest/build.sh: no kernel in /boot (install the Debian package linux-image-amd64)" >&2
  exit 1
fi
version=$(basename "$kernel"); version=${version#vmlinuz-}
busybox=/bin/busybox
if ! file "$busybox" 2>/dev/null | grep -q 'statically linked' && ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
  echo "deploy/guest/build.sh: a static busybox is needed (install the Debian package busybox-static)" >&2
  exit 1
fi
stamp="$(sha256sum "$here/init" "$here/disk" "$here/build.sh" | sha256sum | cut -c1-16)-$(basename "$kernel")-$(stat -c %s "$busybox")"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/initramfs.cpio.gz" ] && [ -f "$out/vmlinuz" ]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/dev" "$work/root/proc" "$work/root/sys" "$work/root/run" "$work/root/tmp"
cp "$busybox" "$work/root/bin/busybox"
ln -s busybox "$work/root/bin/sh"
install -m 0755 "$here/init" "$work/root/init"
install -m 0755 "$here/disk" "$work/root/bin/lbvm-disk"
# virtio-blk for the test guest's disk: Debian builds it (and virtio-pci) as modules.
mkdir -p "$work/root/lib/modules"
for module in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  file=$(find "/lib/modules/$version" -name "$module.ko*" | head -n 1)
  if [ -z "$file" ]; then
    echo "deploy/guest/build.sh: kernel module $module not found under /lib/modules/$version" >&2
    exit 1
  fi
  case "$file" in
    *.ko.xz) xz -dc "$file" > "$work/root/lib/modules/$module.ko" ;;
    *.ko.zst) zstd -qdc "$file" > "$work/root/lib/modules/$module.ko" ;;
    *) cp "$file" "$work/root/lib/modules/$module.ko" ;;
  esac
done
(cd "$work/root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -9 > "$work/initramfs.cpio.gz")
cp "$kernel" "$work/vmlinuz"
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
mv "$work/vmlinuz" "$out/vmlinuz"
echo "$stamp" > "$out/stamp"
echo "test guest built in $out (kernel $(basename "$kernel"))"
