#!/usr/bin/env bash
# Builds the LBVM test guest into OUT_DIR (default .cache/guest): a copy of the host's Debian kernel
# and a busybox initramfs whose /init (deploy/guest/init) burns CPU and dirties memory as told on
# the kernel command line. Rebuilds only when the init script or the kernel changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../.cache/guest"}
mkdir -p "$out"
kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$kernel" ]; then
  echo "deploy/guest/build.sh: no kernel in /boot (install the Debian package linux-image-amd64)" >&2
  exit 1
fi
busybox=/bin/busybox
if ! file "$busybox" 2>/dev/null | grep -q 'statically linked' && ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
  echo "deploy/guest/build.sh: a static busybox is needed (install the Debian package busybox-static)" >&2
  exit 1
fi
stamp="$(sha256sum "$here/init" "$here/build.sh" | sha256sum | cut -c1-16)-$(basename "$kernel")-$(stat -c %s "$busybox")"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] && [ -f "$out/initramfs.cpio.gz" ] && [ -f "$out/vmlinuz" ]; then
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/dev" "$work/root/proc" "$work/root/sys" "$work/root/run" "$work/root/tmp"
cp "$busybox" "$work/root/bin/busybox"
ln -s busybox "$work/root/bin/sh"
install -m 0755 "$here/init" "$work/root/init"
(cd "$work/root" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -9 > "$work/initramfs.cpio.gz")
cp "$kernel" "$work/vmlinuz"
mv "$work/initramfs.cpio.gz" "$out/initramfs.cpio.gz"
mv "$work/vmlinuz" "$out/vmlinuz"
echo "$stamp" > "$out/stamp"
echo "test guest built in $out (kernel $(basename "$kernel"))"
