#!/bin/bash
# Example TLS set-up for rsprof: makes a private CA, a certificate for the board (the agent's server
# certificate) and one for the host (the collector's client certificate), all signed by the CA.
# Usage: make-tls.sh OUTDIR BOARD_NAME [HOST_NAME]
#   then copy OUTDIR/{ca.pem,board.pem,board.key} to the board's /etc/rsprof/ and keep
#   OUTDIR/{ca.key} offline; the collector uses --tls-ca ca.pem --tls-cert host.pem --tls-key host.key.
# A pre-shared key alternative: `openssl rand -hex 32 > psk.hex` on both sides, with
#   rsprof-agent --tls-psk-file psk.hex --tls-psk-identity NAME.
set -euo pipefail
out=${1:?usage: make-tls.sh OUTDIR BOARD_NAME [HOST_NAME]}
board=${2:?usage: make-tls.sh OUTDIR BOARD_NAME [HOST_NAME]}
host=${3:-rsprof-host}
days=${RSPROF_TLS_DAYS:-825}
mkdir -p "$out"
cd "$out"
umask 077

if [ ! -f ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days "$days" -subj "/CN=rsprof CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
fi

# make_cert NAME CN USAGE [SAN]: a P-256 key and a certificate signed by the CA.
make_cert() {
  local name=$1 cn=$2 usage=$3 san=${4:-}
  local ext
  ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" -out "$name.csr" \
    -subj "/CN=$cn"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$name.pem" \
    -days "$days" -extfile "$ext"
  rm -f "$name.csr" "$ext"
}

make_cert board "$board" serverAuth "DNS:$board"
make_cert host "$host" clientAuth
echo "made: $out/ca.pem (public), $out/ca.key (keep offline), board.{pem,key}, host.{pem,key}"
