#!/bin/sh
# scripts/bench-micro.sh BENCH-BINARY OUTDIR — `make bench-micro`.
#
# Runs bench/micro.c's program under callgrind on the fixture batches with
# the peer benchmark's rule (bench/micro_rules.lua), counting instructions
# only inside bench_micro_run (the measured rounds, not start-up), and
# prints instructions per event and the functions with the most
# instructions of their own. Instruction counts do not depend on the load
# of the machine, so two builds compare on a busy host.
set -eu
bin=$1 out=$2
rounds=${BENCH_MICRO_ROUNDS:-20}
command -v valgrind >/dev/null || { echo "bench-micro: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out/callgrind.out"
valgrind --tool=callgrind --toggle-collect=bench_micro_run --callgrind-out-file="$out/callgrind.out" \
    "$bin" bench/micro_rules.lua "$rounds" tests/fixtures/batch-all-actions.json \
    tests/fixtures/batch-example.json >"$out/run.txt" 2>"$out/valgrind.txt" || {
	cat "$out/valgrind.txt" "$out/run.txt" >&2; exit 1; }
events=$(sed -n 's/^events //p' "$out/run.txt")
digest=$(sed -n 's/^decisions_digest //p' "$out/run.txt")
ir=$(sed -n 's/^summary: *//p;s/^totals: *//p' "$out/callgrind.out" | head -n 1 | awk '{print $1}')
[ -n "$events" ] && [ "$events" -gt 0 ] && [ -n "$ir" ] || { echo "bench-micro: no result" >&2; exit 1; }
echo "bench-micro: $events events ($rounds rounds of the fixture batches), decisions digest $digest"
echo "bench-micro: $ir instructions, $(awk -v ir="$ir" -v n="$events" 'BEGIN{printf "%.0f", ir / n}') Ir/event"
callgrind_annotate --inclusive=no --auto=no --threshold=100 "$out/callgrind.out" >"$out/annotate.txt" 2>/dev/null
# Debian's liblua5.4 and libyajl carry no symbols: their functions show as
# addresses, so the share of each library is printed too.
echo "own instructions by library:"
awk '/^ *[0-9,]+ \([ 0-9.]+%\) .*\]$/ && !/PROGRAM TOTALS/ {
	ir = $1; gsub(",", "", ir); lib = $NF; sub(/.*\//, "", lib); sub(/\]$/, "", lib)
	by[lib] += ir; total += ir }
     END { for (l in by) printf "  %5.1f%%  %s\n", 100 * by[l] / total, l }' "$out/annotate.txt" |
    sort -rn
echo "top functions by own instructions ($out/annotate.txt):"
awk '/^ *[0-9,]+ \([ 0-9.]+%\) / && !/PROGRAM TOTALS/ && n < 15 {print; n++}' "$out/annotate.txt"
