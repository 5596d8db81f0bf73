/*
 * test_http.c — the token comparison used for auth (every request's answer
 * depends on it). The HTTP answers themselves are proven end to end over
 * TLS in tests/e2e/.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "http.h"
#include "util.h"

static void test_token_equal(void **state)
{
	const char *secret = "s3cr3t-t0ken";

	(void)state;
	assert_true(http_token_equal("s3cr3t-t0ken", 12, secret));
	assert_false(http_token_equal("s3cr3t-t0ke", 11, secret));        /* prefix */
	assert_false(http_token_equal("s3cr3t-t0kenX", 13, secret));      /* longer */
	assert_false(http_token_equal("S3cr3t-t0ken", 12, secret));       /* case */
	assert_false(http_token_equal("", 0, secret));
	/* the presented length counts, not a NUL inside it */
	assert_false(http_token_equal("s3cr3t-t0ken\0x", 14, secret));
	assert_true(http_token_equal("", 0, ""));
}

/* The intake's form: the secret given as its SHA-256, hashed once at load. */
static void test_token_matches_digest(void **state)
{
	unsigned char secret[UTIL_SHA256_LEN], empty[UTIL_SHA256_LEN];

	(void)state;
	assert_int_equal(util_sha256("s3cr3t-t0ken", 12, secret), 0);
	assert_int_equal(util_sha256("", 0, empty), 0);
	assert_true(http_token_matches("s3cr3t-t0ken", 12, secret));
	assert_false(http_token_matches("s3cr3t-t0ke", 11, secret));
	assert_false(http_token_matches("s3cr3t-t0ken\0x", 14, secret));
	assert_false(http_token_matches("s3cr3t-t0ken", 12, empty));
	assert_true(http_token_matches("", 0, empty));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_equal),
		cmocka_unit_test(test_token_matches_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
