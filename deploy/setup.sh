#!/usr/bin/env bash
# LBVM set-up: idempotent, and quick when nothing is missing.
#  1. system packages: redis-server, redis-sentinel (the Sentinel test bed's sentinels; where systemd
#     runs, Debian also starts its own sentinel service on port 26379, which LBVM does not use),
#     influxdb, qemu-system-x86, qemu-utils (qemu-img: the agent makes a destination's empty disk
#     image with it), linux-image-amd64, busybox-static, systemd (its systemd-analyze
#     checks the units in deploy/systemd) and chromium (renders the HTML report in its test),
#     libvirt-daemon, libvirt-daemon-driver-qemu and libvirt-clients (the
#     libvirt driver's tests start their own session libvirtd; these packages ship no service, so
#     nothing starts or is enabled at install; libvirt-daemon-system, which would, is not installed),
#     iproute2 (ip, tc and ss: the network-namespace test bed), tcpdump (the test that watches a
#     migration stream on that network) and openssl (deploy/certs.sh)
#     (installed with apt-get when running as root; otherwise it says what to install and exits 1);
#  2. npm ci, when node_modules does not match package-lock.json;
#  3. the compiled JavaScript in dist/ (deploy/build.sh);
#  4. the test guest (kernel + busybox initramfs) in .cache/guest.
# Usage: deploy/setup.sh [--quiet]
set -euo pipefail
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1
say() { [ "$quiet" = 1 ] || echo "setup: $*"; }
cd "$(dirname "$0")/.."

missing=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'ok installed'; }
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || missing+=(qemu-utils)
ls /boot/vmlinuz-* >/dev/null 2>&1 || missing+=(linux-image-amd64)
have_pkg busybox-static || missing+=(busybox-static)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
command -v gzip >/dev/null 2>&1 || missing+=(gzip)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v libvirtd >/dev/null 2>&1 || missing+=(libvirt-daemon)
have_pkg libvirt-daemon-driver-qemu || missing+=(libvirt-daemon-driver-qemu)
command -v virsh >/dev/null 2>&1 || missing+=(libvirt-clients)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${missing[*]} with apt-get (once)"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/lbvm-setup-apt.log 2>&1; then
      apt-get update -qq >>/tmp/lbvm-setup-apt.log 2>&1
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/lbvm-setup-apt.log 2>&1 || {
        echo "setup: apt-get install ${missing[*]} failed; see /tmp/lbvm-setup-apt.log" >&2
        exit 1
      }
    fi
  else
    echo "setup: missing system packages: ${missing[*]}" >&2
    echo "setup: install them as root:  apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# npm ci when node_modules was not installed from this exact lock file.
lock_hash=$(sha256sum package-lock.json | cut -c1-32)
if [ ! -f node_modules/.lbvm-lock-hash ] || [ "$(cat node_modules/.lbvm-lock-hash)" != "$lock_hash" ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >/tmp/lbvm-setup-npm.log 2>&1 || {
    echo "setup: npm ci failed; see /tmp/lbvm-setup-npm.log" >&2
    tail -20 /tmp/lbvm-setup-npm.log >&2
    exit 1
  }
  echo "$lock_hash" > node_modules/.lbvm-lock-hash
fi

# The compiled JavaScript the commands run (rebuilt only when a source changed).
bash deploy/build.sh

# The test guest (rebuilt only when its init script or the kernel changed).
if [ "$quiet" = 1 ]; then bash deploy/guest/build.sh >/dev/null; else bash deploy/guest/build.sh; fi
say "ready"
