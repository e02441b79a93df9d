#!/bin/sh
# Makes the test certificates in this directory; they were generated once with it and committed.
#   ca.crt                  a self-signed CA (the CA key is thrown away: nothing else is ever signed)
#   server.crt, server.key  the node's certificate, for IP 127.0.0.1 and DNS localhost
#   client.crt, client.key  a client certificate, for tls_auth_clients
#   server-encrypted.key    server.key under a pass phrase
# All valid for 100 years, so the tests never expire. EC P-256 keys: handshakes are cheap.
set -eu
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days $days \
    -subj "/CN=trionode test CA" -keyout "$work/ca.key" -out ca.crt
for name in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=trionode test $name" -keyout $name.key -out "$work/$name.csr"
done
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$work/server.ext"
printf 'extendedKeyUsage=clientAuth\n' > "$work/client.ext"
for name in server client; do
    openssl x509 -req -in "$work/$name.csr" -CA ca.crt -CAkey "$work/ca.key" -CAserial "$work/ca.srl" -CAcreateserial \
        -days $days -extfile "$work/$name.ext" -out $name.crt
done
# The server key encrypted, to show that the node refuses it rather than ask for a pass phrase.
openssl ec -in server.key -aes256 -passout pass:trionode -out server-encrypted.key
