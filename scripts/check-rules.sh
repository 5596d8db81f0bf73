#!/bin/sh
# The example rules in CI (make test): each rules/NAME.lua must have
# rules/tests/NAME.jsonl, whose first line is the command that made it
#   # egoi-router test [OPTIONS] rules/NAME.lua BATCH
# and `egoi-router test --expect` must find the same decisions again. Then
# luacheck (Debian's lua-check) lints rules/ with the repository's .luacheckrc.
#   scripts/check-rules.sh BIN
set -eu
bin=$1
fail=0
for rules in rules/*.lua; do
	name=$(basename "$rules" .lua)
	expect=rules/tests/$name.jsonl
	if [ ! -f "$expect" ]; then
		echo "check-rules: $rules has no $expect" >&2
		fail=1
		continue
	fi
	cmd=$(head -n 1 "$expect")
	case "$cmd" in
	"# egoi-router test "*) ;;
	*)
		echo "check-rules: $expect: line 1 must be '# egoi-router test ... $rules BATCH'" >&2
		fail=1
		continue
		;;
	esac
	# the words after "# egoi-router test": options, the rules file, the batch
	# shellcheck disable=SC2086
	set -- ${cmd#"# egoi-router test "}
	if "$bin" test --expect "$expect" "$@"; then
		:
	else
		echo "check-rules: $rules does not decide what $expect expects" >&2
		fail=1
	fi
done
if command -v luacheck >/dev/null 2>&1; then
	luacheck --no-color --codes rules/ || fail=1
else
	echo "check-rules: luacheck not found (apt-get install lua-check)" >&2
	fail=1
fi
exit $fail
