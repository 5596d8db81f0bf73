#!/bin/sh
# `make run`: starts the daemon in the foreground with router.conf.example
# and rules/example.lua on https://127.0.0.1:8443, with a random dev token
# kept in var/dev-token, and prints a curl command that posts a fixture.
set -eu
bin=${1:-build/egoi-router}
mkdir -p var
if [ -z "${EGOI_ROUTER_TOKEN:-}" ]; then
	[ -s var/dev-token ] || (umask 077; openssl rand -hex 16 > var/dev-token)
	EGOI_ROUTER_TOKEN=$(cat var/dev-token)
	export EGOI_ROUTER_TOKEN
fi
cat <<MSG
egoi-router: starting on https://127.0.0.1:8443 (Ctrl-C stops it)
  rules:  rules/example.lua   outbox: var/outbox.db   files: var/out/
  CRM_URL / SLACK_URL unset? The example rules then write to var/out/ instead.
Post the example batch from another terminal:

  curl --cacert certs/ca.pem -H 'Content-Type: application/json' \\
       -H "X-Router-Token: $EGOI_ROUTER_TOKEN" \\
       --data-binary @tests/fixtures/batch-all-actions.json \\
       https://127.0.0.1:8443/hooks/egoi

MSG
exec "$bin" run -c router.conf.example
