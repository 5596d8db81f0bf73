/*
 * cli_test_internal.h — the parts of `egoi-router test` shared by its
 * files: cli_test.c (options, the run), cli_test_out.c (one event as a
 * JSON line or a text row), cli_test_expect.c (--expect: the comparison
 * and its diff).
 *
 * Threads: main thread only, like the command.
 */
#ifndef EGOI_CLI_TEST_INTERNAL_H
#define EGOI_CLI_TEST_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "pipeline.h"

/* Reads a whole file ('-' = stdin), NUL-terminated; NULL with a message on stderr. */
char *cli_test_read_all(const char *path, size_t *len_out);

/*
 * Event i as its JSON line (no newline), with its decisions, in a new heap
 * string (*len_out bytes). scratch has room for the compacted body. NULL on OOM.
 */
char *cli_test_event_json(const struct pipeline *p, const char *body, size_t i, char *scratch,
			  size_t *len_out);

/* The text table's header line. */
int cli_test_text_header(FILE *out);

/* Event i as one row of the text table. 0, or -1 on a write error. */
int cli_test_event_text(FILE *out, const struct pipeline *p, size_t i);

/* The expected lines of an --expect file. */
struct cli_test_expect {
	const char *path;
	char *text;                   /* the file, cut into lines in place */
	char **lines;                 /* one per event, comments and blank lines left out */
	size_t *lineno;               /* each one's line number in the file */
	size_t count;
	size_t differ;                /* events that differed so far */
};

/* Reads path. 0, or -1 with a message on stderr (EXIT_INVALID / RUNTIME in *rc). */
int cli_test_expect_load(struct cli_test_expect *x, const char *path, int *rc);

/* Compares event i's line; a difference is printed on out. */
int cli_test_expect_event(struct cli_test_expect *x, FILE *out, size_t i, const char *action,
			  const char *got, size_t got_len);

/* After the last event: expected lines left over count as differences. */
int cli_test_expect_finish(struct cli_test_expect *x, FILE *out, size_t events);

void cli_test_expect_free(struct cli_test_expect *x);

#endif
