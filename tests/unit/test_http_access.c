/*
 * test_http_access.c — the access line's helpers: every query value
 * redacted (the token may travel as ?token=), request ids chosen or reused
 * only when they are plain token characters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "http_access.h"

static void test_query_values_redacted(void **state)
{
	char out[128];

	(void)state;
	http_access_path("/hooks/egoi", NULL, out, sizeof out);
	assert_string_equal(out, "/hooks/egoi");
	http_access_path("/hooks/egoi", "token=s3cret", out, sizeof out);
	assert_string_equal(out, "/hooks/egoi?token=REDACTED");
	http_access_path("/hooks/egoi", "a=1&token=s3cret&flag&b=", out, sizeof out);
	assert_string_equal(out, "/hooks/egoi?a=REDACTED&token=REDACTED&flag&b=REDACTED");
	http_access_path("/x", "", out, sizeof out);
	assert_string_equal(out, "/x?");
	http_access_path(NULL, NULL, out, sizeof out);
	assert_string_equal(out, "-");
	/* Too long: cut at a pair's end, never in the middle of a value. */
	http_access_path("/hooks/egoi", "token=s3cret&token=s3cret&token=s3cret", out, 40);
	assert_string_equal(out, "/hooks/egoi?token=REDACTED");
	assert_null(strstr(out, "s3cret"));
}

static void test_request_ids(void **state)
{
	struct http_access a, b;
	uint64_t rng = 0x1234567;
	char long_id[HTTP_ACCESS_ID_MAX + 2];

	(void)state;
	assert_true(http_access_id_ok("proxy-42.a_B~"));
	assert_false(http_access_id_ok(""));
	assert_false(http_access_id_ok(NULL));
	assert_false(http_access_id_ok("has space"));
	assert_false(http_access_id_ok("new\nline"));
	assert_false(http_access_id_ok("quote\""));
	memset(long_id, 'a', sizeof long_id - 1);
	long_id[sizeof long_id - 1] = '\0';
	assert_false(http_access_id_ok(long_id));
	long_id[HTTP_ACCESS_ID_MAX] = '\0';
	assert_true(http_access_id_ok(long_id));

	http_access_begin(&a, &rng, "from-proxy");
	assert_string_equal(a.rid, "from-proxy");
	assert_true(a.active);
	http_access_begin(&a, &rng, "bad id");
	http_access_begin(&b, &rng, NULL);
	assert_int_equal(strlen(a.rid), 16);
	assert_int_equal(strlen(b.rid), 16);
	assert_string_not_equal(a.rid, b.rid);
	http_access_answered(&b, 413, 100);
	http_access_answered(&b, 413, 20);
	assert_int_equal(b.status, 413);
	assert_int_equal(b.bytes_out, 120);
	http_access_answered(NULL, 200, 1);   /* no worker state: nothing to record */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_values_redacted),
		cmocka_unit_test(test_request_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
