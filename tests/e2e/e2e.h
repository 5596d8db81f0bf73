/*
 * e2e.h — shared fixture of the end-to-end scenarios (cmocka).
 *
 * Every scenario gets a struct e2e from e2e_setup: a harness (temp dir,
 * config, daemon) and a running receiver. e2e_teardown stops whatever is
 * still running, prints the daemon log tail when the scenario did not reach
 * e2e_pass, and removes the temp dir.
 *
 * Scenarios live in nineteen files, grouped by what they prove: intake (HTTP
 * answers, auth, limits), routing (forward/write/errors, delivery),
 * lifecycle (restart, signals, CLI), dlq (dead letters listed, replayed
 * and purged beside the running daemon), input (hostile or broken input:
 * refused names, lone surrogates, log escaping, size caps), loops (hop
 * count, forwards to itself), limits (rules' time limit and env() against
 * the daemon's signals and secrets) and guard (hostile clients: connection
 * floods, slow bodies, rate limits, allow_from, framing) and privileges
 * (run as root with run_as_user), notify (sd_notify to a Type=notify
 * supervisor), tls_reload (certificate renewal on SIGHUP),
 * config_reload (the whole config on SIGHUP: live keys, restart keys,
 * refusals, required modules), check (the preflight: each failure it
 * must catch), rules_ci (`test` for CI: --expect, --format, --meta), egoi
 * (`egoi-router egoi` against a stand-in E-goi API, egoi_standin.h),
 * logs (access lines, request ids, JSON fields, log_file and SIGUSR1,
 * delivery outcomes), admin (/readyz, the admin listener, process
 * metrics), console (the status console: access, CSRF, replay) and shared (several routers on one PostgreSQL outbox).
 * Each exports its cmocka table.
 * The fixture itself (e2e_fixture.c) is shared with the fault suite
 * (tests/faults/), which links the same harness, receiver and fixture.
 */
#ifndef E2E_E2E_H
#define E2E_E2E_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "e2e/harness.h"
#include "e2e/receiver.h"

struct e2e {
	struct harness h;
	struct receiver *r;
	char url[64];              /* receiver base URL, "http://127.0.0.1:PORT" */
	char mnt[HARNESS_PATH];    /* a tmpfs the scenario mounted ("" = none): unmounted on teardown */
};

/* cmocka group set-up / teardown: harness_suite_init / harness_suite_free. */
int e2e_suite_setup(void **state);
int e2e_suite_teardown(void **state);

int e2e_setup(void **state);
int e2e_teardown(void **state);

/* Writes rules (with @RECV@ = the receiver URL) and extra config, starts the
 * daemon; fails the test when it does not come up. */
void e2e_boot(struct e2e *t, const char *lua, const char *extra_conf);

/* SIGTERM and assert a clean exit (status 0) within 15 s. */
void e2e_stop_ok(struct e2e *t);

/* Marks the scenario as having reached its end (no log tail on teardown). */
void e2e_pass(struct e2e *t);

/* Reads tests/fixtures/NAME (cwd = repo root); fails the test if missing. */
char *e2e_fixture(const char *name, size_t *len);

/* POSTs body and asserts the status; returns the response (free it).
 * Failures are reported at the caller's file and line. */
struct harness_response e2e_post_expect_at(struct e2e *t, const char *body, size_t len,
					   long want, const char *file, int line);
#define e2e_post_expect(t, body, len, want) \
	e2e_post_expect_at((t), (body), (len), (want), __FILE__, __LINE__)

/* Asserts the 200 body is {"accepted":acc,"rejected":rej}, at the caller's line. */
void e2e_assert_counts_at(const struct harness_response *resp, long acc, long rej,
			  const char *file, int line);
#define e2e_assert_counts(resp, acc, rej) \
	e2e_assert_counts_at((resp), (acc), (rej), __FILE__, __LINE__)

/* {"events":[ text[span0], text[span1], ... ]} for the chosen spans. */
char *e2e_events_body(const char *text, const struct harness_span *spans, const size_t *pick,
		      size_t n);

/* Parses JSON text (NUL-terminated); fails the test when invalid. */
yajl_val e2e_json(const char *text);
/* Object member (one level), or NULL. */
yajl_val e2e_get(yajl_val obj, const char *key);
/* String member value, or NULL. */
const char *e2e_str(yajl_val obj, const char *key);

/* Occurrences of needle in the daemon log. */
int e2e_log_count(const struct e2e *t, const char *needle);

/* Polls (<= 5 s) until needle appears at least n times in the daemon log; 1 if it did. */
int e2e_log_wait(const struct e2e *t, const char *needle, int n);

extern const struct CMUnitTest e2e_intake_tests[];
extern const size_t e2e_intake_count;
extern const struct CMUnitTest e2e_routing_tests[];
extern const size_t e2e_routing_count;
extern const struct CMUnitTest e2e_lifecycle_tests[];
extern const size_t e2e_lifecycle_count;
extern const struct CMUnitTest e2e_dlq_tests[];
extern const size_t e2e_dlq_count;
extern const struct CMUnitTest e2e_input_tests[];
extern const size_t e2e_input_count;
extern const struct CMUnitTest e2e_loops_tests[];
extern const size_t e2e_loops_count;
extern const struct CMUnitTest e2e_limits_tests[];
extern const size_t e2e_limits_count;
extern const struct CMUnitTest e2e_check_tests[];
extern const size_t e2e_check_count;
extern const struct CMUnitTest e2e_rules_ci_tests[];
extern const size_t e2e_rules_ci_count;
extern const struct CMUnitTest e2e_guard_tests[];
extern const size_t e2e_guard_count;
extern const struct CMUnitTest e2e_privileges_tests[];
extern const size_t e2e_privileges_count;
extern const struct CMUnitTest e2e_notify_tests[];
extern const size_t e2e_notify_count;
extern const struct CMUnitTest e2e_tls_reload_tests[];
extern const size_t e2e_tls_reload_count;
extern const struct CMUnitTest e2e_config_reload_tests[];
extern const size_t e2e_config_reload_count;
extern const struct CMUnitTest e2e_egoi_tests[];
extern const size_t e2e_egoi_count;
extern const struct CMUnitTest e2e_logs_tests[];
extern const size_t e2e_logs_count;
extern const struct CMUnitTest e2e_admin_tests[];
extern const size_t e2e_admin_count;
extern const struct CMUnitTest e2e_console_tests[];
extern const size_t e2e_console_count;
extern const struct CMUnitTest e2e_shared_tests[];
extern const size_t e2e_shared_count;

#define E2E_TEST(fn) cmocka_unit_test_setup_teardown(fn, e2e_setup, e2e_teardown)

#endif
