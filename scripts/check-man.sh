#!/usr/bin/env bash
# Checks the man page egoi-router(8) (run by `make test`):
#  - it renders with man and groff without a single warning;
#  - it has an entry (a .B/.BR line of its own) for every configuration key
#    the binary knows (the key table, as `egoi-router --help` prints it);
#  - its EXIT STATUS section lists every exit code --help names;
#  - its SIGNALS section names every signal the daemon takes (the ones
#    src/main.c adds to its signal set);
#  - it names every command and long option of --help's usage.
# Usage: scripts/check-man.sh BIN PAGE
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:?usage: $0 BIN PAGE}
page=${2:?usage: $0 BIN PAGE}
fail=0
err() { echo "check-man: $*" >&2; fail=1; }
[ -f "$page" ] || { echo "check-man: no man page $page" >&2; exit 1; }

warn=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || err "man -l failed"
[ -z "$warn" ] || err "man --warnings -l $page: $warn"
warn=$(groff -man -ww -z "$page" 2>&1) || err "groff failed"
[ -z "$warn" ] || err "groff -man -ww: $warn"

# The text of one section, from `.SH NAME` to the next .SH.
section() { awk -v s="$1" '/^\.SH / { on = ($0 == ".SH " s || $0 == ".SH \"" s "\"") ; next } on' "$page"; }

help=$("$bin" --help)
keys=$(awk '/^configuration keys/ { on = 1; next } on && /^  [a-z_]+ / { print $1 }' <<<"$help")
[ "$(wc -l <<<"$keys")" -ge 30 ] || err "found only $(wc -l <<<"$keys") keys in --help"
config=$(section CONFIGURATION)
for k in $keys; do
	grep -Eq "^\.BR? $k( |$)" <<<"$config" || err "config key $k has no entry in CONFIGURATION"
done

codes=$(grep '^exit codes:' <<<"$help" | grep -Eo '(^|[ ,:])[0-9]+ ' | tr -dc '0-9\n ' | xargs)
[ -n "$codes" ] || err "no exit codes in --help"
status=$(section "EXIT STATUS")
for c in $codes; do
	grep -qx "\.B $c" <<<"$status" || err "exit code $c has no entry in EXIT STATUS"
done

signals=$(grep -Eo 'sigaddset\([^,]+, *SIG[A-Z0-9]+' src/main.c | grep -Eo 'SIG[A-Z0-9]+$' | sort -u)
[ -n "$signals" ] || err "no signals found in src/main.c"
sigtext=$(section SIGNALS)
for s in $signals; do
	grep -Eq "^\.BR? .*\b$s\b" <<<"$sigtext" || err "signal $s has no entry in SIGNALS"
done

usage=$(sed '/^exit codes:/,$d' <<<"$help")
commands=$(section COMMANDS)
for cmd in run check test "dlq list" "dlq replay" "dlq purge" "egoi list" "egoi register" "egoi unregister"; do
	grep -q "egoi-router \[\?${cmd%% *}" <<<"$usage" || err "--help no longer shows '$cmd' (update this check)"
	grep -Eq "^\.(B|BR|RB) (\[ )?\"?$cmd( |\"|$)" <<<"$commands" || err "command '$cmd' has no entry in COMMANDS"
done
for opt in $(grep -Eo -- '--[a-z][a-z-]*' <<<"$usage" | sort -u) -c; do
	grep -qF -- "${opt//-/\\-}" "$page" || err "option $opt is not in the man page"
done

[ "$fail" -eq 0 ] && echo "check-man: $page renders without warnings, names $(wc -w <<<"$keys") keys," \
	"exit codes $codes, signals $(xargs <<<"$signals"): ok"
exit "$fail"
