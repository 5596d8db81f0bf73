/*
 * cli_test.h — `egoi-router test RULES BATCH`: the rules' decisions for a
 * batch file, one JSON line per event (or a table with --format text),
 * without sending a request or writing any file (it reads only the rules,
 * their require()d modules, the batch and an --expect file). Uses the same
 * parsing and routing as the daemon (pipeline_route), so what it prints is
 * what `run` would do.
 *
 * Output is deterministic for a given rules file, batch and options: the
 * line's own keys come in a fixed order and tables the rules encode have
 * their keys sorted (json_lua_encode.c), so a golden file stays stable.
 * Only meta.received_at changes between runs unless --meta sets it.
 *
 * Exit codes (exit_codes.h): EXIT_OK; EXIT_INVALID for rules that do not
 * load, a batch that does not parse, any event whose rule failed (or that
 * was rejected as malformed), or, with --expect, any difference from the
 * expected lines (then the expectation decides: an error line that was
 * expected is a pass); EXIT_USAGE for a bad command line; EXIT_RUNTIME
 * for an I/O failure.
 *
 * Threads: the command runs on the main thread alone.
 */
#ifndef EGOI_CLI_TEST_H
#define EGOI_CLI_TEST_H

struct cli_test_options {
	const char *rules_path;
	const char *batch_path;          /* '-' = stdin */
	const char *expect_path;         /* NULL: print the decisions */
	int text;                        /* --format text */
	/*
	 * "NAME=VALUE" strings, NULL-terminated (NULL = none); env() in the
	 * rules returns these values and nil for any other name (the real
	 * environment is never read).
	 */
	const char *const *env_pairs;
	/* meta seen by route(): NULL / 0 keep the defaults ("test", "-", now) */
	const char *request_id;
	const char *remote_addr;
	double received_at;
	int received_at_set;
};

/* `egoi-router test ...`: argv[0] is "test". Returns the exit code. */
int cli_test_main(int argc, char **argv);

/* Runs one dry run; returns the exit code. */
int cli_test_run(const struct cli_test_options *o);

#endif
