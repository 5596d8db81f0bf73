#!/bin/sh
# A throw-away PostgreSQL cluster for the tests (never for production):
#   scripts/pg-test-cluster.sh start DIR   initdb in DIR/data, server on the
#                                          Unix socket DIR/.s.PGSQL.5432 only
#   scripts/pg-test-cluster.sh stop DIR    stops it (immediate) and removes DIR
#   scripts/pg-test-cluster.sh halt DIR    stops it, keeps DIR (restart: start)
# The URI of its database: postgresql://egoi@/postgres?host=DIR&port=5432
# PostgreSQL refuses to run as root: as root, the cluster belongs to nobody.
# No TCP port is opened (listen_addresses is empty), so concurrent test runs
# never collide; fsync is off because a test cluster needs no durability
# (PG_TEST_FSYNC=on keeps it, for benchmarks that should pay for it).
set -eu
cmd=$1 dir=$2
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}
case $cmd in
start)
	mkdir -p "$dir"
	[ "$(id -u)" -eq 0 ] && chown nobody "$dir"
	chmod 0700 "$dir"
	if [ ! -d "$dir/data" ]; then
		as_owner "$bin/initdb" -D "$dir/data" -A trust -U egoi --no-sync -E UTF8 \
			>"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
	fi
	as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-k $dir -p 5432 -c listen_addresses= -c fsync=${PG_TEST_FSYNC:-off} -c max_connections=200" \
		start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
	;;
halt)
	as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
	;;
stop)
	as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*)
	echo "usage: $0 start|halt|stop DIR" >&2
	exit 2
	;;
esac
