/*
 * cli_test_expect.c — `egoi-router test --expect FILE.jsonl`: each event's
 * line compared with the file's (cli_test_internal.h).
 *
 * The file is what `egoi-router test` prints (its JSON lines, in event
 * order), so a golden file is made by redirecting a run that was checked
 * by eye. Blank lines and lines starting with '#' are left out (a comment
 * can say how the file was made). Lines compare as text, after trailing
 * white space (a CR, an editor's spaces) is cut: the output is
 * deterministic (cli_test.h), so equal decisions mean equal text.
 *
 * A difference prints which event, the file's line, both lines and the
 * first column where they part; missing and extra events are named too.
 *
 * Threads: main thread only.
 */
#include "cli_test_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exit_codes.h"

int cli_test_expect_load(struct cli_test_expect *x, const char *path, int *rc)
{
	size_t len = 0, n = 0, lineno = 0;
	char *p;

	memset(x, 0, sizeof *x);
	x->path = path;
	x->text = cli_test_read_all(path, &len);
	if (!x->text) {
		*rc = EXIT_INVALID;
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		n += x->text[i] == '\n';
	x->lines = calloc(n + 1, sizeof *x->lines);
	x->lineno = calloc(n + 1, sizeof *x->lineno);
	if (!x->lines || !x->lineno) {
		fprintf(stderr, "egoi-router: %s: out of memory\n", path);
		*rc = EXIT_RUNTIME;
		return -1;
	}
	for (p = x->text; p && *p;) {
		char *nl = strchr(p, '\n'), *end;

		if (nl)
			*nl = '\0';
		lineno++;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (*p && *p != '#') {
			x->lines[x->count] = p;
			x->lineno[x->count++] = lineno;
		}
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

int cli_test_expect_event(struct cli_test_expect *x, FILE *out, size_t i, const char *action,
			  const char *got, size_t got_len)
{
	const char *want;
	size_t col = 0;

	if (i >= x->count) {
		x->differ++;
		return fprintf(out, "event %zu (%s): not in %s (it has %zu events)\n"
				    "  got:      %s\n", i + 1, action ? action : "-", x->path,
			       x->count, got) < 0 ? -1 : 0;
	}
	want = x->lines[i];
	if (strlen(want) == got_len && memcmp(want, got, got_len) == 0)
		return 0;
	while (want[col] && col < got_len && want[col] == got[col])
		col++;
	x->differ++;
	return fprintf(out, "event %zu (%s) differs from %s:%zu\n"
			    "  expected: %s\n"
			    "  got:      %s\n"
			    "  (first difference at column %zu)\n",
		       i + 1, action ? action : "-", x->path, x->lineno[i], want, got,
		       col + 1) < 0 ? -1 : 0;
}

int cli_test_expect_finish(struct cli_test_expect *x, FILE *out, size_t events)
{
	for (size_t i = events; i < x->count; i++) {
		x->differ++;
		if (fprintf(out, "event %zu: expected by %s:%zu, but the batch has %zu events\n"
				 "  expected: %s\n", i + 1, x->path, x->lineno[i], events,
			    x->lines[i]) < 0)
			return -1;
	}
	return 0;
}

void cli_test_expect_free(struct cli_test_expect *x)
{
	free(x->text);
	free(x->lines);
	free(x->lineno);
	memset(x, 0, sizeof *x);
}
