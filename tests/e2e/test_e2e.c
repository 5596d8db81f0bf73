/*
 * test_e2e.c — end-to-end tests of egoi-router: the real binary, real TLS
 * (a certificate generated per run, verified by the client), a real HTTP
 * receiver on 127.0.0.1. This file holds main; the fixture is in
 * e2e_fixture.c and the scenarios in e2e_intake.c, e2e_routing.c,
 * e2e_lifecycle.c, e2e_dlq.c and e2e_guard.c.
 *
 * Run with cwd = repo root and EGOI_ROUTER_BIN = the daemon binary
 * (`make e2e` does both). E2E_KEEP=1 keeps the temp dirs for inspection;
 * E2E_FILTER=glob runs only the matching scenarios.
 */
#include "e2e/e2e.h"

#include <stdlib.h>

int main(void)
{
	size_t n = e2e_intake_count + e2e_routing_count + e2e_lifecycle_count + e2e_dlq_count +
		   e2e_guard_count;
	size_t k = 0;
	struct CMUnitTest *all = calloc(n, sizeof(*all));
	int failed;

	if (all == NULL)
		return 1;
	/* E2E_FILTER=pattern runs only matching scenarios (cmocka glob). */
	if (getenv("E2E_FILTER") != NULL)
		cmocka_set_test_filter(getenv("E2E_FILTER"));
	for (size_t i = 0; i < e2e_intake_count; i++)
		all[k++] = e2e_intake_tests[i];
	for (size_t i = 0; i < e2e_routing_count; i++)
		all[k++] = e2e_routing_tests[i];
	for (size_t i = 0; i < e2e_lifecycle_count; i++)
		all[k++] = e2e_lifecycle_tests[i];
	for (size_t i = 0; i < e2e_dlq_count; i++)
		all[k++] = e2e_dlq_tests[i];
	for (size_t i = 0; i < e2e_guard_count; i++)
		all[k++] = e2e_guard_tests[i];
	failed = _cmocka_run_group_tests("e2e", all, n, e2e_suite_setup, e2e_suite_teardown);
	free(all);
	return failed;
}
