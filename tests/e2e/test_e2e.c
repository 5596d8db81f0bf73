/*
 * test_e2e.c — end-to-end tests of egoi-router: the real binary, real TLS
 * (a certificate generated per run, verified by the client), a real HTTP
 * receiver on 127.0.0.1. This file holds main; the fixture is in
 * e2e_fixture.c and the scenarios in the e2e_*.c files listed below.
 *
 * Run with cwd = repo root and EGOI_ROUTER_BIN = the daemon binary
 * (`make e2e` does both). E2E_KEEP=1 keeps the temp dirs for inspection;
 * E2E_FILTER=glob runs only the matching scenarios.
 */
#include "e2e/e2e.h"

#include <stdlib.h>

/* Every scenario file's table, in the order the suite runs them. */
static const struct {
	const struct CMUnitTest *tests;
	const size_t *count;
} e2e_groups[] = {
	{ e2e_intake_tests, &e2e_intake_count },
	{ e2e_routing_tests, &e2e_routing_count },
	{ e2e_lifecycle_tests, &e2e_lifecycle_count },
	{ e2e_dlq_tests, &e2e_dlq_count },
	{ e2e_input_tests, &e2e_input_count },
	{ e2e_loops_tests, &e2e_loops_count },
	{ e2e_limits_tests, &e2e_limits_count },
	{ e2e_guard_tests, &e2e_guard_count },
	{ e2e_privileges_tests, &e2e_privileges_count },
	{ e2e_notify_tests, &e2e_notify_count },
	{ e2e_tls_reload_tests, &e2e_tls_reload_count },
	{ e2e_config_reload_tests, &e2e_config_reload_count },
	{ e2e_check_tests, &e2e_check_count },
	{ e2e_rules_ci_tests, &e2e_rules_ci_count },
	{ e2e_egoi_tests, &e2e_egoi_count },
	{ e2e_logs_tests, &e2e_logs_count },
	{ e2e_admin_tests, &e2e_admin_count },
	{ e2e_console_tests, &e2e_console_count },
	{ e2e_shared_tests, &e2e_shared_count },
};

int main(void)
{
	size_t n = 0, k = 0;
	struct CMUnitTest *all;
	int failed;

	for (size_t g = 0; g < sizeof e2e_groups / sizeof e2e_groups[0]; g++)
		n += *e2e_groups[g].count;
	all = calloc(n, sizeof(*all));
	if (all == NULL)
		return 1;
	/* E2E_FILTER=pattern runs only matching scenarios (cmocka glob). */
	if (getenv("E2E_FILTER") != NULL)
		cmocka_set_test_filter(getenv("E2E_FILTER"));
	for (size_t g = 0; g < sizeof e2e_groups / sizeof e2e_groups[0]; g++)
		for (size_t i = 0; i < *e2e_groups[g].count; i++)
			all[k++] = e2e_groups[g].tests[i];
	failed = _cmocka_run_group_tests("e2e", all, n, e2e_suite_setup, e2e_suite_teardown);
	free(all);
	return failed;
}
