#!/usr/bin/env bash
# Checks that `make clean` removes build output only (run by `make test`):
# in a scratch tree with build/ (a plain and a SANITIZE build) and var/ (the
# default data_dir: an outbox, a dead-letter database, written files, the dev
# token), clean must remove build/ and leave every file of var/ as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/build/obj" "$tmp/build/san/lib" "$tmp/var/out"
echo obj > "$tmp/build/obj/main.o"
echo bin > "$tmp/build/san/egoi-router"
for f in var/outbox.db var/outbox.db-wal var/out/crm.jsonl var/dev-token; do
	echo "data $f" > "$tmp/$f"
done
before=$(cd "$tmp" && find var -type f -exec sha256sum {} + | sort)

make --no-print-directory -f "$repo/Makefile" -C "$tmp" clean >"$tmp.log" 2>&1 || {
	cat "$tmp.log" >&2; rm -f "$tmp.log"; echo "check-clean: make clean failed" >&2; exit 1; }
rm -f "$tmp.log"

fail=0
after=$(cd "$tmp" && find var -type f -exec sha256sum {} + 2>/dev/null | sort || true)
if [ "$before" != "$after" ]; then
	echo "check-clean: make clean changed data in var/ (before / after):" >&2
	diff <(echo "$before") <(echo "$after") >&2 || true
	fail=1
fi
if [ -e "$tmp/build" ]; then
	echo "check-clean: make clean left build/" >&2
	fail=1
fi
[ "$fail" -eq 0 ] && echo "check-clean: clean removes build/ and keeps var/: ok"
exit "$fail"
