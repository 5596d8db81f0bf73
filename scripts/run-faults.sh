#!/bin/sh
# `make faults`: runs every scenario of the fault suite as its own process,
# all at the same time, and fails if any of them failed.
#
#   scripts/run-faults.sh BIN LOGDIR
#
# BIN is build/tests/test_faults (or build/san/...); EGOI_ROUTER_BIN must name
# the daemon. `BIN --list` prints the scenario names; `BIN NAME` runs one.
# Each scenario's output goes to LOGDIR/NAME.log; when all have finished the
# logs are printed one after the other (each scenario ends with a FIGURES
# line), then a summary. The scenarios spend most of their time waiting for
# a fault to last or a backlog to drain, so running them side by side makes
# the suite about as long as its longest scenario.
#
# Every scenario bounds its own waits; FAULTS_TIMEOUT (default 600 s) is a
# last guard per process, so a hung scenario is killed and counted failed.
# FAULTS_FILTER='glob' runs only the names that match (shell pattern).
set -u

bin=${1:?usage: run-faults.sh BIN LOGDIR}
logdir=${2:?usage: run-faults.sh BIN LOGDIR}
timeout=${FAULTS_TIMEOUT:-600}
filter=${FAULTS_FILTER:-*}

names=$("$bin" --list) || { echo "run-faults: $bin --list failed" >&2; exit 1; }
mkdir -p "$logdir" || exit 1

pids=""
for name in $names; do
	case $name in
	$filter) ;;
	*) continue ;;
	esac
	rm -f "$logdir/$name.log" "$logdir/$name.rc"
	( timeout -k 10 "$timeout" "$bin" "$name" >"$logdir/$name.log" 2>&1
	  echo $? >"$logdir/$name.rc" ) &
	pids="$pids $!"
	echo "   started $name"
done
for pid in $pids; do
	wait "$pid"
done

fail=0
passed=""
skipped=""
failed=""
for name in $names; do
	[ -f "$logdir/$name.rc" ] || continue
	rc=$(cat "$logdir/$name.rc")
	echo "---- $name (exit $rc) ----"
	cat "$logdir/$name.log"
	if [ "$rc" = 0 ] && grep -q 'SKIPPED' "$logdir/$name.log"; then
		skipped="$skipped $name"
	elif [ "$rc" = 0 ]; then
		passed="$passed $name"
	else
		failed="$failed $name"
		fail=1
	fi
done
echo "---- fault suite figures ----"
grep -h '^FIGURES ' "$logdir"/*.log 2>/dev/null
echo "---- fault suite: passed:${passed:- none}"
[ -z "$skipped" ] || echo "---- fault suite: skipped (see their logs):$skipped"
[ -z "$failed" ] || echo "---- fault suite: FAILED:$failed (logs in $logdir)"
exit $fail
