/*
 * e2e_config_reload.c — SIGHUP re-reads the whole router.conf: live keys
 * (auth_token, max_body, log_level) take effect for new requests with no
 * failed request under load; keys that need a restart (listen, threads)
 * are named in the log and keep serving as before; a config that does not
 * validate is refused whole with file:line; a module the rules `require`
 * is part of the rules generation (an edit on disk changes nothing until
 * SIGHUP, and breaks no worker).
 */
#include "e2e/e2e.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char one[] = "{\"events\":[{\"action\":\"email_open\"}]}";

/* Occurrences of needle in the daemon log. */
static int cr_log_count(const struct e2e *t, const char *needle)
{
	char *text = harness_read_file(t->h.log, NULL);
	int seen = 0;

	for (const char *p = text; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		seen++;
	free(text);
	return seen;
}

/* Polls (<= 5 s) until needle appears at least n times. */
static int cr_log_wait(const struct e2e *t, const char *needle, int n)
{
	for (int waited = 0; waited <= 5000; waited += 50) {
		if (cr_log_count(t, needle) >= n)
			return 1;
		harness_sleep_ms(50);
	}
	fprintf(stderr, "[e2e] \"%s\" not seen %d times in the log\n", needle, n);
	return 0;
}

/* Rewrites router.conf with extra as the extra lines, then SIGHUP. */
static void cr_reload(struct e2e *t, const char *extra)
{
	snprintf(t->h.extra, sizeof t->h.extra, "%s", extra);
	assert_int_equal(harness_write_config(&t->h), 0);
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
}

static long cr_post_with(const struct e2e *t, const char *token, const char *body, size_t len)
{
	char header[128];
	const char *headers[] = { header, NULL };
	struct harness_response resp;
	long status;

	snprintf(header, sizeof header, "X-Router-Token: %s", token);
	if (harness_request(&t->h, "POST", "/hooks/egoi",
			    "application/json", headers, body, len, 0, &resp) != 0)
		status = 0;
	else
		status = resp.status;
	harness_response_free(&resp);
	return status;
}

static double cr_metric(const struct e2e *t, const char *series)
{
	double v = -1;

	assert_int_equal(harness_metric(&t->h, series, &v), 0);
	return v;
}

/* A body of about n bytes: one event with a long field. */
static char *cr_big_body(size_t n, size_t *len)
{
	char *b = malloc(n + 64);

	assert_non_null(b);
	*len = (size_t)snprintf(b, 64, "{\"events\":[{\"action\":\"email_open\",\"pad\":\"");
	memset(b + *len, 'x', n);
	*len += n;
	*len += (size_t)snprintf(b + *len, 8, "\"}]}");
	return b;
}

static void live_keys_change_on_sighup_under_load(void **state)
{
	struct e2e *t = *state;
	char old[sizeof t->h.token];
	size_t blen;
	char *big = cr_big_body(8192, &blen);
	long failed = 0, total = 0;
	int debug_before, debug_after;
	struct harness_load *l;

	e2e_boot(t, "function route(e, m) write('seen.txt', {line = 'x'}) end\n",
		 "max_body = 1M\n");
	assert_int_equal(cr_post_with(t, t->h.token, big, blen), 200);
	l = harness_load_start(&t->h, 6, 2);
	assert_non_null(l);
	for (int i = 0; i < 400 && harness_load_ok(l) < 30; i++)
		harness_sleep_ms(25);
	/* A limit and the log level, with the load going on. */
	cr_reload(t, "max_body = 4K\nlog_level = warn\n");
	assert_true(cr_log_wait(t, "config generation 2", 1));
	assert_true(cr_log_wait(t, "max_body changed, new requests use it", 1));
	assert_true(cr_log_wait(t, "log_level changed", 1));
	debug_before = cr_log_count(t, "batch from ");
	for (long want = harness_load_ok(l) + 30, i = 0; i < 400 && harness_load_ok(l) < want; i++)
		harness_sleep_ms(25);
	harness_load_stop(l);
	for (int k = 0; k < harness_load_threads(l); k++)
		for (long n = 0; n < harness_load_count(l, k); n++, total++)
			failed += harness_load_status(l, k, n) != 200;
	harness_load_free(l);
	fprintf(stderr, "[e2e] %ld requests across the reload, %ld failed\n", total, failed);
	assert_int_equal(failed, 0);
	assert_true(total >= 60);
	/* The new limit holds, and debug lines stopped (level warn). */
	assert_int_equal(cr_post_with(t, t->h.token, big, blen), 413);
	debug_after = cr_log_count(t, "batch from ");
	assert_int_equal(debug_after, debug_before);

	/* The token: the new one is accepted, the old one refused. */
	snprintf(old, sizeof old, "%s", t->h.token);
	snprintf(t->h.token, sizeof t->h.token, "%s", "a-new-token-after-the-reload");
	cr_reload(t, "max_body = 4K\nlog_level = info\n");
	assert_true(cr_log_wait(t, "config generation 3", 1));
	assert_true(cr_log_wait(t, "auth_token changed", 1));
	assert_int_equal(cr_post_with(t, t->h.token, one, sizeof one - 1), 200);
	assert_int_equal(cr_post_with(t, old, one, sizeof one - 1), 401);
	/* The token is never logged, old or new. */
	assert_int_equal(cr_log_count(t, old), 0);
	assert_int_equal(cr_log_count(t, t->h.token), 0);
	assert_int_equal((long)cr_metric(t, "egoi_router_reloads_total{result=\"ok\"}"), 2);
	assert_int_equal((long)cr_metric(t, "egoi_router_reloads_total{result=\"refused\"}"), 0);
	free(big);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void restart_keys_are_named_and_keep_serving(void **state)
{
	struct e2e *t = *state;
	char extra[128];

	e2e_boot(t, "function route(e, m) write('seen.txt', {line = 'x'}) end\n", NULL);
	snprintf(extra, sizeof extra, "listen = 127.0.0.1:%ds\nthreads = 3\n",
		 t->h.port == 65535 ? 65534 : t->h.port + 1);
	cr_reload(t, extra);
	assert_true(cr_log_wait(t, "listen changed in", 1));
	assert_true(cr_log_wait(t, "but needs a restart", 2));
	assert_true(cr_log_wait(t, "threads changed in", 1));
	/* The old port still serves, and the reload itself counts as done. */
	assert_int_equal(cr_post_with(t, t->h.token, one, sizeof one - 1), 200);
	assert_int_equal((long)cr_metric(t, "egoi_router_reloads_total{result=\"ok\"}"), 1);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void invalid_config_is_refused_whole(void **state)
{
	struct e2e *t = *state;
	char want[HARNESS_PATH + 64], old[sizeof t->h.token];

	e2e_boot(t, "function route(e, m) write('seen.txt', {line = 'x'}) end\n", NULL);
	/* A good new token and a bad value: nothing of it applies. */
	snprintf(old, sizeof old, "%s", t->h.token);
	snprintf(t->h.token, sizeof t->h.token, "%s", "token-that-must-not-apply");
	cr_reload(t, "max_body = lots\n");
	snprintf(want, sizeof want, "reload refused, the previous config and rules keep serving: %s:",
		 t->h.conf);
	assert_true(cr_log_wait(t, want, 1));
	assert_true(cr_log_wait(t, "max_body", 1));
	assert_int_equal(cr_post_with(t, old, one, sizeof one - 1), 200);
	assert_int_equal(cr_post_with(t, t->h.token, one, sizeof one - 1), 401);
	assert_int_equal((long)cr_metric(t, "egoi_router_reloads_total{result=\"refused\"}"), 1);
	assert_int_equal((long)cr_metric(t, "egoi_router_reloads_total{result=\"ok\"}"), 0);
	snprintf(t->h.token, sizeof t->h.token, "%s", old);
	e2e_stop_ok(t);
	e2e_pass(t);
}

struct cr_poster {
	const struct e2e *t;
	long status;
};

static void *cr_post_thread(void *arg)
{
	struct cr_poster *p = arg;

	p->status = cr_post_with(p->t, p->t->h.token, one, sizeof one - 1);
	return NULL;
}

/* 12 batches at once, so that workers that never served build their state now. */
static void cr_post_12(const struct e2e *t)
{
	struct cr_poster p[12];
	pthread_t th[12];

	for (int i = 0; i < 12; i++) {
		p[i].t = t;
		p[i].status = 0;
		assert_int_equal(pthread_create(&th[i], NULL, cr_post_thread, &p[i]), 0);
	}
	for (int i = 0; i < 12; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (p[i].status != 200)
			fprintf(stderr, "[e2e] concurrent post %d: %ld\n", i, p[i].status);
		assert_int_equal(p[i].status, 200);
	}
}

static void required_module_is_part_of_the_rules_generation(void **state)
{
	struct e2e *t = *state;
	char mod[HARNESS_PATH + 16], path[HARNESS_PATH + 16];
	static const char v1[] = "return { v = 'v1' }\n", v2[] = "return { v = 'v2' }\n",
			  broken[] = "return { v = \n";
	char *text;

	snprintf(mod, sizeof mod, "%s/mod.lua", t->h.dir);
	assert_int_equal(harness_write_file(mod, v1, sizeof v1 - 1), 0);
	e2e_boot(t, "local m = require('mod')\n"
		    "function route(e, meta) write('v.txt', {line = m.v}) end\n",
		 "threads = 16\n");
	/* On disk only, no SIGHUP: the workers building their state now still
	 * take the module compiled with the rules. */
	assert_int_equal(harness_write_file(mod, broken, sizeof broken - 1), 0);
	cr_post_12(t);
	assert_int_equal(harness_write_file(mod, v2, sizeof v2 - 1), 0);
	cr_post_12(t);
	snprintf(path, sizeof path, "%s/v.txt", t->h.output_dir);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "v2"));
	assert_int_equal(strlen(text), 24 * 3);
	free(text);
	/* SIGHUP: the module as it is now. */
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	assert_true(cr_log_wait(t, "reloaded (generation 2)", 1));
	cr_post_12(t);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_int_equal(strlen(text), 36 * 3);
	assert_null(strstr(text + 24 * 3, "v1"));
	free(text);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_config_reload_tests[] = {
	E2E_TEST(live_keys_change_on_sighup_under_load),
	E2E_TEST(restart_keys_are_named_and_keep_serving),
	E2E_TEST(invalid_config_is_refused_whole),
	E2E_TEST(required_module_is_part_of_the_rules_generation),
};
const size_t e2e_config_reload_count =
	sizeof(e2e_config_reload_tests) / sizeof(e2e_config_reload_tests[0]);
