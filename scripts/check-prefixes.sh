#!/bin/sh
# Every static function in src/*.c carries its file's prefix: the file's
# name up to any of its underscores, so deliver_dest.c may use deliver_* or
# deliver_dest_*, and main.c main_*. Lists each one that does not and fails.
#
# Usage: scripts/check-prefixes.sh [SRCDIR]   (default: src)
#
# PREFIX_EXCLUDE: files (shell globs, relative to SRCDIR) to leave out of the
# check, e.g. while a file is being renamed; none by default.
PREFIX_EXCLUDE=${PREFIX_EXCLUDE-""}

set -eu
dir=${1:-src}
bad=0
for f in "$dir"/*.c; do
    base=${f##*/}
    skip=0
    for pat in $PREFIX_EXCLUDE; do
        # shellcheck disable=SC2254
        case $base in $pat) skip=1 ;; esac
    done
    [ "$skip" = 1 ] && continue
    stem=${base%.c}
    # A static declaration or definition: "static <type> name(" on one line,
    # or "static __attribute__((...))" with the rest on the next line.
    out=$(awk -v stem="$stem" -v file="$f" '
        function ok(name,   p, rest, i) {
            if (name == stem) return 1
            rest = stem
            while (rest != "") {
                i = index(rest, "_")
                p = (i ? substr(stem, 1, length(stem) - length(rest) + i) : stem "_")
                if (index(name, p) == 1) return 1
                rest = (i ? substr(rest, i + 1) : "")
            }
            return 0
        }
        /^static/ {
            line = $0; n = NR
            if (line ~ /__attribute__/ && line !~ /\)[ \t]*[a-zA-Z_][a-zA-Z0-9_]*\(/) {
                if ((getline nxt) > 0) line = line " " nxt
            }
            gsub(/__attribute__\(\([^)]*\)\)/, "", line)
            if (line ~ /^static[^=(]*[^a-zA-Z0-9_*(]\**[a-zA-Z_][a-zA-Z0-9_]*\(/) {
                sub(/\(.*/, "", line)
                sub(/.*[^a-zA-Z0-9_]/, "", line)
                if (!ok(line)) printf "%s:%d: %s\n", file, n, line
            }
        }' "$f")
    if [ -n "$out" ]; then
        printf '%s\n' "$out"
        bad=1
    fi
done
if [ "$bad" = 1 ]; then
    echo "check-prefixes: static functions above lack their file's prefix" >&2
    exit 1
fi
echo "check-prefixes: every static function in $dir/*.c carries its file's prefix"
