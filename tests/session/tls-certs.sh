#!/bin/sh
# Makes throw-away TLS material for the session tests in DIR: a CA, a server certificate for "localhost"
# signed by it, a client certificate signed by it, an unrelated second CA, and a PSK file (hex).
set -eu
dir=$1
cd "$dir"
q() { "$@" >/dev/null 2>&1; }
for ca in ca other-ca; do
  q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key -out $ca.pem \
    -days 2 -subj "/CN=rsprof test $ca"
done
for who in server client; do
  q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $who.key -out $who.csr \
    -subj "/CN=localhost"
  printf 'subjectAltName=DNS:localhost\n' > $who.ext
  q openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 2 \
    -extfile $who.ext
done
printf '00112233445566778899aabbccddeeff\n' > psk.hex
