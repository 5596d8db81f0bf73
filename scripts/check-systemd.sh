#!/usr/bin/env bash
# Checks the systemd unit as `make install` writes it (run by `make test`):
#  - `systemd-analyze verify` accepts it without a word: the unit parses,
#    ExecStartPre=/ExecStart= name the installed binary and it is
#    executable, ExecReload='s /bin/kill exists, Documentation=man:egoi-router(8)
#    resolves to the installed man page;
#  - verify does fail when the installed binary is not executable (so the
#    check above is not vacuous);
#  - `systemd-analyze security --offline=yes` rates it at most 3.0 (the
#    score is printed).
# No running systemd is needed: both run offline on a temporary DESTDIR
# used as --root. That root gets a copy of the system's own units (verify
# resolves the unit's dependencies on sysinit.target and so on) and of
# /usr/bin/kill; symbolic links would be resolved inside the root.
set -euo pipefail
cd "$(dirname "$0")/.."

max=3.0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
prefix=/usr/local
unit=$prefix/lib/systemd/system/egoi-router.service
fail=0
err() { echo "check-systemd: $*" >&2; fail=1; }

command -v systemd-analyze >/dev/null || { echo "check-systemd: systemd-analyze missing (scripts/deps.sh installs systemd)" >&2; exit 1; }
make --no-print-directory install PREFIX=$prefix DESTDIR="$root" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log" >&2; echo "check-systemd: make install failed" >&2; exit 1; }
[ -f "$root$unit" ] || { echo "check-systemd: make install wrote no $unit" >&2; exit 1; }

sysunits=/usr/lib/systemd/system
[ -d $sysunits ] || sysunits=/lib/systemd/system
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin"
cp -a "$sysunits" "$root/usr/lib/systemd/system"
cp "$(type -P kill)" "$root/usr/bin/kill"
ln -s usr/bin "$root/bin"

verify() {
	MANPATH=$root$prefix/share/man systemd-analyze verify --root="$root" "$unit" 2>&1
}
if ! out=$(verify) || [ -n "$out" ]; then
	err "systemd-analyze verify $unit:"
	echo "$out" >&2
fi
chmod a-x "$root$prefix/bin/egoi-router"
if out=$(verify); then
	err "verify accepted the unit with a non-executable binary: $out"
fi
chmod 0755 "$root$prefix/bin/egoi-router"

out=$(systemd-analyze security --offline=yes --root="$root" "$unit" 2>&1) || {
	echo "$out" >&2; err "systemd-analyze security failed"; }
score=$(sed -n 's/.*Overall exposure level for egoi-router\.service: \([0-9.]*\).*/\1/p' <<<"$out")
if [ -z "$score" ]; then
	echo "$out" >&2; err "no exposure level in systemd-analyze security's output"
elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
	grep '✗' <<<"$out" >&2 || true
	err "exposure level $score is above $max"
fi

[ "$fail" -eq 0 ] && echo "check-systemd: verify ok, exposure level $score (at most $max): ok"
exit "$fail"
