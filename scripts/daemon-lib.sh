# daemon-lib.sh — sourced by bench.sh and soak.sh: start and stop egoi-router
# daemons on free local ports. Needs $bin (the binary), $tmp (a scratch
# directory holding cert/ca.pem and NAME.conf.in templates), $root (the
# repository), $router_threads and die().

# Stops one daemon: SIGTERM, then SIGKILL if it is still there after 10 s.
stop() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || return 0
	i=0
	while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# A TCP port nobody on this machine has bound (checked in /proc/net), taken
# at random from 20000-59999; start_daemon retries if we still lose a race.
free_port() {
	while :; do
		r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
		p=$((20000 + r % 40000))
		hex=$(printf ':%04X' "$p")
		cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
			awk -v p="$hex" 'substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' ||
			{ echo "$p"; return 0; }
	done
}

# start_daemon NAME SCHEME: writes $tmp/NAME.conf from the template
# $tmp/NAME.conf.in (PORT replaced), starts the daemon and waits until
# /healthz answers 200. Sets started_pid and started_port.
start_daemon() {
	name=$1 scheme=$2 attempt=0
	while [ "$attempt" -lt 5 ]; do
		attempt=$((attempt + 1))
		started_port=$(free_port)
		sed "s/PORT/$started_port/" "$tmp/$name.conf.in" > "$tmp/$name.conf"
		"$bin" run -c "$tmp/$name.conf" > "$tmp/$name.log" 2>&1 &
		started_pid=$!
		i=0
		while [ "$i" -lt 100 ]; do
			if ! kill -0 "$started_pid" 2>/dev/null; then
				wait "$started_pid" 2>/dev/null || true
				break
			fi
			code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
				--cacert "$tmp/cert/ca.pem" "$scheme://127.0.0.1:$started_port/healthz" || true)
			[ "$code" = 200 ] && return 0
			sleep 0.1
			i=$((i + 1))
		done
		if kill -0 "$started_pid" 2>/dev/null; then
			stop "$started_pid"
			cat "$tmp/$name.log" >&2
			die "the $name daemon did not answer /healthz within 10 s"
		fi
		# Exited: a lost race for the port is worth another try.
		grep -qi 'bind\|address already in use\|cannot listen\|port' "$tmp/$name.log" || break
	done
	cat "$tmp/$name.log" >&2
	die "the $name daemon did not start"
}

# start_sink: the receiver of forwards, a second egoi-router on plain HTTP
# running bench/sink.lua (drops everything) in $tmp/sink. Sets sink_pid,
# sink_port and exports BENCH_FORWARD_URL for bench/rules.lua.
start_sink() {
	cat > "$tmp/sink.conf.in" <<EOF
listen = 127.0.0.1:PORT
tls_certificate = $tmp/cert/server.pem
auth_token = none
rules = $root/bench/sink.lua
data_dir = $tmp/sink
output_dir = $tmp/sink/out
threads = $router_threads
log_level = warn
EOF
	start_daemon sink http
	sink_pid=$started_pid
	sink_port=$started_port
	BENCH_FORWARD_URL="http://127.0.0.1:$sink_port/hooks/egoi"
	export BENCH_FORWARD_URL
}
