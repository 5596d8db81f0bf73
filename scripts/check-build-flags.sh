#!/usr/bin/env bash
# Checks that the Makefile composes with flags given on the command line:
# `make CFLAGS=-O0` must keep the project's warnings and include paths (it
# used to replace them: "lua.h: No such file or directory") and build, and
# cmocka must stay off the daemon's link line; changing the flags rebuilds.
#
# Usage: scripts/check-build-flags.sh BUILD
# Builds the daemon with CFLAGS=-O0 in BUILD/cflags-o0, apart from BUILD's
# own objects (SANITIZE=1 given to the calling make applies here too).
set -euo pipefail
cd "$(dirname "$0")/.."

base=${1:?usage: $0 BUILD}
dir=$base/cflags-o0
fail=0

# The dry run (-n -B: every command, nothing run) shows the lines make would use.
lines=$(make -n -B --no-print-directory BUILD="$dir" CFLAGS=-O0 "$dir/egoi-router")
compile=$(grep -m1 -- ' -c -o .*/obj/log\.o ' <<<"$lines" || true)
link=$(grep -m1 -- "-o $dir/egoi-router " <<<"$lines" || true)
if [ -z "$compile" ] || [ -z "$link" ]; then
	echo "check-build-flags: no compile or link line in 'make -n CFLAGS=-O0'" >&2
	exit 1
fi
for want in -O0 -Werror -Wshadow -std=c11 -I/usr/include/lua5.4 -Isrc; do
	if ! grep -q -- " $want " <<<"$compile "; then
		echo "check-build-flags: '$want' missing with CFLAGS=-O0: $compile" >&2
		fail=1
	fi
done
# -O0 replaces the default optimisation, and comes after the project's flags
if grep -q -- ' -O2 ' <<<"$compile "; then
	echo "check-build-flags: the default -O2 is still there with CFLAGS=-O0: $compile" >&2
	fail=1
fi
if ! grep -q -- '-Werror .* -O0' <<<"$compile"; then
	echo "check-build-flags: CFLAGS does not come after the project's flags: $compile" >&2
	fail=1
fi
if grep -q -- 'cmocka' <<<"$link"; then
	echo "check-build-flags: the daemon links cmocka: $link" >&2
	fail=1
fi
[ "$fail" = 0 ] || exit 1

# The real build, then the binary runs.
make --no-print-directory -j"$(nproc)" BUILD="$dir" CFLAGS=-O0 "$dir/egoi-router" >"$base/cflags-o0.log" 2>&1 || {
	tail -n 30 "$base/cflags-o0.log" >&2
	echo "check-build-flags: make CFLAGS=-O0 failed (log: $base/cflags-o0.log)" >&2
	exit 1
}
"$dir/egoi-router" --version >/dev/null

# Built with the same flags: nothing to do. Other flags: everything is
# rebuilt ($dir/.flags), not linked from objects made two ways.
if make -n --no-print-directory BUILD="$dir" CFLAGS=-O0 "$dir/egoi-router" | grep -q -- ' -c '; then
	echo "check-build-flags: a second make CFLAGS=-O0 rebuilds" >&2
	exit 1
fi
n=$(make -n --no-print-directory BUILD="$dir" CFLAGS=-O1 "$dir/egoi-router" | grep -c -- ' -c -o ' || true)
if [ "$n" -lt 10 ]; then
	echo "check-build-flags: make CFLAGS=-O1 after CFLAGS=-O0 recompiles $n files, not all" >&2
	exit 1
fi
echo "check-build-flags: make CFLAGS=-O0 composes and builds ($dir)"
