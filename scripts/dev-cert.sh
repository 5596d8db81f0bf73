#!/bin/sh
# Generates a self-signed development certificate into DIR/server.pem
# (certificate + key, as civetweb wants them) unless one is already there.
# Never for production: use a real certificate chain there.
set -eu
dir=${1:-certs}
pem="$dir/server.pem"
[ -s "$pem" ] && exit 0
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=localhost" \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
umask 077
cat "$tmp/cert.pem" "$tmp/key.pem" > "$pem"
cp "$tmp/cert.pem" "$dir/ca.pem"
echo "dev certificate written to $pem (public part: $dir/ca.pem)" >&2
