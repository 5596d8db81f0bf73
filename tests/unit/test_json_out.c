/*
 * test_json_out.c — CLI JSON lines stay valid whatever bytes rules produce.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "json_out.h"

static void expect(const char *in, size_t len, const char *want)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	size_t n;

	assert_non_null(g);
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	assert_int_equal(json_out_string(g, in, len), yajl_gen_status_ok);
	assert_int_equal(yajl_gen_get_buf(g, &out, &n), yajl_gen_status_ok);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	yajl_gen_free(g);
}

static void test_strings(void **state)
{
	(void)state;
	expect("plain", 5, "\"plain\"");
	expect("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"");            /* valid UTF-8 kept */
	expect("a\xff" "b", 3, "\"a?b\"");                       /* invalid byte replaced */
	expect("q\"\\\n", 4, "\"q\\\"\\\\\\n\"");                 /* escapes */
	expect("nul\0in", 6, "\"nul\\u0000in\"");                 /* length, not NUL, ends it */
	expect(NULL, 0, "null");
}

/* One generator's text is one line, newline included, nothing else. */
static void test_line(void **state)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	FILE *f = tmpfile();
	char buf[64] = "";

	(void)state;
	assert_non_null(g);
	assert_non_null(f);
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"replayed", 8);
	yajl_gen_integer(g, -3);
	yajl_gen_map_close(g);
	assert_int_equal(json_out_line(g, f), 0);
	rewind(f);
	assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 16);
	assert_string_equal(buf, "{\"replayed\":-3}\n");
	fclose(f);
	yajl_gen_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
