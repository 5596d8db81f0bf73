/*
 * e2e_admin.c — readiness and the admin listener, against the real binary:
 * /readyz is 200 on a healthy daemon and names every check; it turns 503
 * naming output_dir when that stops being a writable directory (while
 * /healthz, liveness, stays 200) and back to 200 once it is fixed; with
 * admin_listen, /metrics, /healthz and /readyz are served there over plain
 * HTTP and answer 404 on the public port, which still takes batches;
 * admin_token guards /metrics there but not the probes; the admin port
 * answers while every public worker is held by an idle connection; the
 * page carries build_info and plausible process_* values; `check` refuses
 * admin_token without admin_listen.
 */
#include "e2e/e2e.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char rules[] = "function route(e, m) write('events.jsonl', e) end\n";
static const char batch[] = "{\"events\":[{\"action\":\"email_open\",\"bid\":\"1\"}]}";

/* GET path on the public port (over TLS) or the admin port; asserts want. */
static yajl_val get_json(struct e2e *t, int admin, const char *path, long want)
{
	struct harness_response r;
	yajl_val v;

	if (admin)
		assert_int_equal(harness_admin_get(&t->h, path, NULL, &r), 0);
	else
		assert_int_equal(harness_request(&t->h, "GET", path, NULL, NULL, NULL, 0, 0, &r), 0);
	if (r.status != want)
		fail_msg("GET %s: %ld, want %ld: %s", path, r.status, want, r.body);
	v = e2e_json(r.body);
	harness_response_free(&r);
	return v;
}

/* The status of GET path (public port, or admin port), body discarded. */
static long get_status(struct e2e *t, int admin, const char *path, const char *const *headers)
{
	struct harness_response r;
	long status;

	if (admin)
		assert_int_equal(harness_admin_get(&t->h, path, headers, &r), 0);
	else
		assert_int_equal(harness_request(&t->h, "GET", path, NULL, headers, NULL, 0, 0, &r),
				 0);
	status = r.status;
	harness_response_free(&r);
	return status;
}

/* The names in /readyz's "failed", comma-joined. */
static void failed_names(yajl_val v, char *out, size_t cap)
{
	yajl_val a = e2e_get(v, "failed");

	assert_non_null(a);
	assert_true(YAJL_IS_ARRAY(a));
	out[0] = '\0';
	for (size_t i = 0; i < a->u.array.len; i++) {
		const char *s = YAJL_GET_STRING(a->u.array.values[i]);

		assert_non_null(s);
		snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", s);
	}
}

/* Asserts /readyz (public port) is 503 with output_dir alone failing, whose detail has why. */
static void expect_output_dir_failing(struct e2e *t, const char *why)
{
	yajl_val v = get_json(t, 0, "/readyz", 503), d;
	char failed[256];

	failed_names(v, failed, sizeof failed);
	assert_string_equal(failed, "output_dir");
	d = e2e_get(e2e_get(v, "checks"), "output_dir");
	assert_non_null(d);
	assert_true(YAJL_IS_FALSE(e2e_get(d, "ok")));
	if (!strstr(e2e_str(d, "detail"), why))
		fail_msg("output_dir detail '%s' lacks '%s'", e2e_str(d, "detail"), why);
	yajl_tree_free(v);
	/* liveness is another question: the process serves */
	assert_int_equal(get_status(t, 0, "/healthz", NULL), 200);
}

static void readyz_follows_output_dir(void **state)
{
	static const char *const checks[] = { "rules", "outbox", "output_dir", "tls", "delivery",
					      "intake" };
	struct e2e *t = *state;
	char moved[HARNESS_PATH + 8];
	yajl_val v;

	e2e_boot(t, rules, NULL);
	v = get_json(t, 0, "/readyz", 200);
	assert_true(YAJL_IS_TRUE(e2e_get(v, "ready")));
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		yajl_val c = e2e_get(e2e_get(v, "checks"), checks[i]);

		if (!c || !YAJL_IS_TRUE(e2e_get(c, "ok")))
			fail_msg("check %s missing or failing", checks[i]);
	}
	yajl_tree_free(v);

	/* output_dir replaced by a plain file (works as root too) */
	snprintf(moved, sizeof moved, "%s.moved", t->h.output_dir);
	assert_int_equal(rename(t->h.output_dir, moved), 0);
	assert_int_equal(harness_write_file(t->h.output_dir, "x", 1), 0);
	expect_output_dir_failing(t, "Not a directory");
	assert_int_equal(unlink(t->h.output_dir), 0);
	assert_int_equal(rename(moved, t->h.output_dir), 0);
	yajl_tree_free(get_json(t, 0, "/readyz", 200));

	/* a directory the daemon's user may not write (root writes through modes) */
	if (geteuid() != 0) {
		assert_int_equal(chmod(t->h.output_dir, 0500), 0);
		expect_output_dir_failing(t, "Permission denied");
		assert_int_equal(chmod(t->h.output_dir, 0700), 0);
		yajl_tree_free(get_json(t, 0, "/readyz", 200));
	}
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* The sample value of series on the page; fails the test when absent. */
static double page_value(const char *page, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	fail_msg("no series %s on the page", series);
	return -1;
}

static void admin_listener_serves_ops_routes_alone(void **state)
{
	static const char *const moved[] = { "/metrics", "/healthz", "/readyz" };
	struct e2e *t = *state;
	struct harness_response r, page;
	double now = (double)time(NULL), rss, fds, maxfds, start, cpu;
	char version[64];

	t->h.admin_port = harness_free_port();
	assert_true(t->h.admin_port > 0);
	e2e_boot(t, rules, NULL);

	/* the public port serves the endpoint alone */
	for (size_t i = 0; i < sizeof moved / sizeof moved[0]; i++)
		if (get_status(t, 0, moved[i], NULL) != 404)
			fail_msg("%s on the public port is not 404", moved[i]);
	r = e2e_post_expect(t, batch, sizeof batch - 1, 200);
	e2e_assert_counts(&r, 1, 0);
	harness_response_free(&r);

	/* the admin port serves the probes and the page */
	assert_int_equal(get_status(t, 1, "/healthz", NULL), 200);
	yajl_tree_free(get_json(t, 1, "/readyz", 200));
	assert_int_equal(get_status(t, 1, "/hooks/egoi", NULL), 404);
	assert_int_equal(harness_admin_get(&t->h, "/metrics", NULL, &page), 0);
	assert_int_equal(page.status, 200);
	assert_true(page_value(page.body, "egoi_router_requests_total{code=\"200\"}") == 1.0);
	snprintf(version, sizeof version, "egoi_router_build_info{version=\"");
	assert_non_null(strstr(page.body, version));
	start = page_value(page.body, "process_start_time_seconds");
	cpu = page_value(page.body, "process_cpu_seconds_total");
	rss = page_value(page.body, "process_resident_memory_bytes");
	fds = page_value(page.body, "process_open_fds");
	maxfds = page_value(page.body, "process_max_fds");
	assert_true(start > now - 120 && start <= now + 1);
	assert_true(cpu >= 0 && cpu < 120);
	assert_true(rss > 1024 * 1024);
	assert_true(page_value(page.body, "process_virtual_memory_bytes") >= rss);
	assert_true(fds >= 5 && fds < maxfds);
	harness_response_free(&page);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void admin_token_guards_metrics_not_probes(void **state)
{
	struct e2e *t = *state;
	const char *const wrong[] = { "Authorization: Bearer nope", NULL };
	const char *const right[] = { "Authorization: Bearer adm-s3cret", NULL };

	t->h.admin_port = harness_free_port();
	assert_true(t->h.admin_port > 0);
	e2e_boot(t, rules, "admin_token = adm-s3cret\n");
	assert_int_equal(get_status(t, 1, "/metrics", NULL), 401);
	assert_int_equal(get_status(t, 1, "/metrics", wrong), 401);
	assert_int_equal(get_status(t, 1, "/metrics", right), 200);
	assert_int_equal(get_status(t, 1, "/healthz", NULL), 200);
	assert_int_equal(get_status(t, 1, "/readyz", NULL), 200);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* A TCP connection to the public port that never starts its TLS handshake. */
static int idle_connection(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	return fd;
}

static void admin_port_answers_while_public_workers_are_held(void **state)
{
	struct e2e *t = *state;
	int fds[8];   /* the harness runs threads = 8 */
	char c;

	t->h.admin_port = harness_free_port();
	assert_true(t->h.admin_port > 0);
	e2e_boot(t, rules, NULL);
	for (size_t i = 0; i < 8; i++)
		fds[i] = idle_connection(t->h.port);
	harness_sleep_ms(200);   /* accepted, each in a worker's handshake */
	assert_int_equal(get_status(t, 1, "/healthz", NULL), 200);
	assert_int_equal(get_status(t, 1, "/metrics", NULL), 200);
	/* ... and it answered while they were still held: none is closed yet */
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(recv(fds[i], &c, 1, MSG_DONTWAIT), -1);
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		close(fds[i]);
	}
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void check_refuses_admin_token_alone(void **state)
{
	struct e2e *t = *state;
	char *out = NULL, *err = NULL;
	const char *argv[] = { harness_bin(), "check", "-c", t->h.conf, NULL };

	snprintf(t->h.extra, sizeof t->h.extra, "admin_token = x\n");
	assert_int_equal(harness_write_rules(&t->h, rules, NULL), 0);
	assert_int_equal(harness_write_config(&t->h), 0);
	assert_int_equal(harness_run(&t->h, argv, NULL, 10000, &out, &err), 1);
	assert_non_null(strstr(err, "admin_token is set but admin_listen is not"));
	free(out);
	free(err);
	snprintf(t->h.extra, sizeof t->h.extra, "admin_listen = 127.0.0.1:9464s\n");
	assert_int_equal(harness_write_config(&t->h), 0);
	assert_int_equal(harness_run(&t->h, argv, NULL, 10000, &out, &err), 1);
	assert_non_null(strstr(err, "TLS ('s') is not supported"));
	free(out);
	free(err);
	e2e_pass(t);
}

const struct CMUnitTest e2e_admin_tests[] = {
	E2E_TEST(readyz_follows_output_dir),
	E2E_TEST(admin_listener_serves_ops_routes_alone),
	E2E_TEST(admin_token_guards_metrics_not_probes),
	E2E_TEST(admin_port_answers_while_public_workers_are_held),
	E2E_TEST(check_refuses_admin_token_alone),
};
const size_t e2e_admin_count = sizeof(e2e_admin_tests) / sizeof(e2e_admin_tests[0]);
