/*
 * e2e_config_reload.c — SIGHUP re-reads the whole router.conf: live keys
 * (auth_token, max_body, log_level) take effect for new requests with no
 * failed request under load; keys that need a restart (listen, threads)
 * are named in the log and keep serving as before; a config that does not
 * validate is refused whole with file:line; a module the rules `require`
 * is part of the rules generation (an edit on disk changes nothing until
 * SIGHUP, and breaks no worker). The guard's keys (rate_limit, allow_from)
 * and the delivery thread's (forward_signing_secret, forward_max_attempts)
 * change live too.
 */
#include "e2e/e2e.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deliver.h"

static const char one[] = "{\"events\":[{\"action\":\"email_open\"}]}";

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
	assert_true(e2e_log_wait(t, "config generation 2", 1));
	assert_true(e2e_log_wait(t, "max_body changed, new requests use it", 1));
	assert_true(e2e_log_wait(t, "log_level changed", 1));
	debug_before = e2e_log_count(t, "batch from ");
	for (long want = harness_load_ok(l) + 30, i = 0; i < 400 && harness_load_ok(l) < want; i++)
		harness_sleep_ms(25);
	harness_load_stop(l);
	failed = harness_load_not_200(l, &total);
	harness_load_free(l);
	fprintf(stderr, "[e2e] %ld requests across the reload, %ld failed\n", total, failed);
	assert_int_equal(failed, 0);
	assert_true(total >= 60);
	/* The new limit holds, and debug lines stopped (level warn). */
	assert_int_equal(cr_post_with(t, t->h.token, big, blen), 413);
	debug_after = e2e_log_count(t, "batch from ");
	assert_int_equal(debug_after, debug_before);

	/* The token: the new one is accepted, the old one refused. */
	snprintf(old, sizeof old, "%s", t->h.token);
	snprintf(t->h.token, sizeof t->h.token, "%s", "a-new-token-after-the-reload");
	cr_reload(t, "max_body = 4K\nlog_level = info\n");
	assert_true(e2e_log_wait(t, "config generation 3", 1));
	assert_true(e2e_log_wait(t, "auth_token changed", 1));
	assert_int_equal(cr_post_with(t, t->h.token, one, sizeof one - 1), 200);
	assert_int_equal(cr_post_with(t, old, one, sizeof one - 1), 401);
	/* The token is never logged, old or new. */
	assert_int_equal(e2e_log_count(t, old), 0);
	assert_int_equal(e2e_log_count(t, t->h.token), 0);
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
	assert_true(e2e_log_wait(t, "listen changed in", 1));
	assert_true(e2e_log_wait(t, "but needs a restart", 2));
	assert_true(e2e_log_wait(t, "threads changed in", 1));
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
	assert_true(e2e_log_wait(t, want, 1));
	assert_true(e2e_log_wait(t, "max_body", 1));
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
	assert_true(e2e_log_wait(t, "reloaded (generation 2)", 1));
	cr_post_12(t);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_int_equal(strlen(text), 36 * 3);
	assert_null(strstr(text + 24 * 3, "v1"));
	free(text);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* 1 when a TLS handshake from src (a loopback address) to the daemon
 * completes, 0 when the daemon cuts it. */
static int cr_handshake_from(const struct e2e *t, const char *src)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0;

	assert_non_null(ctx);
	assert_true(fd >= 0);
	inet_pton(AF_INET, src, &a.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	a.sin_port = htons((uint16_t)t->h.port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	SSL_set_fd(ssl, fd);
	ok = SSL_connect(ssl) == 1;   /* the test certificate is not verified */
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	return ok;
}

/* rate_limit and allow_from under SIGHUP: new requests and connections
 * meet the new settings, refusals are counted as at start-up. */
static void guard_keys_change_on_sighup(void **state)
{
	struct e2e *t = *state;
	long st[2];

	e2e_boot(t, "function route(e, m) write('seen.txt', {line = 'x'}) end\n",
		 "rate_limit_exempt = none\n");
	for (int i = 0; i < 4; i++)
		assert_int_equal(cr_post_with(t, t->h.token, one, sizeof one - 1), 200);
	assert_int_equal(cr_handshake_from(t, "127.0.0.2"), 1);

	cr_reload(t, "rate_limit_exempt = none\nrate_limit = 1/s\nrate_limit_burst = 1\n"
		     "allow_from = 127.0.0.1\n");
	assert_true(e2e_log_wait(t, "config generation 2", 1));
	assert_true(e2e_log_wait(t, "rate_limit changed, new requests use it", 1));
	assert_true(e2e_log_wait(t, "allow_from changed, new requests use it", 1));
	/* A burst of one: two requests in a row, the second is 429 (at most
	 * one token comes back between them unless they are 1 s apart). */
	for (int tries = 0; tries < 5; tries++) {
		harness_sleep_ms(1100);   /* a full bucket */
		st[0] = cr_post_with(t, t->h.token, one, sizeof one - 1);
		st[1] = cr_post_with(t, t->h.token, one, sizeof one - 1);
		if (st[0] == 200 && st[1] == 429)
			break;
		fprintf(stderr, "[e2e] after the reload: %ld then %ld\n", st[0], st[1]);
	}
	assert_int_equal(st[0], 200);
	assert_int_equal(st[1], 429);
	assert_int_equal(cr_handshake_from(t, "127.0.0.2"), 0);
	assert_int_equal((long)cr_metric(t, "egoi_router_refused_total{reason=\"allow_from\"}"), 1);
	assert_true(e2e_log_wait(t, "connection from 127.0.0.2 refused: not in allow_from", 1));

	/* Widened again and no rate limit: both addresses, every request. */
	cr_reload(t, "rate_limit_exempt = none\nallow_from = 127.0.0.1, 127.0.0.2\n");
	assert_true(e2e_log_wait(t, "config generation 3", 1));
	assert_int_equal(cr_handshake_from(t, "127.0.0.2"), 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(cr_post_with(t, t->h.token, one, sizeof one - 1), 200);
	assert_int_equal((long)cr_metric(t, "egoi_router_reloads_total{result=\"ok\"}"), 2);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* Posts one event, expecting 200. */
static void cr_post_ok(struct e2e *t)
{
	struct harness_response resp = e2e_post_expect(t, one, sizeof one - 1, 200);

	harness_response_free(&resp);
}

/* 1 when q carries a Standard Webhooks signature made with secret. */
static int cr_signed_with(const struct recv_request *q, const char *secret)
{
	const char *id = recv_header(q, "webhook-id"), *ts = recv_header(q, "webhook-timestamp"),
		   *sig = recv_header(q, "webhook-signature");
	unsigned char key[256];
	char expect[128];
	int n = deliver_signing_key(secret, key, sizeof key);

	assert_true(n > 0);
	if (!id || !ts || !sig)
		return 0;
	assert_int_equal(deliver_sign(key, (size_t)n, id, atoll(ts), q->body, q->body_len, expect,
				      sizeof expect), 0);
	return strcmp(sig, expect) == 0;
}

/* forward_signing_secret and forward_max_attempts under SIGHUP: the next
 * delivery is signed with the new secret, and a failing forward is dead
 * after the new number of attempts (the old setting, no limit, would have
 * retried it for a day). */
static void forward_keys_change_on_sighup(void **state)
{
	struct e2e *t = *state;
	static const char a[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			  b[] = "whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4";
	char extra[256];
	const struct recv_request *q;

	snprintf(extra, sizeof extra, "forward_signing_secret = %s\n", a);
	e2e_boot(t, "function route(e, m) forward('@RECV@/signed') end\n", extra);
	cr_post_ok(t);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	q = receiver_get(t->r, 0);
	assert_true(cr_signed_with(q, a));

	snprintf(extra, sizeof extra, "forward_signing_secret = %s\nforward_max_attempts = 2\n", b);
	cr_reload(t, extra);
	assert_true(e2e_log_wait(t, "forward_signing_secret changed, new requests use it", 1));
	assert_true(e2e_log_wait(t, "forward_max_attempts changed", 1));
	assert_true(e2e_log_wait(t, "delivery: new forward_* settings in force", 1));
	cr_post_ok(t);
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	q = receiver_get(t->r, 1);
	assert_true(cr_signed_with(q, b));
	assert_false(cr_signed_with(q, a));
	/* Neither secret reaches the log. */
	assert_int_equal(e2e_log_count(t, a + 6), 0);
	assert_int_equal(e2e_log_count(t, b + 6), 0);

	receiver_set_default(t->r, 503);
	cr_post_ok(t);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM dead_letters", 1, 10000), 0);
	assert_int_equal(receiver_count(t->r), 4);   /* 2 delivered, 2 attempts of the third */
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM deliveries"), 0);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_config_reload_tests[] = {
	E2E_TEST(live_keys_change_on_sighup_under_load),
	E2E_TEST(restart_keys_are_named_and_keep_serving),
	E2E_TEST(invalid_config_is_refused_whole),
	E2E_TEST(required_module_is_part_of_the_rules_generation),
	E2E_TEST(guard_keys_change_on_sighup),
	E2E_TEST(forward_keys_change_on_sighup),
};
const size_t e2e_config_reload_count =
	sizeof(e2e_config_reload_tests) / sizeof(e2e_config_reload_tests[0]);
