/*
 * test_util.h — small helpers shared by the unit tests: reading a whole
 * file, a fixture, removing a temporary directory tree, and checking a
 * schema's list of dead-letter kinds. static inline,
 * so a test that uses only some of them compiles without warnings.
 * Include after <cmocka.h>.
 */
#ifndef EGOI_TEST_UTIL_H
#define EGOI_TEST_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "outbox.h"

/* The whole file, NUL-terminated (caller frees); NULL when it cannot be opened. */
static inline char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

/* tests/fixtures/NAME (tests run from the repository root); fails the test if missing. */
static inline char *tu_fixture(const char *name, size_t *len)
{
	char path[256];
	char *buf;

	snprintf(path, sizeof path, "tests/fixtures/%s", name);
	buf = tu_read_file(path, len);
	if (!buf)
		fail_msg("fixture %s not found (run from the repository root)", path);
	return buf;
}

static inline int tu_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* rm -rf dir (no symlink is followed); 0 or -1. */
static inline int tu_rmtree(const char *dir)
{
	return nftw(dir, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * The quoted names in sql[from, end) — a schema's CHECK on dead_letters.kind,
 * as the database shows it — must be exactly outbox_dead_kind_names, each
 * once: the schema's migrations write the list out (databases ran them as
 * they are), so this is what keeps it and the program's table the same.
 */
static inline void tu_assert_dead_kinds(const char *p, const char *end)
{
	int listed[OUTBOX_DEAD_KINDS] = { 0 }, n = 0;

	while ((p = memchr(p, '\'', (size_t)(end - p))) != NULL) {
		const char *q = memchr(p + 1, '\'', (size_t)(end - p - 1));
		char name[32];
		int k;

		assert_non_null(q);
		assert_true(q - p - 1 < (long)sizeof name);
		snprintf(name, sizeof name, "%.*s", (int)(q - p - 1), p + 1);
		k = outbox_dead_kind_parse(name);
		if (k < 0)
			fail_msg("the schema allows kind '%s', outbox_dead_kind_names has no such kind",
				 name);
		assert_int_equal(listed[k]++, 0);
		n++;
		p = q + 1;
	}
	for (int k = 0; k < OUTBOX_DEAD_KINDS; k++)
		if (!listed[k])
			fail_msg("kind '%s' is not allowed by the schema's CHECK",
				 outbox_dead_kind_names[k]);
	assert_int_equal(n, OUTBOX_DEAD_KINDS);
}

#endif
