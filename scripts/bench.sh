#!/bin/sh
# `make bench`: loads a running egoi-router over HTTPS keep-alive with
# realistic batches of 1, 10 and 100 events and prints requests/s, events/s,
# p50/p99 latency, failed requests, the daemon's peak RSS and the outbox
# backlog.
#
#   scripts/bench.sh [BIN]          BIN defaults to build/egoi-router
#
# Environment:
#   BENCH_SECONDS=10       length of each wrk run (BENCH_SECONDS=2: CI smoke)
#   BENCH_CONNECTIONS=16   concurrent keep-alive connections (at most 64,
#                          the daemon's worker threads here)
#   BENCH_CLOSE=1          a new connection (TLS handshake) per batch
#                          ("Connection: close"), as senders that do not
#                          keep connections open cause
#   BENCH_DRAIN_SECONDS=30 how long to wait for the outbox to drain at the end
#   BENCH_KEEP=1           keep the temporary directory (logs, wrk output)
#   BENCH_OUTBOX=postgresql  the measured daemon's outbox in a throw-away
#                          PostgreSQL cluster (scripts/pg-test-cluster.sh,
#                          fsync on, Unix socket) instead of SQLite
#   BENCH_SIZES="1 10 100" the batch sizes, one wrk run each (e.g. "1000")
#   BENCH_THREADS=64       the measured daemon's `threads` (at least BENCH_CONNECTIONS)
#
# Set-up, all in a fresh temporary directory removed at exit (the daemons
# this script started are stopped first):
#   - a sink: a second egoi-router on plain HTTP, auth_token = none, rules
#     bench/sink.lua (drop everything), its own data_dir; it accepts the
#     {"events":[...]} bodies the measured instance forwards, so delivery
#     really happens while we measure;
#   - the measured daemon: TLS with a dev certificate, a random token,
#     bench/rules.lua (forward / write / drop), threads = 64;
#   - batches from tests/fixtures/batch-all-actions.json built by
#     bench/mkbatch.lua (every event equally often in every batch size) and
#     checked with `egoi-router test` before use;
#   - wrk with bench/post.lua, which counts every non-200 answer.
# Any non-200 answer, socket error or timeout makes the run fail loudly and
# the script exit 1.
#
# Latency: wrk 4.1 reports percentiles after its coordinated-omission
# correction (each answer slower than runtime/(requests/connection) adds
# synthetic samples), so rare stalls dominate its p50/p99. The table shows
# them as wrk prints them, beside the true mean (connections / requests/s).
# wrk also makes one plain TCP connection to probe the address before a run;
# the daemon logs that as one "sslize error" per run.
set -eu

bin=${1:-build/egoi-router}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

seconds=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-16}
drain=${BENCH_DRAIN_SECONDS:-30}
sizes=${BENCH_SIZES:-1 10 100}
fixture=tests/fixtures/batch-all-actions.json
router_threads=${BENCH_THREADS:-64}

die() { echo "bench: $*" >&2; exit 1; }

for v in "$seconds" "$conns" "$drain" "$router_threads"; do
	case $v in '' | *[!0-9]*) die "BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_DRAIN_SECONDS and BENCH_THREADS must be whole numbers" ;; esac
done
[ "$seconds" -ge 1 ] || die "BENCH_SECONDS must be at least 1"
if [ "$conns" -lt 1 ] || [ "$conns" -gt "$router_threads" ]; then
	die "BENCH_CONNECTIONS must be 1-$router_threads (BENCH_THREADS: the daemon holds one worker thread per connection)"
fi
wrk_threads=2
[ "$conns" -lt 2 ] && wrk_threads=1
[ -x "$bin" ] || die "$bin is not built (run: make all)"
for tool in wrk lua5.4 curl openssl; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (run: scripts/deps.sh bench)"
done
have_sqlite=0
command -v sqlite3 >/dev/null 2>&1 && have_sqlite=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/egoi-bench.XXXXXX")
main_pid=""
sink_pid=""
pgdir=""
pg_uri=""

# stop, free_port, start_daemon
. "$(dirname "$0")/daemon-lib.sh"
cleanup() {
	stop "$main_pid"
	stop "$sink_pid"
	[ -n "$pgdir" ] && scripts/pg-test-cluster.sh stop "$pgdir"
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "bench: kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM



kb() { awk -v k="/^$1:/" '$0 ~ substr(k, 2, length(k) - 2) { print $2 }' "/proc/$2/status" 2>/dev/null || echo 0; }

# ---- certificate, sink, measured daemon ------------------------------------
scripts/dev-cert.sh "$tmp/cert" 2>/dev/null || die "could not make a dev certificate"
token=$(openssl rand -hex 24)
mkdir -p "$tmp/sink/out" "$tmp/main/out"

start_sink

outbox_line="outbox = sqlite"
case ${BENCH_OUTBOX:-sqlite} in
sqlite) ;;
postgresql)
	# its own directory in /tmp: the cluster's owner (nobody, as root) must reach it
	pgdir=$(mktemp -d /tmp/egoi-bench-pg.XXXXXX)
	PG_TEST_FSYNC=on scripts/pg-test-cluster.sh start "$pgdir" || die "could not start PostgreSQL"
	pg_uri="postgresql://egoi@/postgres?host=$pgdir&port=5432"
	outbox_line="outbox = $pg_uri"
	;;
*) die "BENCH_OUTBOX must be sqlite or postgresql" ;;
esac

cat > "$tmp/main.conf.in" <<EOF
listen = 127.0.0.1:PORTs
tls_certificate = $tmp/cert/server.pem
auth_token = $token
rules = $root/bench/rules.lua
data_dir = $tmp/main
output_dir = $tmp/main/out
threads = $router_threads
$outbox_line
# env() in bench/rules.lua reads the sink's URL (rules see no other variable)
rules_env = BENCH_FORWARD_URL
# every load connection comes from 127.0.0.1 (up to 64): not capped per address
rate_limit_exempt = 127.0.0.1
log_level = warn
EOF
start_daemon main https
main_pid=$started_pid
port=$started_port
url="https://127.0.0.1:$port/hooks/egoi"

# ---- batches ---------------------------------------------------------------
fwd=0 wrt=0 drp=0
for n in $sizes; do
	lua5.4 bench/mkbatch.lua "$fixture" "$n" > "$tmp/batch-$n.txt" || die "mkbatch failed"
	while IFS= read -r line; do
		printf '%s' "$line" | "$bin" test --env "BENCH_FORWARD_URL=$BENCH_FORWARD_URL" bench/rules.lua - \
			> "$tmp/decisions" 2>&1 ||
			{ cat "$tmp/decisions" >&2; die "a batch of $n is rejected by egoi-router test"; }
		# shellcheck disable=SC2046 # three numbers, split on purpose
		set -- $(awk '{ f += gsub(/"kind":"forward"/, ""); w += gsub(/"kind":"write"/, "");
			d += gsub(/"kind":"drop"/, "") } END { print f + 0, w + 0, d + 0 }' "$tmp/decisions")
		fwd=$((fwd + $1)) wrt=$((wrt + $2)) drp=$((drp + $3))
	done < "$tmp/batch-$n.txt"
done

echo "egoi-router bench: $(nproc 2>/dev/null || echo '?') CPUs, wrk -t$wrk_threads -c$conns -d${seconds}s" \
	"over HTTPS keep-alive, daemon threads = $router_threads, outbox ${BENCH_OUTBOX:-sqlite}"
echo "routing mix per event (bench/rules.lua): $(awk -v f=$fwd -v w=$wrt -v d=$drp 'BEGIN {
	t = f + w + d; printf "%.0f%% forwarded, %.0f%% written, %.0f%% dropped", 100*f/t, 100*w/t, 100*d/t }')," \
	"forwards delivered to a local sink"

# run_wrk N SECONDS: one wrk run with batches of N; sets the result variables
# from post.lua's BENCH line.
run_wrk() {
	out="$tmp/wrk-$1.out"
	BENCH_BODIES="$tmp/batch-$1.txt" BENCH_TOKEN="$token" \
		wrk -t"$wrk_threads" -c"$conns" -d"$2"s --latency -s bench/post.lua "$url" > "$out" 2>&1 ||
		{ cat "$out" >&2; die "wrk failed"; }
	r_rps=0 r_p50_us=0 r_p99_us=0 r_max_us=0 r_non200=0 r_connect=0 r_read=0 r_write=0 r_timeout=0
	line=$(grep '^BENCH ' "$out" || true)
	[ -n "$line" ] || { cat "$out" >&2; die "wrk printed no BENCH line (bench/post.lua failed?)"; }
	for kv in $line; do
		case $kv in
		rps=* | p50_us=* | p99_us=* | max_us=* | non200=* | connect=* | read=* | write=* | timeout=*)
			eval "r_${kv%%=*}=\${kv#*=}" ;;
		esac
	done
	r_sock=$((r_connect + r_read + r_write + r_timeout))
	if [ "$r_non200" -ne 0 ] || [ "$r_sock" -ne 0 ]; then
		failed=1
		{
			echo "!!! batch $1: $r_non200 non-200 answers, $r_sock socket errors/timeouts" \
				"(connect $r_connect, read $r_read, write $r_write, timeout $r_timeout)"
			grep '^BENCH_FIRST_BAD' "$out" | sed 's/^BENCH_FIRST_BAD/!!! first bad answer:/' || true
		} >&2
	fi
	kill -0 "$main_pid" 2>/dev/null || { tail -20 "$tmp/main.log" >&2; die "the daemon died during the run"; }
}

failed=0
# Warm-up: every worker's Lua state, TLS sessions, the outbox's first pages.
run_wrk "${sizes%% *}" 1

table="$tmp/table"
printf '%6s %7s %10s %10s %8s %8s %8s %8s %8s %8s %8s\n' batch "body B" "requests/s" "events/s" \
	"mean ms" "p50 ms" "p99 ms" "max ms" non-200 "sock err" "RSS MiB" > "$table"
for n in $sizes; do
	run_wrk "$n" "$seconds"
	bytes=$(awk '{ s += length($0) } END { printf "%d", s / NR }' "$tmp/batch-$n.txt")
	rss=$(kb VmRSS "$main_pid")
	awk -v n="$n" -v b="$bytes" -v rps="$r_rps" -v c="$conns" -v p50="$r_p50_us" -v p99="$r_p99_us" \
		-v max="$r_max_us" -v bad="$r_non200" -v sock="$r_sock" -v rss="$rss" 'BEGIN {
		printf "%6d %7d %10.0f %10.0f %8.2f %8.2f %8.2f %8.1f %8d %8d %8.1f\n", n, b, rps, rps * n,
			(rps > 0 ? 1000 * c / rps : 0), p50 / 1000, p99 / 1000, max / 1000, bad, sock, rss / 1024 }' >> "$table"
done

echo
cat "$table"
echo "  mean = connections / requests/s (Little's law: the true mean for wrk's closed loop);"
echo "  p50/p99 are wrk 4.1's, which corrects for coordinated omission (stats_correct):"
echo "  every answer slower than the mean interval adds synthetic samples, so stalls"
echo "  weigh far more in p50/p99 than the requests they actually delayed; max is as measured."
echo
echo "daemon peak RSS (VmHWM): $(kb VmHWM "$main_pid" | awk '{ printf "%.1f MiB", $1 / 1024 }')," \
	"sink: $(kb VmHWM "$sink_pid" | awk '{ printf "%.1f MiB", $1 / 1024 }')"
[ -f "$tmp/main/out/engagement.jsonl" ] &&
	echo "engagement.jsonl: $(wc -l < "$tmp/main/out/engagement.jsonl") lines written"

if [ -n "$pg_uri" ] || { [ "$have_sqlite" = 1 ] && [ -f "$tmp/main/outbox.db" ]; }; then
	if [ -n "$pg_uri" ]; then
		q() { psql -Atq "$pg_uri" -c "$1" 2>/dev/null || echo '?'; }
	else
		q() { sqlite3 -cmd '.timeout 5000' "$tmp/main/outbox.db" "$1" 2>/dev/null || echo '?'; }
	fi
	backlog=$(q 'select count(*) from deliveries')
	echo "outbox backlog when the load stopped: $backlog deliveries"
	waited=0
	while [ "$backlog" != 0 ] && [ "$waited" -lt "$drain" ]; do
		sleep 1
		waited=$((waited + 1))
		backlog=$(q 'select count(*) from deliveries')
	done
	if [ "$backlog" = 0 ]; then
		echo "outbox drained ${waited}s after the load stopped"
	else
		echo "!!! outbox still holds $backlog deliveries ${waited}s after the load stopped" >&2
	fi
	dead=$(q 'select count(*) from dead_letters')
	echo "dead letters: $dead"
	if [ "$dead" != 0 ]; then
		failed=1
		echo "!!! $dead dead letters (delivery or rules failed):" >&2
		q 'select kind, reason from dead_letters group by kind, reason limit 5' >&2
	fi
else
	echo "outbox backlog: not measured (sqlite3 is not installed)"
fi

for name in main sink; do
	nlog=$(wc -l < "$tmp/$name.log")
	if [ "$nlog" -gt 0 ]; then
		echo "$name daemon logged $nlog warnings/errors; first ones:"
		head -5 "$tmp/$name.log" | cut -c1-300
	fi
done

if [ "$failed" -ne 0 ]; then
	echo >&2
	echo "!!! BENCH FAILED: see the !!! lines above (a wrk timeout is an answer slower than 2 s)" >&2
	exit 1
fi
