/*
 * cli_test.h — `egoi-router test RULES BATCH`: the rules' decisions for a
 * batch file, one JSON line per event, without sending a request or
 * writing any file (it reads only the rules, their require()d modules and
 * the batch). Uses the same parsing and routing as the daemon
 * (pipeline_route), so what it prints is what `run` would do.
 */
#ifndef EGOI_CLI_TEST_H
#define EGOI_CLI_TEST_H

/*
 * env_pairs: "NAME=VALUE" strings, NULL-terminated; env() in the rules
 * returns these values and nil for any other name (the real environment is
 * never read). Returns a process exit code (exit_codes.h): EXIT_OK,
 * EXIT_INVALID (bad rules or batch), EXIT_RUNTIME (I/O failure).
 */
int cli_test_run(const char *rules_path, const char *batch_path,
		 const char *const *env_pairs);

#endif
