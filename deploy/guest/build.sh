#!/usr/bin/env bash
# Builds the LBVM test guest into OUT_DIR (default .cache/guest): the host's Debian kernel, unpacked
# (below), and a busybox initramfs whose /init (deploy/guest/init) burns CPU and dirties memory as told on the
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
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/initramfs.cpio.gz" ] && [ -f "$out/kernel" ]; then
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
# The kernel unpacked once here: a guest under TCG spent 7-10 s of its 14-19 s boot unpacking Debian's
# XZ-compressed vmlinuz before the kernel's first message; QEMU boots the unpacked ELF directly through
# its PVH entry (Debian builds CONFIG_PVH) in 6 s. Without that entry note, the packed image as it is.
unpack() {
  local magic=$1 tool=$2 offset
  offset=$(LC_ALL=C grep -abo -m1 "$magic" "$kernel" | head -n 1 | cut -d: -f1 || true)
  [ -n "$offset" ] || return 1
  tail -c +$((offset + 1)) "$kernel" | $tool -dc > "$work/kernel" 2>/dev/null || true
  # The PVH entry: an ELF note "Xen" of type 18 (XEN_ELFNOTE_PHYS32_ENTRY).
  [ "$(head -c 4 "$work/kernel" | od -An -c | tr -d ' ')" = '177ELF' ] &&
    LC_ALL=C grep -qaP '\x04\x00\x00\x00[\x04\x08]\x00\x00\x00\x12\x00\x00\x00Xen\x00' "$work/kernel"
}
if ! unpack $'\xfd7zXZ\x00' xz && ! unpack $'\x28\xb5\x2f\xfd' zstd && ! unpack $'\x1f\x8b\x08' gzip; then
  echo "deploy/guest/build.sh: $(basename "$kernel") could not be unpacked to an ELF with a PVH entry; the guest boots it packed (slower under TCG)" >&2
  cp "$kernel" "$work/kernel"
fi
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
mv "$work/kernel" "$out/kernel"
rm -f "$out/vmlinuz"
echo "$stamp" > "$out/stamp"
echo "test guest built in $out (kernel $(basename "$kernel"))"
