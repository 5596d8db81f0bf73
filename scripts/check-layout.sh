#!/bin/sh
# README › Layout matches the tree: every src/*.c is named by a Layout line
# (a path or a glob such as src/deliver*.c), every header too unless a .c of
# its name is (foo.h and foo_internal.h go with foo.c), and every path or
# glob a Layout line names exists.
#
# Usage: scripts/check-layout.sh [README]   (run from the repository root)
set -eu
readme=${1:-README.md}
entries=$(awk '/^## Layout/ { on = 1; next } /^## / { on = 0 } on && /^    [^ ]/ { print $1 }' "$readme")
[ -n "$entries" ] || { echo "check-layout: no Layout section in $readme" >&2; exit 1; }

# 0 when path is named by a Layout entry
named() {
    for e in $entries; do
        # shellcheck disable=SC2254
        case $1 in $e) return 0 ;; esac
    done
    return 1
}

bad=0
for f in src/*.c src/*.h; do
    named "$f" && continue
    case $f in
    *.h)
        stem=${f%.h}
        stem=${stem%_internal}
        named "$stem.c" && [ -e "$stem.c" ] && continue
        ;;
    esac
    echo "check-layout: $f is not in README › Layout" >&2
    bad=1
done
for e in $entries; do
    # shellcheck disable=SC2086
    set -- $e
    [ -e "$1" ] && continue
    echo "check-layout: README › Layout names $e, which is not in the tree" >&2
    bad=1
done
[ "$bad" = 0 ] || exit 1
echo "check-layout: README › Layout names every file in src/, and only files that exist"
