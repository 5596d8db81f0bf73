/*
 * exit_codes.h — the process exit codes of every command (run, check, test,
 * dlq): ONE set, so `egoi-router --help`, the README and scripts that test
 * $? mean the same thing whichever command ran.
 *
 * Threads: constants only.
 */
#ifndef EGOI_EXIT_CODES_H
#define EGOI_EXIT_CODES_H

enum exit_code {
	EXIT_OK = 0,        /* done */
	EXIT_INVALID = 1,   /* invalid input: config, rules, a batch file, a replay that failed */
	EXIT_USAGE = 2,     /* bad command line */
	EXIT_RUNTIME = 3,   /* the system failed: database, disk, memory, output */
};

#endif
