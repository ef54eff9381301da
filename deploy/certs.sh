#!/usr/bin/env bash
# The cluster's own certificates, made with openssl: one CA, and a certificate per agent, per caller of
# the agents (workers, collectors) and per server LBVM calls over TLS (Redis, InfluxDB).
#
#   deploy/certs.sh [--dir DIR] [--days N] ca                    DIR/ca.pem, DIR/ca-key.pem (never overwritten)
#   deploy/certs.sh [--dir DIR] [--days N] agent NAME ADDRESS... an agent (serves its control port and
#                                                                 incoming migrations, opens outgoing ones)
#   deploy/certs.sh [--dir DIR] [--days N] client NAME           a worker or collector (calls agents)
#   deploy/certs.sh [--dir DIR] [--days N] server NAME ADDRESS... Redis, InfluxDB (serves only)
#
# Each makes DIR/NAME.pem and DIR/NAME-key.pem (mode 0600), signed by DIR/ca.pem; running it again for
# a NAME replaces that pair (a renewal). ADDRESS: every IP address and DNS name the host is reached at
# (they go into the subject alternative names, which TLS clients check). Keys are EC P-256; DIR defaults
# to ./lbvm-tls, N (days of validity) to 825. Rotating the CA: see README.md, "TLS".
set -euo pipefail
dir=./lbvm-tls
days=825
usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2:?--dir needs a folder}; shift 2 ;;
    --days) days=${2:?--days needs a number}; shift 2 ;;
    -h|--help) usage ;;
    --*) echo "certs.sh: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || usage
command -v openssl >/dev/null || { echo "certs.sh: openssl is missing (Debian package openssl)" >&2; exit 1; }
[[ "$days" =~ ^[1-9][0-9]*$ ]] || { echo "certs.sh: --days $days: expected a whole number of days" >&2; exit 2; }
kind=$1
shift
umask 077
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME EXTENSIONS-FILE: a certificate for DIR/NAME-key.pem signed by the CA.
sign() {
  local name=$1 ext=$2
  [ -f "$dir/ca.pem" ] && [ -f "$dir/ca-key.pem" ] || {
    echo "certs.sh: no CA in $dir (make one first: deploy/certs.sh --dir $dir ca)" >&2
    exit 1
  }
  newkey "$work/key.pem"
  openssl req -new -key "$work/key.pem" -subj "/O=LBVM/CN=$name" -out "$work/req.csr"
  openssl x509 -req -in "$work/req.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$ext" -out "$work/cert.pem" 2>/dev/null
  chmod 600 "$work/key.pem"
  chmod 644 "$work/cert.pem"
  mv "$work/key.pem" "$dir/$name-key.pem"
  mv "$work/cert.pem" "$dir/$name.pem"
  echo "certs.sh: $dir/$name.pem and $dir/$name-key.pem (signed by $dir/ca.pem, $days days)"
}

checkname() {
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] && [ "$1" != ca ] || {
    echo "certs.sh: name \"$1\": expected letters, digits, '.', '_' or '-' (it names the files), not \"ca\"" >&2
    exit 2
  }
}

# subject alternative names from addresses: IP addresses as IP:, the rest as DNS: names.
altnames() {
  local list="" address
  [ $# -ge 1 ] || { echo "certs.sh: $kind needs the addresses and names it is reached at" >&2; exit 2; }
  for address in "$@"; do
    if [[ "$address" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || "$address" =~ ^[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*$ ]]; then
      list+="${list:+,}IP:$address"
    elif [[ "$address" =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
      list+="${list:+,}DNS:$address"
    else
      echo "certs.sh: address \"$address\": expected an IP address or a DNS name" >&2
      exit 2
    fi
  done
  echo "$list"
}

case "$kind" in
  ca)
    [ $# -eq 0 ] || usage
    if [ -e "$dir/ca.pem" ] || [ -e "$dir/ca-key.pem" ]; then
      echo "certs.sh: $dir already holds a CA; not overwritten (a new CA goes in another folder: see README.md, \"TLS\")" >&2
      exit 1
    fi
    newkey "$work/ca-key.pem"
    printf '%s\n' 'basicConstraints=critical,CA:TRUE' 'keyUsage=critical,keyCertSign,cRLSign' \
      'subjectKeyIdentifier=hash' >"$work/ext"
    openssl req -new -key "$work/ca-key.pem" -subj "/O=LBVM/CN=LBVM cluster CA $(date -u +%Y-%m-%d)" -out "$work/ca.csr"
    openssl x509 -req -in "$work/ca.csr" -signkey "$work/ca-key.pem" -set_serial "0x$(openssl rand -hex 16)" \
      -days "$days" -extfile "$work/ext" -out "$work/ca.pem" 2>/dev/null
    chmod 644 "$work/ca.pem"
    mv "$work/ca-key.pem" "$dir/ca-key.pem"
    mv "$work/ca.pem" "$dir/ca.pem"
    echo "certs.sh: $dir/ca.pem (give it to every machine) and $dir/ca-key.pem (keep it here, offline if you can)"
    ;;
  agent | server)
    [ $# -ge 2 ] || usage
    checkname "$1"
    name=$1
    shift
    usage_ext='serverAuth'
    # An agent's QEMU is the TLS client of the destination's when it migrates a guest out.
    [ "$kind" = agent ] && usage_ext='serverAuth,clientAuth'
    printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      "extendedKeyUsage=$usage_ext" "subjectAltName=$(altnames "$@")" 'authorityKeyIdentifier=keyid' >"$work/ext"
    sign "$name" "$work/ext"
    ;;
  client)
    [ $# -eq 1 ] || usage
    checkname "$1"
    printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=clientAuth' 'authorityKeyIdentifier=keyid' >"$work/ext"
    sign "$1" "$work/ext"
    ;;
  *)
    echo "certs.sh: unknown command \"$kind\"; expected ca, agent, client or server" >&2
    usage
    ;;
esac
