/*
 * test_http_admin.c — what `check` and `run` accept for admin_listen and
 * admin_token: plain ports, with or without an address, comma-separated;
 * no TLS suffix, no port out of range, no token without a listener.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "http_admin.h"

static int check(const char *listen, const char *token, char *err, size_t errlen)
{
	struct config cfg;

	memset(&cfg, 0, sizeof cfg);
	cfg.admin_listen = (char *)listen;
	cfg.admin_token = (char *)token;
	err[0] = '\0';
	return http_admin_check(&cfg, err, errlen);
}

static void test_accepts_plain_ports(void **state)
{
	static const char *const good[] = {
		"127.0.0.1:9464", "9464", "127.0.0.1:9464, 10.0.0.5:9465", "0.0.0.0:65535",
	};
	char err[256];

	(void)state;
	assert_int_equal(check(NULL, NULL, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		if (check(good[i], NULL, err, sizeof err) != 0)
			fail_msg("'%s' refused: %s", good[i], err);
	assert_int_equal(check("127.0.0.1:9464", "secret", err, sizeof err), 0);
}

static void test_refuses_bad_specs(void **state)
{
	static const char *const bad[] = {
		"", "x", ":9464", "127.0.0.1:", "127.0.0.1:70000", "127.0.0.1:0", "9464,",
		"127.0.0.1:94a4",
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (check(bad[i], NULL, err, sizeof err) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err, "admin_listen"));
	}
	assert_int_equal(check("127.0.0.1:9464s", NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "TLS"));
	assert_int_equal(check(NULL, "secret", err, sizeof err), -1);
	assert_non_null(strstr(err, "admin_token is set but admin_listen is not"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts_plain_ports),
		cmocka_unit_test(test_refuses_bad_specs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
