#!/usr/bin/env bash
# Make the network's TLS material with openssl: a CA, the coordinator's server certificate, and a
# client certificate per site (for mTLS). Keys are ECDSA P-256, written with mode 0600.
#
#   deploy/pki/make-pki.sh --out DIR [--server-name HOST]... [--site SITE]... [--days N]
#
# Writes DIR/ca.pem, DIR/ca.key, DIR/coordinator.pem, DIR/coordinator.key and, per site,
# DIR/sites/SITE.pem and DIR/sites/SITE.key. An existing CA in DIR is reused, so sites can be
# added later. The coordinator certificate always names localhost, 127.0.0.1 and ::1 as well.
set -euo pipefail

out="" days=825 names=() sites=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --server-name) names+=("$2"); shift 2 ;;
    --site) sites+=("$2"); shift 2 ;;
    --days) days="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "--out DIR is required (see --help)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "openssl is not installed" >&2; exit 1; }
umask 077
mkdir -p "$out/sites"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [ ! -f "$out/ca.pem" ]; then
  key "$out/ca.key"
  openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/O=rarenet/CN=rarenet network CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.pem"
fi

sign() {  # sign NAME SUBJECT EXTFILE
  openssl req -new -key "$out/$1.key" -subj "$2" -out "$out/$1.csr"
  openssl x509 -req -in "$out/$1.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial -sha256 \
    -days "$days" -extfile "$3" -out "$out/$1.pem" 2>/dev/null
  rm -f "$out/$1.csr" "$3"
}

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in "${names[@]+"${names[@]}"}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san="$san,IP:$n"; else san="$san,DNS:$n"; fi
done
ext=$(mktemp)
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$san" > "$ext"
key "$out/coordinator.key"
sign coordinator "/O=rarenet/CN=rarenet coordinator" "$ext"

for site in "${sites[@]+"${sites[@]}"}"; do
  ext=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:rarenet:site:%s\n' "$site" > "$ext"
  key "$out/sites/$site.key"
  sign "sites/$site" "/O=rarenet/OU=site/CN=$site" "$ext"
done
chmod 644 "$out/ca.pem" "$out/coordinator.pem" "$out"/sites/*.pem 2>/dev/null || true
echo "CA: $out/ca.pem; coordinator: $out/coordinator.pem (SAN $san); sites: ${sites[*]+"${sites[*]}"}"
