#!/bin/sh
# Installs the Debian packages egoi-router needs, or says exactly how to.
#   scripts/deps.sh build   compilers, libraries, test tools (man-db/groff: the man page check;
#                           systemd: systemd-analyze for the unit check, no running systemd needed;
#                           lua-check: luacheck on rules/;
#                           logrotate: the logrotate snippet, run by the e2e suite;
#                           procps: /bin/kill, the unit's ExecReload, which the unit check verifies;
#                           chromium, chromium-driver, python3-selenium: the console's browser test)
#   scripts/deps.sh bench   + wrk
#   scripts/deps.sh fuzz    + clang 14 and its libFuzzer runtime (make fuzz)
#   scripts/deps.sh micro   + valgrind (make bench-micro: callgrind)
set -eu
pkgs="gcc make pkg-config openssl curl ca-certificates libcivetweb-dev liblua5.4-dev lua-cjson-dev
      libyajl-dev libcurl4-openssl-dev libsqlite3-dev libssl-dev libcmocka-dev uuid-dev
      libsystemd-dev libpq-dev postgresql man-db groff-base systemd lua-check logrotate procps
      python3 python3-selenium chromium chromium-driver"
[ "${1:-build}" = bench ] && pkgs="$pkgs wrk lua5.4"
[ "${1:-build}" = fuzz ] && pkgs="$pkgs clang-14 libclang-rt-14-dev"
[ "${1:-build}" = micro ] && pkgs="$pkgs valgrind"

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "egoi-router needs these Debian packages; install them with:" >&2
	echo "  sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || { echo "apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null || {
	echo "apt-get install failed:$missing" >&2; exit 1; }
