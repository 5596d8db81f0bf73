/*
 * test_http_hop.c — http_hop_check: the X-Router-Hop gate at intake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "http_hop.h"

static void expect(const char *value, long max, int status, long hop)
{
	const char *reason = "unset";
	long got = -1;

	assert_int_equal(http_hop_check(value, max, &got, &reason), status);
	if (status == 0) {
		assert_null(reason);
		assert_int_equal(got, hop);
	} else {
		assert_non_null(reason);
	}
}

static void test_hop_counts(void **state)
{
	(void)state;
	expect(NULL, 3, 0, 0);            /* from E-goi: no header */
	expect("0", 3, 0, 0);
	expect("2", 3, 0, 2);
	expect(" 1 ", 3, 0, 1);
	expect("3", 3, 508, 0);           /* reaches max_hops */
	expect("4", 3, 508, 0);
	expect("99999999999999999999", 3, 508, 0);   /* huge: still a loop, no overflow */
	expect("1", 1, 508, 0);
	expect("5", 0, 0, 5);             /* 0: no limit (a config built by hand) */
}

static void test_hop_garbage(void **state)
{
	(void)state;
	expect("", 3, 400, 0);
	expect("-1", 3, 400, 0);
	expect("1x", 3, 400, 0);
	expect("one", 3, 400, 0);
	expect("1, 2", 3, 400, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hop_counts),
		cmocka_unit_test(test_hop_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
