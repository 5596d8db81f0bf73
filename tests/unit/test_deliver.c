/*
 * test_deliver.c — the retry policy, Retry-After parsing, and the delivery
 * thread end to end: a real outbox in a temporary directory, real libcurl,
 * and a civetweb receiver on 127.0.0.1 (ephemeral port) that records every
 * request and answers with a status scripted by the request path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include "deliver.h"
#include "header_rule.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "outbox_deliver.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* --- pure functions --- */

#define DAY_MS 86400000L


/* The policy with the default backoff cap (10 min), in the order of its inputs. */
static enum deliver_outcome policy(int status, long attempts, long max_attempts, double age_ms,
				   long max_age_ms, double retry_after_s, double rnd, double *delay)
{
	struct deliver_limits lim = {
		.max_attempts = max_attempts,
		.max_age_ms = max_age_ms,
		.backoff_max_s = DELIVER_BACKOFF_MAX_MS / 1000.0,
	};

	return deliver_policy(status, attempts, age_ms, retry_after_s, rnd, &lim, delay);
}

static void test_policy_success(void **state)
{
	double delay = -1;

	(void)state;
	assert_int_equal(policy(200, 1, 12, 0, DAY_MS, -1, 0.5, &delay), DELIVER_DONE);
	assert_int_equal(policy(204, 12, 12, 1e12, DAY_MS, -1, 0.5, &delay), DELIVER_DONE);
	assert_int_equal(policy(299, 1, 12, 0, DAY_MS, -1, 0.5, &delay), DELIVER_DONE);
}

static void test_policy_permanent_failures(void **state)
{
	static const int codes[] = { 100, 301, 304, 400, 401, 403, 404, 410, 422, 600 };
	double delay = -1;

	(void)state;
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		assert_int_equal(policy(codes[i], 1, 12, 0, DAY_MS, -1, 0.5, &delay),
				 DELIVER_DEAD);
}

static void test_policy_retryable(void **state)
{
	static const int codes[] = { 0, 408, 429, 500, 502, 503, 504, 599 };

	(void)state;
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		double delay = -1;

		assert_int_equal(policy(codes[i], 1, 12, 0, DAY_MS, -1, 0.5, &delay),
				 DELIVER_RETRY);
		assert_true(delay >= 0 && delay < 1.0);
	}
}

static void test_policy_attempt_limit(void **state)
{
	double delay;

	(void)state;
	assert_int_equal(policy(503, 11, 12, 0, DAY_MS, -1, 0.5, &delay), DELIVER_RETRY);
	assert_int_equal(policy(503, 12, 12, 0, DAY_MS, -1, 0.5, &delay), DELIVER_DEAD);
	assert_int_equal(policy(0, 13, 12, 0, DAY_MS, -1, 0.5, &delay), DELIVER_DEAD);
	/* Retry-After does not buy extra attempts. */
	assert_int_equal(policy(429, 12, 12, 0, DAY_MS, 5, 0.5, &delay), DELIVER_DEAD);
}

static void test_policy_age_limit(void **state)
{
	double delay;

	(void)state;
	assert_int_equal(policy(500, 2, 12, DAY_MS - 1, DAY_MS, -1, 0.5, &delay),
			 DELIVER_RETRY);
	assert_int_equal(policy(500, 2, 12, DAY_MS, DAY_MS, -1, 0.5, &delay), DELIVER_DEAD);
	assert_int_equal(policy(0, 1, 12, 90000000, DAY_MS, -1, 0.5, &delay), DELIVER_DEAD);
}

static void test_policy_full_jitter_doubling(void **state)
{
	static const double rnds[] = { 0.0, 0.25, 0.5, 0.999999 };

	(void)state;
	for (long n = 1; n <= 40; n++) {
		double base = fmin(600.0, ldexp(1.0, (int)n - 1));

		for (size_t i = 0; i < sizeof rnds / sizeof rnds[0]; i++) {
			double delay = -1;

			assert_int_equal(policy(503, n, 100, 0, DAY_MS, -1, rnds[i], &delay),
					 DELIVER_RETRY);
			assert_true(fabs(delay - rnds[i] * base) < 1e-9);
			assert_true(delay >= 0 && delay < 600.0);
		}
	}
	/* Attempts 1, 2, 3: at most 1 s, 2 s, 4 s. */
	{
		double d1, d2, d3;

		policy(503, 1, 100, 0, DAY_MS, -1, 0.999, &d1);
		policy(503, 2, 100, 0, DAY_MS, -1, 0.999, &d2);
		policy(503, 3, 100, 0, DAY_MS, -1, 0.999, &d3);
		assert_true(d1 < 1.0 && d1 > 0.99);
		assert_true(d2 < 2.0 && d2 > 1.99);
		assert_true(d3 < 4.0 && d3 > 3.99);
	}
	/* The cap holds for absurd attempt counts, and rnd out of range is clamped. */
	{
		double delay = -1;

		policy(503, 1000000, 0, 0, 0, -1, 0.999, &delay);
		assert_true(delay <= 600.0 && delay > 590.0);
		policy(503, 3, 0, 0, 0, -1, 1.5, &delay);
		assert_true(delay < 4.0);
		policy(503, 3, 0, 0, 0, -1, -1.0, &delay);
		assert_true(delay == 0.0);
	}
}

static void test_policy_retry_after(void **state)
{
	double delay = -1;

	(void)state;
	assert_int_equal(policy(429, 1, 12, 0, DAY_MS, 30, 0.0, &delay), DELIVER_RETRY);
	assert_true(delay == 30.0);
	/* A floor, never a shortcut: Retry-After: 0 or 1 does not shorten the
	 * backoff (attempt 5: 0.9 * 16 s). */
	assert_int_equal(policy(503, 5, 12, 0, DAY_MS, 0, 0.9, &delay), DELIVER_RETRY);
	assert_true(fabs(delay - 14.4) < 1e-9);
	assert_int_equal(policy(429, 5, 12, 0, DAY_MS, 1, 0.9, &delay), DELIVER_RETRY);
	assert_true(fabs(delay - 14.4) < 1e-9);
	assert_int_equal(policy(429, 5, 12, 0, DAY_MS, 20, 0.9, &delay), DELIVER_RETRY);
	assert_true(delay == 20.0);
	assert_int_equal(policy(503, 1, 12, 0, DAY_MS, 7200, 0.9, &delay), DELIVER_RETRY);
	assert_true(delay == 3600.0);
	/* Ignored when the outcome is not a retry. */
	assert_int_equal(policy(400, 1, 12, 0, DAY_MS, 30, 0.9, &delay), DELIVER_DEAD);
}

/*
 * The promise of the defaults (no attempt limit, 24 h age): a destination
 * that answers 429 with Retry-After: 1 (a rate-limited Slack), or fails in
 * any retryable way, for a whole hour never dead-letters a forward — at
 * every attempt along the real schedule, with the worst-case (shortest)
 * jitter, the outcome is a retry.
 */
static void test_policy_an_hour_outage_is_no_dead_letter(void **state)
{
	static const int codes[] = { 0, 429, 503, 500, 408 };
	static const double rnds[] = { 0.0, 0.5, 0.999 };

	(void)state;
	for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++)
		for (size_t r = 0; r < sizeof rnds / sizeof rnds[0]; r++) {
			double age = 0, delay = 0;
			long attempt = 0;

			while (age < 3600e3) {
				attempt++;
				assert_int_equal(policy(codes[c], attempt, 0, age, DAY_MS,
							codes[c] == 429 ? 1 : -1, rnds[r], &delay),
						 DELIVER_RETRY);
				/* a retry is never scheduled sooner than Retry-After */
				if (codes[c] == 429)
					assert_true(delay >= 1.0);
				age += fmax(delay, 0.001) * 1000.0;
			}
			/* past the age limit it ends, whatever the attempt count */
			assert_int_equal(policy(codes[c], attempt + 1, 0, DAY_MS, DAY_MS, -1, 0.5,
						&delay), DELIVER_DEAD);
		}
}

static void test_policy_backoff_cap_is_configurable(void **state)
{
	struct deliver_limits lim = { .max_age_ms = DAY_MS, .backoff_max_s = 2.0 };
	double delay = -1;

	(void)state;
	assert_int_equal(deliver_policy(503, 30, 0, -1, 0.999, &lim, &delay), DELIVER_RETRY);
	assert_true(delay < 2.0 && delay > 1.99);
	/* Retry-After still wins over a small cap, up to an hour. */
	assert_int_equal(deliver_policy(503, 30, 0, 30, 0.5, &lim, &delay), DELIVER_RETRY);
	assert_true(delay == 30.0);
	assert_int_equal(deliver_policy(503, 30, 0, 1e6, 0.5, &lim, &delay), DELIVER_RETRY);
	assert_true(delay == 3600.0);
	assert_true(deliver_pause(-1) == 0 && deliver_pause(5) == 5 && deliver_pause(1e6) == 3600);
}

static void test_circuit_opens_probes_and_closes(void **state)
{
	struct deliver_circuit c = { 0 };
	double t = 1000;

	(void)state;
	assert_int_equal(deliver_circuit_allowance(&c, t, 16), 16);
	/* Failures below the threshold, then a success: still closed, count reset. */
	for (int i = 0; i < DELIVER_CIRCUIT_FAILURES - 1; i++)
		assert_int_equal(deliver_circuit_record(&c, 1, t, 0, 600), DELIVER_STAYED);
	assert_int_equal(deliver_circuit_record(&c, 0, t, 0, 600), DELIVER_STAYED);
	assert_int_equal(c.failures, 0);
	/* The threshold opens it for 1 s: nothing may start. */
	for (int i = 0; i < DELIVER_CIRCUIT_FAILURES - 1; i++)
		assert_int_equal(deliver_circuit_record(&c, 1, t, 0, 600), DELIVER_STAYED);
	assert_int_equal(deliver_circuit_record(&c, 1, t, 0, 600), DELIVER_OPENED);
	assert_int_equal(c.state, DELIVER_OPEN);
	assert_int_equal(deliver_circuit_allowance(&c, t + 0.5, 16), 0);
	/* A late failure of a request started before it opened changes nothing. */
	assert_int_equal(deliver_circuit_record(&c, 1, t + 0.5, 0, 600), DELIVER_STAYED);
	/* Then one probe. */
	assert_int_equal(deliver_circuit_allowance(&c, t + 1.0, 16), 1);
	assert_int_equal(c.state, DELIVER_HALF_OPEN);
	/* A failed probe doubles the open period: 2 s, 4 s, ... capped at 60 s. */
	assert_int_equal(deliver_circuit_record(&c, 1, t + 1, 0, 600), DELIVER_REOPENED);
	assert_true(fabs(c.until - (t + 3)) < 1e-9);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(deliver_circuit_allowance(&c, c.until, 16), 1);
		assert_int_equal(deliver_circuit_record(&c, 1, c.until, 0, 600), DELIVER_REOPENED);
	}
	assert_true(c.open_s == 60.0);
	/* Retry-After makes an open period longer, never shorter. */
	assert_int_equal(deliver_circuit_allowance(&c, c.until, 16), 1);
	t = c.until;
	assert_int_equal(deliver_circuit_record(&c, 1, t, 300, 600), DELIVER_REOPENED);
	assert_true(fabs(c.until - (t + 300)) < 1e-9);
	/* A probe that gets any answer but a retryable one closes it. */
	assert_int_equal(deliver_circuit_allowance(&c, c.until, 16), 1);
	assert_int_equal(deliver_circuit_record(&c, 0, c.until, 0, 600), DELIVER_CLOSED_AGAIN);
	assert_int_equal(deliver_circuit_allowance(&c, c.until, 16), 16);
	assert_int_equal(c.failures, 0);
}

static void test_circuit_open_time_follows_backoff_max(void **state)
{
	struct deliver_circuit c = { 0 };

	(void)state;
	for (int i = 0; i < DELIVER_CIRCUIT_FAILURES; i++)
		deliver_circuit_record(&c, 1, 0, 0, 2.0);
	assert_int_equal(c.state, DELIVER_OPEN);
	for (int i = 0; i < 5; i++) {
		deliver_circuit_allowance(&c, c.until, 4);
		deliver_circuit_record(&c, 1, c.until, 0, 2.0);
	}
	assert_true(c.open_s == 2.0);
}

static void test_parse_retry_after(void **state)
{
	struct tm tm = { .tm_year = 2015 - 1900, .tm_mon = 9, .tm_mday = 21,
			 .tm_hour = 7, .tm_min = 28, .tm_sec = 0 };
	double date = (double)timegm(&tm);

	(void)state;
	assert_true(deliver_parse_retry_after("120", 0) == 120.0);
	assert_true(deliver_parse_retry_after(" 5 \r\n", 0) == 5.0);
	assert_true(deliver_parse_retry_after("0", 0) == 0.0);
	assert_true(deliver_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date - 90) == 90.0);
	assert_true(deliver_parse_retry_after(" Wed, 21 Oct 2015 07:28:00 GMT\r\n", date - 1.5) ==
		    1.5);
	/* Obsolete forms RFC 9110 requires recipients to accept. */
	assert_true(deliver_parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", date - 10) ==
		    10.0);
	assert_true(deliver_parse_retry_after("Wed Oct 21 07:28:00 2015", date - 10) == 10.0);
	/* A date in the past means now. */
	assert_true(deliver_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", date + 100) == 0.0);

	assert_true(deliver_parse_retry_after(NULL, 0) == -1);
	assert_true(deliver_parse_retry_after("", 0) == -1);
	assert_true(deliver_parse_retry_after("soon", 0) == -1);
	assert_true(deliver_parse_retry_after("12abc", 0) == -1);
	assert_true(deliver_parse_retry_after("-5", 0) == -1);
	assert_true(deliver_parse_retry_after("1.5", 0) == -1);
	assert_true(deliver_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT trailing", 0) == -1);
	/* asctime with a space-padded day */
	assert_true(deliver_parse_retry_after("Wed Oct  7 07:28:00 2015", date - 14 * 86400 - 10) ==
		    10.0);
	/* dates curl_getdate would read, but that are not HTTP dates */
	assert_true(deliver_parse_retry_after("21 Oct 2015", 0) == -1);
	assert_true(deliver_parse_retry_after("2015-10-21T07:28:00Z", 0) == -1);
	assert_true(deliver_parse_retry_after("Wed, 21 Oct 2015 07:28:00", 0) == -1);
	assert_true(deliver_parse_retry_after("Wed, 21 Oct 2015 07:28:00 CET", 0) == -1);
	/* the right shape, an impossible value */
	assert_true(deliver_parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", 0) == -1);
	assert_true(deliver_parse_retry_after("Wed, 21 Foo 2015 07:28:00 GMT", 0) == -1);
	assert_true(deliver_parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT", 0) == -1);
	/* RFC 9110's own example dates, in its three forms (curl_getdate). */
	assert_true(deliver_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 7) == 7.0);
	assert_true(deliver_parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", 784111777 - 7) == 7.0);
	assert_true(deliver_parse_retry_after("Sun Nov  6 08:49:37 1994", 784111777 - 7) == 7.0);
	assert_true(deliver_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 7) == 0.0);
	assert_true(deliver_parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", 0) == -1);
	assert_true(deliver_parse_retry_after("+5", 0) == -1);
}

/* --- the receiver --- */

#define RX_MAX 32

struct rx_req {
	char method[8], path[64], delivery_id[64], ctype[64], custom[64], other[64];
	char wh_id[64], wh_ts[32], wh_sig[128];
	char settable[64];   /* a header name the request had that a rule may set too */
	int attempt, has_expect, remote_port, has_injected, has_bad, n_attempt, n_ctype;
	char *body;
	size_t body_len;
	double at;
};

struct rx {
	struct mg_context *ctx;
	int port;
	pthread_mutex_t mu;
	struct rx_req reqs[RX_MAX];
	int n, active, max_active;
	atomic_int quit;
	atomic_int outage;             /* /outage answers 503 while set */
};

struct fx {
	char dir[64];
	const char *signing_secret;
	struct rx *rx;
	struct deliver *d;
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void copy_header(struct mg_connection *conn, const char *name, char *out, size_t len)
{
	const char *v = mg_get_header(conn, name);

	snprintf(out, len, "%s", v ? v : "");
}

/* Sleeps up to ms, ending early when the test is tearing down. */
static void rx_nap(struct rx *rx, int ms)
{
	for (int i = 0; i < ms / 10 && !atomic_load(&rx->quit); i++)
		usleep(10 * 1000);
}

static int rx_handle(struct mg_connection *conn)
{
	struct rx *rx = mg_get_user_data(mg_get_context(conn));
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct rx_req r;
	size_t cap = 4096;
	int status = 200, seen = 0, nread;
	const char *extra = "", *reply = "";
	const char *attempt = mg_get_header(conn, "X-Router-Attempt");

	memset(&r, 0, sizeof r);
	snprintf(r.method, sizeof r.method, "%s", ri->request_method);
	snprintf(r.path, sizeof r.path, "%s", ri->local_uri ? ri->local_uri : "");
	copy_header(conn, "X-Router-Delivery-Id", r.delivery_id, sizeof r.delivery_id);
	copy_header(conn, "Content-Type", r.ctype, sizeof r.ctype);
	copy_header(conn, "X-Custom", r.custom, sizeof r.custom);
	copy_header(conn, "X-Other", r.other, sizeof r.other);
	copy_header(conn, "webhook-id", r.wh_id, sizeof r.wh_id);
	copy_header(conn, "webhook-timestamp", r.wh_ts, sizeof r.wh_ts);
	copy_header(conn, "webhook-signature", r.wh_sig, sizeof r.wh_sig);
	r.attempt = attempt ? atoi(attempt) : -1;
	r.has_expect = mg_get_header(conn, "Expect") != NULL;
	r.remote_port = ri->remote_port;
	r.has_injected = mg_get_header(conn, "X-Injected") != NULL;
	r.has_bad = mg_get_header(conn, "X-Bad") != NULL;
	for (int i = 0; i < ri->num_headers; i++) {
		r.n_attempt += strcasecmp(ri->http_headers[i].name, "X-Router-Attempt") == 0;
		r.n_ctype += strcasecmp(ri->http_headers[i].name, "Content-Type") == 0;
		/* libcurl's own defaults are not the router's */
		if (header_rule_check(ri->http_headers[i].name, strlen(ri->http_headers[i].name),
				      "", 0) == NULL && !r.settable[0] &&
		    strcasecmp(ri->http_headers[i].name, "Host") != 0 &&
		    strcasecmp(ri->http_headers[i].name, "User-Agent") != 0 &&
		    strcasecmp(ri->http_headers[i].name, "Accept") != 0)
			snprintf(r.settable, sizeof r.settable, "%s", ri->http_headers[i].name);
	}
	r.body = malloc(cap);
	while (r.body && (nread = mg_read(conn, r.body + r.body_len, cap - r.body_len)) > 0) {
		r.body_len += (size_t)nread;
		if (r.body_len == cap) {
			char *nb = realloc(r.body, cap * 2);

			if (!nb) {
				free(r.body);
				r.body = NULL;
				break;
			}
			r.body = nb;
			cap *= 2;
		}
	}
	r.at = mono();

	pthread_mutex_lock(&rx->mu);
	for (int i = 0; i < rx->n; i++)
		seen += strcmp(rx->reqs[i].path, r.path) == 0;
	if (rx->n < RX_MAX)
		rx->reqs[rx->n++] = r;
	else
		free(r.body);
	if (++rx->active > rx->max_active)
		rx->max_active = rx->active;
	pthread_mutex_unlock(&rx->mu);

	if (strcmp(r.path, "/flaky") == 0) {
		status = seen == 0 ? 503 : 200;
	} else if (strcmp(r.path, "/later") == 0) {
		status = seen == 0 ? 429 : 200;
		extra = seen == 0 ? "Retry-After: 2\r\n" : "";
	} else if (strcmp(r.path, "/bad") == 0) {
		status = 400;
		reply = "nope\nnot\x01 this";
	} else if (strcmp(r.path, "/down") == 0) {
		status = 503;
	} else if (strcmp(r.path, "/outage") == 0) {
		status = atomic_load(&rx->outage) ? 503 : 200;
	} else if (strcmp(r.path, "/slow") == 0) {
		rx_nap(rx, 200);
	} else if (strcmp(r.path, "/hang") == 0) {
		rx_nap(rx, 5000);
	}
	mg_printf(conn, "HTTP/1.1 %d Scripted\r\nContent-Length: %zu\r\n%s\r\n%s", status,
		  strlen(reply), extra, reply);

	pthread_mutex_lock(&rx->mu);
	rx->active--;
	pthread_mutex_unlock(&rx->mu);
	return status;
}

static int rx_start(struct rx *rx)
{
	static const char *options[] = {
		"listening_ports", "127.0.0.1:0",
		"num_threads", "8",
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", "2000",
		NULL,
	};
	struct mg_callbacks cb;
	struct mg_server_port ports[2];

	memset(&cb, 0, sizeof cb);
	cb.begin_request = rx_handle;
	if (pthread_mutex_init(&rx->mu, NULL) != 0)
		return -1;
	rx->ctx = mg_start(&cb, rx, options);
	if (!rx->ctx)
		return -1;
	if (mg_get_server_ports(rx->ctx, 2, ports) < 1)
		return -1;
	rx->port = ports[0].port;
	return 0;
}

static void rx_stop(struct rx *rx)
{
	atomic_store(&rx->quit, 1);
	if (rx->ctx)
		mg_stop(rx->ctx);
	for (int i = 0; i < rx->n; i++)
		free(rx->reqs[i].body);
	pthread_mutex_destroy(&rx->mu);
}

static int rx_count(struct rx *rx)
{
	int n;

	pthread_mutex_lock(&rx->mu);
	n = rx->n;
	pthread_mutex_unlock(&rx->mu);
	return n;
}

static int rx_active(struct rx *rx)
{
	int n;

	pthread_mutex_lock(&rx->mu);
	n = rx->active;
	pthread_mutex_unlock(&rx->mu);
	return n;
}

/* --- fixture --- */

/*
 * One receiver serves every test: civetweb's mg_stop takes up to 2 s, too
 * long to pay per test. Each test starts with its records cleared.
 */
static struct rx g_rx;

static int rx_group_setup(void **state)
{
	(void)state;
	return rx_start(&g_rx);
}

static int rx_group_teardown(void **state)
{
	(void)state;
	rx_stop(&g_rx);
	return 0;
}

static void rx_reset(struct rx *rx)
{
	pthread_mutex_lock(&rx->mu);
	for (int i = 0; i < rx->n; i++)
		free(rx->reqs[i].body);
	rx->n = 0;
	rx->max_active = rx->active;
	pthread_mutex_unlock(&rx->mu);
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);

	if (!fx)
		return -1;
	fx->rx = &g_rx;
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test_deliver.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	rx_reset(fx->rx);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	double end = mono() + 5;

	deliver_stop(fx->d, 0);
	/* Let handlers still sleeping (/hang) return before the next test. */
	atomic_store(&fx->rx->quit, 1);
	while (rx_active(fx->rx) > 0 && mono() < end)
		usleep(10 * 1000);
	atomic_store(&fx->rx->quit, 0);
	atomic_store(&fx->rx->outage, 0);
	tu_rmtree(fx->dir);
	free(fx);
	return 0;
}

static void fx_run(struct fx *fx, long max_attempts, long concurrency)
{
	struct deliver_options opt = {
		.data_dir = fx->dir,
		.timeout_ms = 3000,
		.max_attempts = max_attempts,
		.max_age_ms = 3600000,
		.concurrency = concurrency,
		.signing_secret = fx->signing_secret,
	};
	char err[256] = "";

	fx->d = deliver_start(&opt, err, sizeof err);
	if (!fx->d)
		fail_msg("deliver_start: %s", err);
}

/* Commits one forward; its delivery id goes to id_out when not NULL. */
static void fx_add_to(struct fx *fx, const char *url, const char *method, const char *ctype,
		      const char *headers, const char *body, size_t body_len, char *id_out)
{
	struct outbox_forward f = {
		.url = url, .method = method, .content_type = ctype, .headers = headers,
		.body = body, .body_len = body_len, .request_id = "req-test",
	};
	char err[256] = "";
	struct outbox *ob = outbox_open(fx->dir, err, sizeof err);

	if (!ob)
		fail_msg("outbox_open: %s", err);
	assert_int_equal(outbox_begin(ob), 0);
	assert_int_equal(outbox_add_forward(ob, &f, id_out), 0);
	assert_int_equal(outbox_commit(ob), 0);
	outbox_close(ob);
}

static void fx_add(struct fx *fx, const char *path, char *id_out)
{
	char url[128];

	snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fx->rx->port, path);
	fx_add_to(fx, url, "POST", NULL, NULL, "{\"events\":[]}", 13, id_out);
}

/* The receiver's destination key, as the outbox stores it. */
static const char *fx_dest(struct fx *fx)
{
	static char key[64];

	snprintf(key, sizeof key, "http://127.0.0.1:%d", fx->rx->port);
	return key;
}

static long fx_count(struct fx *fx, int dead)
{
	char err[256] = "";
	struct outbox *ob = outbox_open(fx->dir, err, sizeof err);
	long n;

	if (!ob)
		fail_msg("outbox_open: %s", err);
	n = dead ? outbox_count_dead(ob) : outbox_count_pending(ob);
	outbox_close(ob);
	return n;
}

/* Waits until the outbox has no pending entry; fails after limit_s. */
static void fx_wait_drained(struct fx *fx, double limit_s)
{
	double end = mono() + limit_s;

	while (fx_count(fx, 0) != 0) {
		if (mono() > end)
			fail_msg("outbox not drained after %.1f s", limit_s);
		usleep(20 * 1000);
	}
}

static void fx_wait_active(struct fx *fx, int n, double limit_s)
{
	double end = mono() + limit_s;

	while (rx_active(fx->rx) < n) {
		if (mono() > end)
			fail_msg("receiver never saw %d requests at once", n);
		usleep(10 * 1000);
	}
}

/* --- end to end --- */

static void test_retry_keeps_id_body_and_headers(void **state)
{
	struct fx *fx = *state;
	char url[128], id[40] = "", body[3000];
	struct rx_req *a, *b;

	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (char)(i * 7 + 3);   /* NULs and high bytes included */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/flaky", fx->rx->port);
	/* Our own headers cannot be overridden; malformed lines are not sent. */
	fx_add_to(fx, url, "PUT", "application/x-ndjson",
		  "X-Custom: abc\r\nX-Router-Attempt: 99\ncontent-type: text/evil\n"
		  "no colon here\nX-Bad: a\rX-Injected: b\nX-Other: d e f\n",
		  body, sizeof body, id);
	fx_run(fx, 5, 2);
	fx_wait_drained(fx, 8);

	assert_int_equal(rx_count(fx->rx), 2);
	assert_int_equal(fx_count(fx, 1), 0);
	a = &fx->rx->reqs[0];
	b = &fx->rx->reqs[1];
	assert_string_equal(a->delivery_id, id);
	assert_string_equal(b->delivery_id, id);
	assert_int_equal(a->attempt, 1);
	assert_int_equal(b->attempt, 2);
	for (int i = 0; i < 2; i++) {
		struct rx_req *r = &fx->rx->reqs[i];

		assert_string_equal(r->method, "PUT");
		assert_string_equal(r->ctype, "application/x-ndjson");
		assert_string_equal(r->custom, "abc");
		assert_string_equal(r->other, "d e f");
		assert_false(r->has_expect);
		assert_false(r->has_injected);
		assert_false(r->has_bad);
		assert_int_equal(r->n_attempt, 1);
		assert_int_equal(r->n_ctype, 1);
		assert_int_equal(r->body_len, sizeof body);
		assert_memory_equal(r->body, body, sizeof body);
	}
	/* Full jitter on the first retry: between 0 and 1 s (plus scheduling). */
	assert_true(b->at - a->at < 1.5);
}

/* The Standard Webhooks specification's own test vector. */
static void test_signature_matches_standard_webhooks_vector(void **state)
{
	unsigned char key[64];
	char sig[128];
	const char *body = "{\"test\": 2432232314}";
	int n;

	(void)state;
	n = deliver_signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, sizeof key);
	assert_int_equal(n, 24);
	assert_int_equal(deliver_sign(key, (size_t)n, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
				      body, strlen(body), sig, sizeof sig), 0);
	assert_string_equal(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	assert_int_equal(deliver_signing_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, sizeof key), -1);
	assert_int_equal(deliver_signing_key("whsec_abc", key, sizeof key), -1);
	assert_int_equal(deliver_signing_key("whsec_", key, sizeof key), -1);
	assert_int_equal(deliver_signing_key("whsec_YWJjZA==", key, sizeof key), 4);
	assert_memory_equal(key, "abcd", 4);
}

static void test_signed_requests_carry_standard_webhooks_headers(void **state)
{
	struct fx *fx = *state;
	unsigned char key[64];
	char url[128], id[40], expect[128];
	const char *body = "{\"events\":[{\"action\":\"email_open\"}]}";
	struct rx_req *r;
	int n;

	fx->signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
	snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", fx->rx->port);
	fx_add_to(fx, url, "POST", NULL, NULL, body, strlen(body), id);
	fx_run(fx, 5, 2);
	fx_wait_drained(fx, 5);

	assert_int_equal(rx_count(fx->rx), 1);
	r = &fx->rx->reqs[0];
	assert_string_equal(r->wh_id, id);
	assert_true(atoll(r->wh_ts) > 1700000000LL);
	n = deliver_signing_key(fx->signing_secret, key, sizeof key);
	assert_int_equal(deliver_sign(key, (size_t)n, id, atoll(r->wh_ts), body, strlen(body),
				      expect, sizeof expect), 0);
	assert_string_equal(r->wh_sig, expect);
	/* Every header the router sets (a signed forward has them all) is one
	 * header_rule.c reserves, so no rule can send a second copy of it. */
	if (r->settable[0])
		fail_msg("the router sent '%s', which header_rule.c lets a rule set", r->settable);
}

/*
 * A reload's forward_* settings reach the running thread: the next request
 * is signed with the new secret, and a new attempt limit makes a dead
 * letter of what the old setting (no limit) would have retried for ever.
 */
static void test_reconfigure_applies_to_the_next_requests(void **state)
{
	struct fx *fx = *state;
	static const char secret2[] = "whsec_YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4";
	struct deliver_options opt = {
		.data_dir = fx->dir, .timeout_ms = 3000, .max_attempts = 2,
		.max_age_ms = 3600000, .concurrency = 1, .signing_secret = "whsec_abc",
	};
	unsigned char key[64];
	char url[128], id[40], expect[128], err[256];
	const char *body = "{\"events\":[]}";
	struct deliver_settings *set;
	struct rx_req *r;
	int n;

	/* A secret that does not decode is refused before anything changes. */
	assert_null(deliver_settings_new(&opt, err, sizeof err));
	assert_non_null(strstr(err, "forward_signing_secret"));
	opt.signing_secret = secret2;
	set = deliver_settings_new(&opt, err, sizeof err);
	assert_non_null(set);

	fx->signing_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
	fx_run(fx, 0, 4);
	deliver_reconfigure(fx->d, set);
	usleep(300 * 1000);   /* the loop wakes and takes it at its next turn */
	snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", fx->rx->port);
	fx_add_to(fx, url, "POST", NULL, NULL, body, strlen(body), id);
	fx_add(fx, "/down", NULL);
	fx_wait_drained(fx, 8);
	assert_int_equal(fx_count(fx, 1), 1);   /* /down: 2 attempts, then dead */
	assert_int_equal(rx_count(fx->rx), 3);
	r = NULL;
	for (int i = 0; i < 3; i++)
		if (strcmp(fx->rx->reqs[i].wh_id, id) == 0)
			r = &fx->rx->reqs[i];
	assert_non_null(r);
	n = deliver_signing_key(secret2, key, sizeof key);
	assert_true(n > 0);
	assert_int_equal(deliver_sign(key, (size_t)n, id, atoll(r->wh_ts), body, strlen(body),
				      expect, sizeof expect), 0);
	assert_string_equal(r->wh_sig, expect);
	deliver_reconfigure(NULL, NULL);   /* no thread: nothing to do */
}

static void test_post_defaults_and_empty_body(void **state)
{
	struct fx *fx = *state;
	char url[128];

	snprintf(url, sizeof url, "http://127.0.0.1:%d/ok", fx->rx->port);
	fx_add_to(fx, url, "POST", NULL, NULL, "", 0, NULL);
	fx_add(fx, "/ok", NULL);
	fx_run(fx, 5, 2);
	fx_wait_drained(fx, 5);

	assert_int_equal(rx_count(fx->rx), 2);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(fx->rx->reqs[i].method, "POST");
		assert_string_equal(fx->rx->reqs[i].ctype, "application/json");
		assert_int_equal(fx->rx->reqs[i].attempt, 1);
		assert_string_equal(fx->rx->reqs[i].custom, "");
		assert_string_equal(fx->rx->reqs[i].wh_sig, ""); /* no secret: unsigned */
	}
	assert_int_equal(fx->rx->reqs[0].body_len + fx->rx->reqs[1].body_len, 13);
}

/* The only dead letter's last status, reason and attempts, read with SQL. */
static void fx_dead_letter(struct fx *fx, int *status, char *reason, size_t len, int *attempts)
{
	char path[512];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	snprintf(path, sizeof path, "%s/outbox.db", fx->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT last_status, reason, attempts FROM dead_letters",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	*status = sqlite3_column_int(st, 0);
	snprintf(reason, len, "%s", (const char *)sqlite3_column_text(st, 1));
	*attempts = sqlite3_column_int(st, 2);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_bad_request_is_dead_letter(void **state)
{
	struct fx *fx = *state;
	char reason[256];
	int status, attempts;

	fx_add(fx, "/bad", NULL);
	fx_run(fx, 5, 2);
	fx_wait_drained(fx, 5);
	assert_int_equal(rx_count(fx->rx), 1);
	assert_int_equal(fx_count(fx, 1), 1);

	/* The dead letter keeps the status and a one-line piece of the answer. */
	fx_dead_letter(fx, &status, reason, sizeof reason, &attempts);
	assert_int_equal(status, 400);
	assert_string_equal(reason, "HTTP 400: nope not? this");
	assert_int_equal(attempts, 1);
}

static void test_max_attempts_is_dead_letter(void **state)
{
	struct fx *fx = *state;
	char reason[256];
	int status, attempts;

	fx_add(fx, "/down", NULL);
	fx_run(fx, 2, 2);
	fx_wait_drained(fx, 5);
	assert_int_equal(rx_count(fx->rx), 2);
	assert_int_equal(fx->rx->reqs[0].attempt, 1);
	assert_int_equal(fx->rx->reqs[1].attempt, 2);
	assert_int_equal(fx_count(fx, 1), 1);
	fx_dead_letter(fx, &status, reason, sizeof reason, &attempts);
	assert_int_equal(status, 503);
	assert_string_equal(reason, "HTTP 503");
	assert_int_equal(attempts, 2);
}

static void test_connection_refused_retries_then_dead(void **state)
{
	struct fx *fx = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	char url[128];
	int s = socket(AF_INET, SOCK_STREAM, 0);
	char reason[256];
	int status, attempts;
	double t0;

	/* A port that was free a moment ago: nothing listens there. */
	assert_true(s >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	close(s);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
	fx_add_to(fx, url, "POST", NULL, NULL, "{}", 2, NULL);

	t0 = mono();
	fx_run(fx, 2, 2);
	fx_wait_drained(fx, 5);
	assert_int_equal(fx_count(fx, 1), 1);
	assert_true(mono() - t0 < 3.0);
	fx_dead_letter(fx, &status, reason, sizeof reason, &attempts);
	assert_int_equal(status, 0);
	assert_int_equal(attempts, 2);
	assert_non_null(strstr(reason, "onnect"));
}

static void test_unsupported_url_is_dead_at_once(void **state)
{
	struct fx *fx = *state;

	fx_add_to(fx, "ftp://127.0.0.1/x", "POST", NULL, NULL, "{}", 2, NULL);
	fx_add_to(fx, "not a url", "POST", NULL, NULL, "{}", 2, NULL);
	fx_run(fx, 12, 2);
	fx_wait_drained(fx, 5);
	assert_int_equal(fx_count(fx, 1), 2);
	assert_int_equal(rx_count(fx->rx), 0);
}

static void test_retry_after_is_honoured(void **state)
{
	struct fx *fx = *state;
	double gap;

	fx_add(fx, "/later", NULL);
	fx_run(fx, 5, 2);
	fx_wait_drained(fx, 6);
	assert_int_equal(rx_count(fx->rx), 2);
	gap = fx->rx->reqs[1].at - fx->rx->reqs[0].at;
	/* Jitter alone would retry within 1 s; Retry-After said 2. */
	assert_true(gap >= 1.9);
	assert_true(gap < 3.5);
	assert_int_equal(fx_count(fx, 1), 0);
}

static void test_leased_entries_resume_after_restart(void **state)
{
	struct fx *fx = *state;
	struct outbox_delivery *claimed = NULL;
	char err[256] = "";
	struct outbox *ob;
	char id1[40], id2[40];

	/* A previous run leased the first entry and died mid-request. */
	fx_add(fx, "/ok", id1);
	ob = outbox_open(fx->dir, err, sizeof err);
	assert_non_null(ob);
	assert_int_equal(outbox_claim_due(ob, fx_dest(fx), 1e12, 10, &claimed), 1);
	outbox_deliveries_free(claimed, 1);
	outbox_close(ob);
	fx_add(fx, "/ok", id2);

	fx_run(fx, 5, 2);
	fx_wait_drained(fx, 5);
	assert_int_equal(rx_count(fx->rx), 2);
	assert_int_equal(fx_count(fx, 1), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fx->rx->reqs[i].attempt, 1);
		assert_true(strcmp(fx->rx->reqs[i].delivery_id, id1) == 0 ||
			    strcmp(fx->rx->reqs[i].delivery_id, id2) == 0);
	}
	assert_string_not_equal(fx->rx->reqs[0].delivery_id, fx->rx->reqs[1].delivery_id);
}

static void test_notify_is_faster_than_the_tick(void **state)
{
	struct fx *fx = *state;
	double t0;

	fx_run(fx, 5, 2);
	usleep(100 * 1000);   /* the thread found nothing and sleeps up to 1 s */
	fx_add(fx, "/ok", NULL);
	t0 = mono();
	deliver_notify(fx->d);
	fx_wait_drained(fx, 5);
	assert_true(mono() - t0 < 0.7);
	assert_int_equal(rx_count(fx->rx), 1);
}

static void test_per_host_concurrency(void **state)
{
	struct fx *fx = *state;

	for (int i = 0; i < 4; i++)
		fx_add(fx, "/slow", NULL);
	fx_run(fx, 5, 1);
	fx_wait_drained(fx, 6);
	assert_int_equal(rx_count(fx->rx), 4);
	assert_int_equal(fx->rx->max_active, 1);
	/* Keep-alive: one after the other over the same connection. */
	for (int i = 1; i < 4; i++)
		assert_int_equal(fx->rx->reqs[i].remote_port, fx->rx->reqs[0].remote_port);
}

static void test_parallel_up_to_the_limit(void **state)
{
	struct fx *fx = *state;

	for (int i = 0; i < 6; i++)
		fx_add(fx, "/slow", NULL);
	fx_run(fx, 5, 2);
	fx_wait_drained(fx, 6);
	assert_int_equal(rx_count(fx->rx), 6);
	assert_int_equal(fx->rx->max_active, 2);
}

static void test_stop_finishes_in_flight_request(void **state)
{
	struct fx *fx = *state;

	fx_add(fx, "/slow", NULL);
	fx_run(fx, 5, 2);
	fx_wait_active(fx, 1, 5);
	deliver_stop(fx->d, 5000);
	fx->d = NULL;
	assert_int_equal(fx_count(fx, 0), 0);
	assert_int_equal(fx_count(fx, 1), 0);
}

static void test_stop_is_prompt_and_keeps_the_entry(void **state)
{
	struct fx *fx = *state;
	struct outbox_delivery *claimed = NULL;
	char err[256] = "";
	struct outbox *ob;
	double t0;

	fx_add(fx, "/hang", NULL);
	fx_run(fx, 5, 2);
	fx_wait_active(fx, 1, 5);
	t0 = mono();
	deliver_stop(fx->d, 200);
	fx->d = NULL;
	assert_true(mono() - t0 < 1.5);

	/* The aborted attempt is not counted and the entry resumes next start. */
	ob = outbox_open(fx->dir, err, sizeof err);
	assert_non_null(ob);
	assert_int_equal(outbox_count_pending(ob), 1);
	assert_int_equal(outbox_release_leases(ob), 0);
	assert_int_equal(outbox_claim_due(ob, fx_dest(fx), 1e12, 10, &claimed), 1);
	assert_int_equal(claimed[0].attempts, 0);
	outbox_deliveries_free(claimed, 1);
	outbox_close(ob);
}


/* Requests the receiver saw for path so far. */
static int rx_count_path(struct rx *rx, const char *path)
{
	int n = 0;

	pthread_mutex_lock(&rx->mu);
	for (int i = 0; i < rx->n; i++)
		n += strcmp(rx->reqs[i].path, path) == 0;
	pthread_mutex_unlock(&rx->mu);
	return n;
}

/*
 * Isolation: a destination that accepts and never answers holds only its
 * own slots. Before claiming went per destination, the black hole's older
 * entries filled the one shared queue and the healthy entry waited for
 * their timeouts (3 s here).
 */
static void test_black_hole_does_not_delay_another_destination(void **state)
{
	struct fx *fx = *state;
	char url[128];
	double t0;

	snprintf(url, sizeof url, "http://localhost:%d/hang", fx->rx->port);
	for (int i = 0; i < 40; i++)
		fx_add_to(fx, url, "POST", NULL, NULL, "{}", 2, NULL);
	fx_run(fx, 0, 2);
	fx_wait_active(fx, 2, 5);
	t0 = mono();
	fx_add(fx, "/ok", NULL);
	deliver_notify(fx->d);
	while (rx_count_path(fx->rx, "/ok") == 0) {
		if (mono() - t0 > 5)
			fail_msg("the healthy destination waited for the black hole");
		usleep(5 * 1000);
	}
	assert_true(mono() - t0 < 1.0);
	/* The black hole has no more than its own limit in flight. */
	assert_int_equal(rx_count_path(fx->rx, "/hang"), 2);
}

/* The exported state of this receiver's destination, or -1. */
static int fx_dest_state(struct fx *fx)
{
	char *text = NULL, needle[128];
	size_t len = 0;
	const char *p;
	int state = -1;

	assert_int_equal(metrics_render(&text, &len), 0);
	snprintf(needle, sizeof needle, "egoi_router_destination_state{name=\"%s\"} ", fx_dest(fx));
	p = strstr(text, needle);
	if (p)
		state = atoi(p + strlen(needle));
	free(text);
	return state;
}

/*
 * A destination failing continuously is backed off as a whole: after
 * DELIVER_CIRCUIT_FAILURES failures the circuit opens and only single
 * probes go (without it, 10 entries retried on their own schedules over
 * 6 s make ~35 requests); it shows as open in the metrics; the first probe
 * that gets through closes it and the backlog goes at once.
 */
static void test_failing_destination_opens_circuit_then_recovers(void **state)
{
	struct fx *fx = *state;
	double t0, end;
	int during, seen_open = 0;

	atomic_store(&fx->rx->outage, 1);
	for (int i = 0; i < 10; i++)
		fx_add(fx, "/outage", NULL);
	fx_run(fx, 0, 2);
	t0 = mono();
	while (mono() - t0 < 6.0) {
		seen_open |= fx_dest_state(fx) == METRICS_DEST_OPEN;
		usleep(100 * 1000);
	}
	during = rx_count_path(fx->rx, "/outage");
	assert_true(seen_open);
	assert_true(during >= DELIVER_CIRCUIT_FAILURES);
	assert_true(during <= DELIVER_CIRCUIT_FAILURES + 2 + 4);   /* in flight + probes */
	assert_int_equal(fx_count(fx, 1), 0);

	atomic_store(&fx->rx->outage, 0);
	fx_wait_drained(fx, 15);
	assert_int_equal(fx_count(fx, 1), 0);
	end = mono() + 3;
	while (fx_dest_state(fx) != METRICS_DEST_CLOSED && mono() < end)
		usleep(50 * 1000);
	assert_int_equal(fx_dest_state(fx), METRICS_DEST_CLOSED);
}

static void test_start_rejects_bad_options(void **state)
{
	struct deliver_options opt = { .data_dir = "/tmp", .timeout_ms = 1000, .concurrency = 0 };
	char err[256] = "";

	(void)state;
	assert_null(deliver_start(&opt, err, sizeof err));
	assert_true(err[0] != '\0');
	deliver_stop(NULL, 0);
	deliver_notify(NULL);
}

/* End-to-end tests get a fresh data_dir and a cleared receiver each. */
#define E2E(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_success),
		cmocka_unit_test(test_policy_permanent_failures),
		cmocka_unit_test(test_policy_retryable),
		cmocka_unit_test(test_policy_attempt_limit),
		cmocka_unit_test(test_policy_age_limit),
		cmocka_unit_test(test_policy_full_jitter_doubling),
		cmocka_unit_test(test_policy_retry_after),
		cmocka_unit_test(test_policy_an_hour_outage_is_no_dead_letter),
		cmocka_unit_test(test_policy_backoff_cap_is_configurable),
		cmocka_unit_test(test_circuit_opens_probes_and_closes),
		cmocka_unit_test(test_circuit_open_time_follows_backoff_max),
		cmocka_unit_test(test_parse_retry_after),
		cmocka_unit_test(test_signature_matches_standard_webhooks_vector),
		E2E(test_signed_requests_carry_standard_webhooks_headers),
		E2E(test_reconfigure_applies_to_the_next_requests),
		cmocka_unit_test(test_start_rejects_bad_options),
		E2E(test_retry_keeps_id_body_and_headers),
		E2E(test_post_defaults_and_empty_body),
		E2E(test_bad_request_is_dead_letter),
		E2E(test_max_attempts_is_dead_letter),
		E2E(test_connection_refused_retries_then_dead),
		E2E(test_unsupported_url_is_dead_at_once),
		E2E(test_retry_after_is_honoured),
		E2E(test_leased_entries_resume_after_restart),
		E2E(test_notify_is_faster_than_the_tick),
		E2E(test_per_host_concurrency),
		E2E(test_parallel_up_to_the_limit),
		E2E(test_stop_finishes_in_flight_request),
		E2E(test_stop_is_prompt_and_keeps_the_entry),
		E2E(test_black_hole_does_not_delay_another_destination),
		E2E(test_failing_destination_opens_circuit_then_recovers),
	};
	int rc;

	log_setup(LOG_ERROR, 0);
	mg_init_library(0);
	rc = cmocka_run_group_tests(tests, rx_group_setup, rx_group_teardown);
	mg_exit_library();
	return rc;
}
