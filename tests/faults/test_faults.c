/*
 * test_faults.c — the fault suite of egoi-router's delivery: the real
 * daemon over real TLS, delivering to destinations that fail on cue
 * (rate limits with Retry-After, outages, refused and reset connections,
 * black holes, a full disk, a SIGKILL under load), checking that nothing
 * answered 200 is ever lost and that one bad destination does not hold up
 * another.
 *
 *   test_faults --list      prints the scenario names, one a line
 *   test_faults NAME|GLOB   runs the matching scenarios (cmocka glob)
 *   test_faults             runs them all, one after the other
 *
 * `make faults` (scripts/run-faults.sh) runs each scenario as its own
 * process, all at once: they spend most of their time waiting. Run with
 * cwd = repo root and EGOI_ROUTER_BIN = the daemon; E2E_KEEP=1 keeps the
 * temp dirs. Scenarios: faults_selftest.c (the fault destination itself),
 * faults_retry.c (429/503 with Retry-After, refused connections),
 * faults_isolation.c (a black hole beside a healthy destination),
 * faults_disk.c (a full disk), faults_crash.c (SIGKILL under load).
 */
#include "faults/faults.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	const struct {
		const struct CMUnitTest *tests;
		size_t n;
	} tables[] = {
		{ faults_selftest_tests, faults_selftest_count },
		{ faults_retry_tests, faults_retry_count },
		{ faults_isolation_tests, faults_isolation_count },
		{ faults_disk_tests, faults_disk_count },
		{ faults_crash_tests, faults_crash_count },
	};
	size_t n = 0, k = 0;
	struct CMUnitTest *all;
	int failed;

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		n += tables[i].n;
	all = calloc(n, sizeof(*all));
	if (all == NULL)
		return 1;
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		for (size_t j = 0; j < tables[i].n; j++)
			all[k++] = tables[i].tests[j];
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (size_t i = 0; i < n; i++)
			printf("%s\n", all[i].name);
		free(all);
		return 0;
	}
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: %s [--list | NAME-or-glob]\n", argv[0]);
		free(all);
		return 2;
	}
	if (argc == 2) {
		size_t match = 0;
		for (size_t i = 0; i < n; i++)
			match += fnmatch(argv[1], all[i].name, 0) == 0;
		if (match == 0) {
			fprintf(stderr, "%s: no scenario matches '%s' (see --list)\n", argv[0], argv[1]);
			free(all);
			return 2;
		}
		cmocka_set_test_filter(argv[1]);
	}
	failed = _cmocka_run_group_tests("faults", all, n, e2e_suite_setup, e2e_suite_teardown);
	free(all);
	return failed;
}
