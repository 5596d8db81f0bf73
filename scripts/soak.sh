#!/bin/sh
# `make soak`: a steady-load soak of the real daemon. Posts batches at a
# fixed, moderate rate over HTTPS keep-alive for SOAK_MINUTES, prints one
# row a minute (RSS, fds, threads, outbox size, backlog, dead letters,
# requests, deliveries), then stops the load, waits for the backlog to
# drain and says whether RSS levelled off.
#
#   scripts/soak.sh [BIN [LOAD]]    BIN defaults to build/egoi-router,
#                                   LOAD (bench/soak_load.c) to build/soak-load
#
# Environment:
#   SOAK_MINUTES=30          length of the load (1-1440)
#   SOAK_RATE=300            batches per second (1-5000)
#   SOAK_EVENTS=20           events per batch (1-1000)
#   SOAK_CONNECTIONS=8       keep-alive connections, the most requests in
#                            flight at once (1-64)
#   SOAK_DRAIN_SECONDS=120   how long the backlog may take to drain afterwards
#   SOAK_KEEP=1              keep the temporary directory (logs, samples)
#
# Set-up, as in scripts/bench.sh, all in a fresh temporary directory removed
# at exit (the processes this script started are stopped first), 127.0.0.1
# only: a receiver (a second egoi-router on plain HTTP running
# bench/sink.lua, which drops everything) and the measured daemon (TLS with
# a dev certificate, a random token, bench/rules.lua: forward / write /
# drop, threads = 64), batches from tests/fixtures/batch-all-actions.json
# built by bench/mkbatch.lua and checked with `egoi-router test`.
#
# The written file (engagement.jsonl) is renamed every minute and the one
# renamed the minute before is counted and deleted: the daemon rechecks a
# cached file's inode every 10 ms and reopens the path, so nothing is lost
# and the disk holds at most about two minutes of lines.
#
# Samples: RSS every 10 s (for the slopes), the full row every minute.
# The run fails (exit 1) when any request got a non-200 answer or a
# transport error, a daemon died, the backlog did not drain within
# SOAK_DRAIN_SECONDS, a dead letter appeared, the receiver got fewer events
# than were forwarded, or the lines on disk differ from the write decisions.
# The RSS verdict is printed, not enforced: a run much shorter than 30
# minutes cannot tell a slow warm-up from a leak.
set -eu

bin=${1:-build/egoi-router}
load=${2:-build/soak-load}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
case $load in /*) ;; *) load=$(pwd)/$load ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

minutes=${SOAK_MINUTES:-30}
rate=${SOAK_RATE:-300}
events=${SOAK_EVENTS:-20}
conns=${SOAK_CONNECTIONS:-8}
drain=${SOAK_DRAIN_SECONDS:-120}
fixture=tests/fixtures/batch-all-actions.json
router_threads=64
tick=10          # seconds between RSS samples; 60 is a multiple of it
flat_kbs=0.5     # RSS slope (kB/s) over the last third below which it has levelled off

die() { echo "soak: $*" >&2; exit 1; }

# range NAME VALUE MIN MAX
range() {
	case $2 in '' | *[!0-9]*) die "$1 must be a whole number (got '$2')" ;; esac
	if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then die "$1 must be $3-$4 (got $2)"; fi
}
range SOAK_MINUTES "$minutes" 1 1440
range SOAK_RATE "$rate" 1 5000
range SOAK_EVENTS "$events" 1 1000
range SOAK_CONNECTIONS "$conns" 1 "$router_threads"
range SOAK_DRAIN_SECONDS "$drain" 1 3600
[ -x "$bin" ] || die "$bin is not built (run: make all)"
[ -x "$load" ] || die "$load is not built (run: make build/soak-load)"
for tool in lua5.4 curl openssl; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (run: scripts/deps.sh bench)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/egoi-soak.XXXXXX")
main_pid=""
sink_pid=""
load_pid=""

# stop, free_port, start_daemon
. "$(dirname "$0")/daemon-lib.sh"
cleanup() {
	stop "$load_pid"
	stop "$main_pid"
	stop "$sink_pid"
	if [ "${SOAK_KEEP:-0}" = 1 ]; then
		echo "soak: kept $tmp" >&2
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM



# ---- measurements -----------------------------------------------------------
now() { cut -d' ' -f1 /proc/uptime; }          # monotonic seconds, 0.01 s steps
status_field() { awk -v k="$1:" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' \
	"/proc/$2/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# Worker threads that have written a line: each keeps its own descriptor on
# output_dir from its first write on, so these are counted. Each also holds
# a Lua state from its first batch: RSS and fds grow with this number until
# every one of the `threads` workers has served a request.
writers() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -lname "$out" 2>/dev/null | wc -l; }
size_kb() { if [ -f "$1" ]; then echo $(( ($(stat -c %s "$1") + 1023) / 1024 )); else echo 0; fi; }
# CPU seconds (user + system) the process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' \
	"/proc/$1/stat" 2>/dev/null || echo 0; }

# scrape NAME SCHEME PORT: GET /metrics into $tmp/NAME.metrics (empty on failure).
scrape() {
	curl -s --max-time 5 --cacert "$tmp/cert/ca.pem" -o "$tmp/$1.metrics" \
		"$2://127.0.0.1:$3/metrics" || : > "$tmp/$1.metrics"
}
# metric NAME PATTERN: the sum of the samples whose name-and-labels match
# PATTERN (an awk regex) in $tmp/NAME.metrics, or '?' when there is none.
metric() {
	awk -v re="$2" '!/^#/ && $1 ~ re { s += $2; f = 1 } END { if (f) printf "%.0f\n", s; else print "?" }' \
		"$tmp/$1.metrics"
}
# loadstat KEY: a counter from the load generator's stats file.
loadstat() {
	tr ' ' '\n' < "$tmp/load.stats" 2>/dev/null | awk -F= -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'
}

# Written lines: those in files already deleted plus those still on disk.
counted=0
written() {
	n=$counted
	for f in "$out"/engagement.jsonl*; do
		[ -f "$f" ] && n=$((n + $(wc -l < "$f")))
	done
	echo "$n"
}
# rotate M: count and delete the file renamed last minute, rename the live one.
rotate() {
	for f in "$out"/engagement.jsonl.rot.*; do
		[ -f "$f" ] || continue
		counted=$((counted + $(wc -l < "$f")))
		rm -f "$f"
	done
	[ -f "$out/engagement.jsonl" ] && mv "$out/engagement.jsonl" "$out/engagement.jsonl.rot.$1"
	return 0
}

alive() {
	kill -0 "$main_pid" 2>/dev/null || { tail -20 "$tmp/main.log" >&2; die "the daemon died (log above)"; }
	kill -0 "$sink_pid" 2>/dev/null || { tail -20 "$tmp/sink.log" >&2; die "the receiver died (log above)"; }
}

header() {
	printf '%5s %8s %5s %4s %4s %5s %8s %7s %7s %5s %9s %9s %6s %5s %10s %10s\n' \
		min "RSS kB" fds thr wkr cpu% "db kB" "wal kB" pending dead sent 200 non200 err \
		delivered written
}
# row LABEL: one line of the table; also leaves the values in r_* variables.
last_cpu=0 last_t=0
row() {
	scrape main https "$port"
	scrape sink http "$sink_port"
	t=$(now)
	c=$(cpu_s "$main_pid")
	r_cpu=$(awk -v c="$c" -v lc="$last_cpu" -v t="$t" -v lt="$last_t" \
		'BEGIN { if (t - lt >= 1) printf "%.0f", 100 * (c - lc) / (t - lt); else print "-" }')
	last_cpu=$c last_t=$t
	r_rss=$(status_field VmRSS "$main_pid")
	r_fds=$(fds "$main_pid")
	r_thr=$(status_field Threads "$main_pid")
	r_wkr=$(writers "$main_pid")
	r_db=$(size_kb "$tmp/main/outbox.db")
	r_wal=$(size_kb "$tmp/main/outbox.db-wal")
	r_pending=$(metric main '^egoi_router_outbox_pending$')
	r_dead=$(metric main '^egoi_router_dead_letters$')
	r_sent=$(loadstat sent) r_ok=$(loadstat ok) r_bad=$(loadstat non200) r_err=$(loadstat errors)
	r_delivered=$(metric sink '^egoi_router_events_total[{]')
	r_forwarded=$(metric main '^egoi_router_decisions_total[{]kind="forward"')
	r_writes=$(metric main '^egoi_router_decisions_total[{]kind="write"')
	r_written=$(written)
	printf '%5s %8s %5s %4s %4s %5s %8s %7s %7s %5s %9s %9s %6s %5s %10s %10s\n' \
		"$1" "$r_rss" "$r_fds" "$r_thr" "$r_wkr" "$r_cpu" "$r_db" "$r_wal" "$r_pending" "$r_dead" \
		"$r_sent" "$r_ok" "$r_bad" "$r_err" "$r_delivered" "$r_written"
	echo "$1 $r_rss $r_fds $r_thr $r_wkr $r_cpu $r_db $r_wal $r_pending $r_dead" >> "$tmp/rows"
}

# sleep_until T: sleeps until now() >= T (T in the same clock).
sleep_until() {
	d=$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.2f", (d > 0 ? d : 0) }')
	[ "$d" = 0.00 ] || sleep "$d"
}

# ---- certificate, receiver, measured daemon ---------------------------------
scripts/dev-cert.sh "$tmp/cert" 2>/dev/null || die "could not make a dev certificate"
token=$(openssl rand -hex 24)
out=$tmp/main/out
mkdir -p "$tmp/sink/out" "$out"

start_sink

cat > "$tmp/main.conf.in" <<EOF
listen = 127.0.0.1:PORTs
tls_certificate = $tmp/cert/server.pem
auth_token = $token
rules = $root/bench/rules.lua
# env() reads only the names listed here
rules_env = BENCH_FORWARD_URL
data_dir = $tmp/main
output_dir = $out
threads = $router_threads
# every load connection comes from 127.0.0.1 (up to 64): not capped per address
rate_limit_exempt = 127.0.0.1
log_level = warn
EOF
start_daemon main https
main_pid=$started_pid
port=$started_port

# ---- batches ---------------------------------------------------------------
lua5.4 bench/mkbatch.lua "$fixture" "$events" > "$tmp/batches.txt" || die "mkbatch failed"
fwd=0 wrt=0 drp=0
while IFS= read -r line; do
	printf '%s' "$line" | "$bin" test --env BENCH_FORWARD_URL="$BENCH_FORWARD_URL" bench/rules.lua - > "$tmp/decisions" 2>&1 ||
		{ cat "$tmp/decisions" >&2; die "a batch is rejected by egoi-router test"; }
	# shellcheck disable=SC2046 # three numbers, split on purpose
	set -- $(awk '{ f += gsub(/"kind":"forward"/, ""); w += gsub(/"kind":"write"/, "");
		d += gsub(/"kind":"drop"/, "") } END { print f + 0, w + 0, d + 0 }' "$tmp/decisions")
	fwd=$((fwd + $1)) wrt=$((wrt + $2)) drp=$((drp + $3))
done < "$tmp/batches.txt"

seconds=$((minutes * 60))
echo "egoi-router soak: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc 2>/dev/null || echo '?') CPUs," \
	"$minutes min at $rate batches/s of $events events ($((rate * events)) events/s)" \
	"over HTTPS keep-alive, $conns connections, daemon threads = $router_threads"
echo "routing mix per event (bench/rules.lua): $(awk -v f=$fwd -v w=$wrt -v d=$drp 'BEGIN {
	t = f + w + d; printf "%.0f%% forwarded, %.0f%% written, %.0f%% dropped", 100*f/t, 100*w/t, 100*d/t }')," \
	"forwards delivered to a local receiver"
echo "columns: daemon RSS, open fds, threads, worker threads that have written a line"
echo "  (each holds a Lua state and two fds), CPU% over the minute; outbox.db and its WAL;"
echo "  pending deliveries and dead letters (GET /metrics); requests sent / answered 200 /"
echo "  other answers / transport errors; events the receiver got; lines written"
echo

# ---- the load --------------------------------------------------------------
: > "$tmp/rss.samples"
: > "$tmp/rows"
SOAK_TOKEN=$token "$load" --url "https://127.0.0.1:$port/hooks/egoi" --cacert "$tmp/cert/ca.pem" \
	--bodies "$tmp/batches.txt" --rate "$rate" --seconds "$seconds" --connections "$conns" \
	--stats "$tmp/load.stats" > "$tmp/load.out" 2> "$tmp/load.err" &
load_pid=$!
t0=$(now)
last_t=$t0
last_cpu=$(cpu_s "$main_pid")
header
row 0
k=1
while [ "$k" -le $((seconds / tick)) ]; do
	sleep_until "$(awk -v a="$t0" -v b=$((k * tick)) 'BEGIN { print a + b }')"
	alive
	echo "$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }') $(status_field VmRSS "$main_pid")" \
		>> "$tmp/rss.samples"
	if [ $((k * tick % 60)) -eq 0 ]; then
		m=$((k * tick / 60))
		row "$m"
		rotate "$m"
	fi
	k=$((k + 1))
done

# ---- after the load ---------------------------------------------------------
failed=0
load_rc=0
wait "$load_pid" || load_rc=$?
load_pid=""
line=$(grep '^LOAD ' "$tmp/load.out" || true)
if [ "$load_rc" -ne 0 ] || [ -z "$line" ]; then
	cat "$tmp/load.out" "$tmp/load.err" >&2
	die "the load generator failed (exit $load_rc)"
fi
l_sent=0 l_ok=0 l_non200=0 l_errors=0 l_rate=0 l_p50_ms=0 l_p99_ms=0 l_max_ms=0 l_max_behind=0
for kv in $line; do
	case $kv in
	sent=* | ok=* | non200=* | errors=* | rate=* | p50_ms=* | p99_ms=* | max_ms=* | max_behind=*)
		eval "l_${kv%%=*}=\${kv#*=}" ;;
	esac
done

# Drain: every forward delivered and counted by the receiver.
waited=0
t_stop=$(now)
while :; do
	alive
	scrape main https "$port"
	scrape sink http "$sink_port"
	pending=$(metric main '^egoi_router_outbox_pending$')
	delivered=$(metric sink '^egoi_router_events_total[{]')
	forwarded=$(metric main '^egoi_router_decisions_total[{]kind="forward"')
	[ "$pending" = 0 ] && [ "$delivered" != '?' ] && [ "$forwarded" != '?' ] &&
		[ "$delivered" -ge "$forwarded" ] && break
	[ "$waited" -ge "$drain" ] && break
	sleep 1
	waited=$(awk -v a="$(now)" -v b="$t_stop" 'BEGIN { printf "%d", a - b }')
done
row end
echo

# ---- summary ----------------------------------------------------------------
echo "load: $l_sent requests in ${seconds}s ($l_rate/s, target $rate/s), $l_ok answered 200," \
	"$l_non200 other answers, $l_errors transport errors; latency p50 ${l_p50_ms} ms," \
	"p99 ${l_p99_ms} ms, max ${l_max_ms} ms; most requests waiting for a free connection: $l_max_behind"
if [ "$l_non200" -ne 0 ] || [ "$l_errors" -ne 0 ] || [ "$l_ok" -ne "$l_sent" ]; then
	failed=1
	echo "!!! $l_non200 non-200 answers and $l_errors transport errors (timeout: 10 s)" >&2
	sed 's/^/!!! /' "$tmp/load.err" >&2
fi
if awk -v r="$l_rate" -v t="$rate" 'BEGIN { exit !(r < 0.95 * t) }'; then
	echo "note: the load generator sent at $l_rate/s, below 95% of the target $rate/s" \
		"(the machine or the daemon did not keep up with the schedule)"
fi
maxpend=$(awk '$1 != "end" && $9 != "?" && $9 > m { m = $9 } END { print m + 0 }' "$tmp/rows")
echo "deliveries: most pending at a minute's sample $maxpend; after the load stopped" \
	"$r_pending pending after waiting ${waited}s (limit ${drain}s)"
if [ "$r_pending" != 0 ]; then
	failed=1
	echo "!!! the backlog did not drain: $r_pending deliveries pending ${waited}s after the load stopped" >&2
fi
if [ "$r_dead" != 0 ]; then
	failed=1
	echo "!!! $r_dead dead letters:" >&2
	"$bin" dlq list -c "$tmp/main.conf" --limit 5 >&2 2>&1 || true
fi
echo "events: $r_forwarded forwarded by the daemon, $r_delivered received by the receiver;" \
	"$r_writes write decisions, $r_written lines on disk"
if [ "$r_delivered" = '?' ] || [ "$r_forwarded" = '?' ] || [ "$r_delivered" -lt "$r_forwarded" ]; then
	failed=1
	echo "!!! the receiver got fewer events than were forwarded" >&2
elif [ "$r_delivered" -gt "$r_forwarded" ]; then
	echo "note: $((r_delivered - r_forwarded)) events were delivered twice (at-least-once delivery after a retry)"
fi
if [ "$r_writes" != "$r_written" ]; then
	failed=1
	echo "!!! $r_written lines on disk for $r_writes write decisions" >&2
fi
first=$(awk 'NR == 2' "$tmp/rows")
last=$(awk '$1 != "end" { l = $0 } END { print l }' "$tmp/rows")
# shellcheck disable=SC2086 # fields, split on purpose
set -- $first
f_rss=$2 f_fds=$3 f_thr=$4 f_wkr=$5 f_db=$7
# shellcheck disable=SC2086
set -- $last
echo "from minute 1 to minute $1: RSS $f_rss -> $2 kB, fds $f_fds -> $3, threads $f_thr -> $4," \
	"workers that have written $f_wkr -> $5 of $router_threads, outbox.db $f_db -> $7 kB;" \
	"peak RSS (VmHWM) $(status_field VmHWM "$main_pid") kB"

# RSS slope: least squares over the samples of the first and of the last third.
slopes=$(awk -v T="$seconds" '
	function fit(lo, hi,   i, n, sx, sy, sxx, sxy) {
		n = sx = sy = sxx = sxy = 0
		for (i = 1; i <= N; i++)
			if (t[i] >= lo && t[i] <= hi) { n++; sx += t[i]; sy += r[i]; sxx += t[i] * t[i]; sxy += t[i] * r[i] }
		if (n < 2 || n * sxx == sx * sx) return "?"
		return sprintf("%.2f", (n * sxy - sx * sy) / (n * sxx - sx * sx))
	}
	{ N++; t[N] = $1; r[N] = $2 }
	END { print fit(0, T / 3 + 1), fit(2 * T / 3 - 1, T + 1) }' "$tmp/rss.samples")
# shellcheck disable=SC2086
set -- $slopes
first_kbs=$1 last_kbs=$2
verdict=$(awk -v a="$first_kbs" -v b="$last_kbs" -v flat="$flat_kbs" 'BEGIN {
	if (a == "?" || b == "?") print "not enough samples"
	else if (b <= flat) print "levelled off (last third <= " flat " kB/s)"
	else if (b < a / 4) print "slowing down but not level (last third > " flat " kB/s, < 1/4 of the first)"
	else print "STILL GROWING (last third > " flat " kB/s and >= 1/4 of the first)" }')
# Workers that began writing during the last third bring their Lua states with them.
wkr_third=$(awk -v m=$((2 * minutes / 3)) '$1 == m { print $5 }' "$tmp/rows")
wkr_last=$(awk '$1 != "end" { l = $5 } END { print l }' "$tmp/rows")
[ -n "$wkr_third" ] && [ "$wkr_last" -gt "$wkr_third" ] &&
	verdict="$verdict; $((wkr_last - wkr_third)) more workers began writing during the last third (their Lua states are part of that growth)"
[ "$minutes" -lt 15 ] && verdict="$verdict; a run of $minutes min is too short to judge"
echo "RSS growth: first third $first_kbs kB/s, last third $last_kbs kB/s ($(wc -l < "$tmp/rss.samples")" \
	"samples, every ${tick}s): $verdict"

for name in main sink; do
	nlog=$(wc -l < "$tmp/$name.log")
	if [ "$nlog" -gt 0 ]; then
		echo "$name daemon logged $nlog warnings/errors; first ones:"
		head -5 "$tmp/$name.log" | cut -c1-300
	fi
done

if [ "$failed" -ne 0 ]; then
	echo >&2
	echo "!!! SOAK FAILED: see the !!! lines above" >&2
	exit 1
fi
echo "soak passed: no failed request, no dead letter, backlog drained, every event accounted for"
