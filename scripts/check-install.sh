#!/usr/bin/env bash
# Checks `make install` and `make uninstall` (run by `make test`):
#  - install PREFIX=/usr/local into a temporary DESTDIR writes exactly the
#    expected files (binary, its two OpenSSL shims in the private
#    lib/egoi-router, the man page, the example config and rules, the
#    systemd unit in lib/systemd/system when scripts/egoi-router.service
#    exists, its @BINDIR@ replaced by the installed binary's directory);
#  - the installed binary runs away from the build tree (cwd elsewhere, no
#    LD_LIBRARY_PATH): --version, `check` of the installed example config,
#    and `run` answering /healthz over TLS; ldd resolves libssl.so and libcrypto.so from lib/egoi-router,
#    not from the build tree or the system's libssl-dev symlinks;
#  - uninstall with the same DESTDIR removes exactly those files: files that
#    were there before stay, and nothing else but empty directories is left.
# SANITIZE=1 given to the calling make applies to the install too.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
prefix=/usr/local
root=$dest$prefix
fail=0
err() { echo "check-install: $*" >&2; fail=1; }

# Files that are not ours, in directories install shares: they must survive.
mkdir -p "$root/bin" "$root/share/man/man8"
echo other > "$root/bin/other-tool"
echo other > "$root/share/man/man8/other.8"

make --no-print-directory install PREFIX=$prefix DESTDIR="$dest" >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log" >&2; echo "check-install: make install failed" >&2; exit 1; }

expected=(bin/egoi-router bin/other-tool lib/egoi-router/libssl.so lib/egoi-router/libcrypto.so
	share/man/man8/egoi-router.8 share/man/man8/other.8 share/egoi-router/router.conf.example)
for f in rules/*.lua; do expected+=("share/egoi-router/$f"); done
if [ -f scripts/egoi-router.service ]; then
	expected+=(lib/systemd/system/egoi-router.service)
fi
want=$(printf '%s\n' "${expected[@]}" | sort)
got=$(cd "$root" && find . ! -type d | sed 's|^\./||' | sort)
if [ "$want" != "$got" ]; then
	err "installed files differ from the expected list:"
	diff <(echo "$want") <(echo "$got") >&2 || true
fi
[ -x "$root/bin/egoi-router" ] || err "bin/egoi-router is not executable"
unit=$root/lib/systemd/system/egoi-router.service
if [ -f scripts/egoi-router.service ]; then
	grep -q "^ExecStart=$prefix/bin/egoi-router run " "$unit" || err "the unit's ExecStart is not $prefix/bin/egoi-router"
	! grep -n '@[A-Z]*@' "$unit" >&2 || err "the installed unit keeps a placeholder"
fi

bin=$root/bin/egoi-router
share=$root/share/egoi-router
# Away from the build tree: cwd is the installed share directory, and no
# LD_LIBRARY_PATH, so only the binary's own run path can find the shims.
version=$(cd "$share" && env -u LD_LIBRARY_PATH "$bin" --version 2>&1) || err "--version failed: $version"
case $version in "egoi-router "*) ;; *) err "--version printed: $version" ;; esac
# check loads the certificate: the example's, with a dev certificate in place
scripts/dev-cert.sh "$tmp/cert" 2>/dev/null || err "could not make a dev certificate"
sed "s|^tls_certificate = .*|tls_certificate = $tmp/cert/server.pem|" "$share/router.conf.example" \
	> "$tmp/example.conf"
out=$(cd "$share" && env -u LD_LIBRARY_PATH -u CRM_URL -u SLACK_URL EGOI_ROUTER_TOKEN=check-install \
	"$bin" check -c "$tmp/example.conf" 2>&1) || err "check of the installed example config failed: $out"

# The daemon itself, over TLS: it refuses to start when TLS did not
# initialise, so a /healthz answer over HTTPS shows the installed shims load.
cat > "$tmp/installed.conf.in" <<CONF
listen = 127.0.0.1:PORTs
tls_certificate = $tmp/cert/server.pem
auth_token = none
rules = $share/rules/example.lua
data_dir = $tmp/data
output_dir = $tmp/data/out
log_level = warn
CONF
(
	die() { echo "check-install: $*" >&2; exit 1; }
	started_pid=""
	# shellcheck source=daemon-lib.sh
	. scripts/daemon-lib.sh
	trap 'stop "$started_pid"' EXIT
	mkdir -p "$tmp/work" && cd "$tmp/work"
	unset LD_LIBRARY_PATH CRM_URL SLACK_URL
	start_daemon installed https
) || err "the installed daemon did not serve /healthz over TLS"

libs=$(env -u LD_LIBRARY_PATH ldd "$bin")
for lib in libssl.so libcrypto.so; do
	path=$(awk -v l="$lib" '$1 == l && $2 == "=>" { print $3 }' <<<"$libs")
	if [ -z "$path" ] || [ "$(realpath "$path")" != "$(realpath "$root/lib/egoi-router/$lib")" ]; then
		err "ldd resolves $lib to '${path:-nothing}', not $prefix/lib/egoi-router/$lib"
	fi
done
case $libs in *"$repo/build"*) err "the installed binary loads from the build tree: $libs" ;; esac

make --no-print-directory uninstall PREFIX=$prefix DESTDIR="$dest" >"$tmp/uninstall.log" 2>&1 || {
	cat "$tmp/uninstall.log" >&2; err "make uninstall failed"; }
left=$(cd "$root" && find . ! -type d | sed 's|^\./||' | sort)
if [ "$left" != "$(printf 'bin/other-tool\nshare/man/man8/other.8')" ]; then
	err "after uninstall, expected only the two files that were there before; found:"
	echo "$left" >&2
fi
for d in lib/egoi-router share/egoi-router; do
	[ ! -e "$root/$d" ] || err "uninstall left $prefix/$d"
done

[ "$fail" -eq 0 ] && echo "check-install: install, run away from the build tree, uninstall: ok"
exit "$fail"
