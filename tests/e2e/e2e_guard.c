/*
 * e2e_guard.c — scenarios for the intake's protections against clients
 * that hold connections (idle, trickling handshakes, slow bodies), send
 * too many requests, come from outside allow_from, or frame their request
 * ambiguously. Attacks come from 127.0.0.2 (loopback, a distinct source
 * address), the legitimate client from 127.0.0.1; every loop is bounded.
 */
#include "e2e/e2e.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

static const char guard_lua[] = "function route(e, m) write('seen.jsonl') end\n";
static const char guard_batch[] = "{\"events\":[{\"action\":\"email_open\"}]}";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A TCP socket from src to 127.0.0.1:port; nonblock: connect in progress. -1 on error. */
static int tcp_from(const char *src, int port, int nonblock)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	int one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	inet_pton(AF_INET, src, &a.sin_addr);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
		goto fail;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
		goto fail;
	return fd;
fail:
	close(fd);
	return -1;
}

/* --- a raw TLS client: requests byte for byte as written here --- */

struct raw_tls {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static int raw_open(struct raw_tls *r, const char *src, int port)
{
	memset(r, 0, sizeof *r);
	r->fd = tcp_from(src, port, 0);
	r->ctx = SSL_CTX_new(TLS_client_method());
	if (r->fd < 0 || !r->ctx)
		return -1;
	r->ssl = SSL_new(r->ctx);
	if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1 || SSL_connect(r->ssl) != 1)
		return -1;
	return 0;
}

static void raw_close(struct raw_tls *r)
{
	if (r->ssl)
		SSL_free(r->ssl);
	if (r->ctx)
		SSL_CTX_free(r->ctx);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof *r);
	r->fd = -1;
}

static int raw_send(struct raw_tls *r, const char *data, size_t len)
{
	return len == 0 || SSL_write(r->ssl, data, (int)len) == (int)len ? 0 : -1;
}

/* Reads the answer until the peer closes or timeout_ms pass; its status, 0 if none. */
static long raw_answer(struct raw_tls *r, long timeout_ms, char *buf, size_t cap)
{
	double end = now_s() + (double)timeout_ms / 1000;
	size_t len = 0;
	long status = 0;

	buf[0] = '\0';
	while (len + 1 < cap && now_s() < end) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		int n;

		if (SSL_pending(r->ssl) == 0 && poll(&p, 1, 100) <= 0)
			continue;
		n = SSL_read(r->ssl, buf + len, (int)(cap - 1 - len));
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		{
			/* A whole answer (head and Content-Length bytes): done. */
			const char *head = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");
			size_t want;

			if (head && cl && cl < head && sscanf(cl + 16, "%zu", &want) == 1 &&
			    len >= (size_t)(head + 4 - buf) + want)
				break;
		}
	}
	if (sscanf(buf, "HTTP/1.1 %ld", &status) != 1)
		status = 0;
	return status;
}

/* --- item: 1,000 idle or trickling connections from one address --- */

#define FLOOD_CONNS 1000
#define FLOOD_MAX_S 30.0

struct flood {
	int port;
	atomic_int stop;
	long reopened, cut;
	int held;                  /* open at the end */
	pthread_t thread;
};

/* A TLS record header announcing a 512-byte ClientHello, then its start:
 * the server must wait for the rest, which comes a byte a second. */
static const unsigned char flood_hello[] = {
	0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	struct pollfd *p = calloc(FLOOD_CONNS, sizeof *p);
	size_t *sent = calloc(FLOOD_CONNS, sizeof *sent);
	double start = now_s(), last_byte = start;

	if (!p || !sent)
		goto out;
	for (int i = 0; i < FLOOD_CONNS; i++) {
		p[i].fd = tcp_from("127.0.0.2", f->port, 1);
		p[i].events = POLLIN;
	}
	while (!atomic_load(&f->stop) && now_s() - start < FLOOD_MAX_S) {
		int reopen = 0;

		poll(p, FLOOD_CONNS, 100);
		for (int i = 0; i < FLOOD_CONNS; i++) {
			char junk[256];

			if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    read(p[i].fd, junk, sizeof junk) <= 0 && errno != EAGAIN) {
				close(p[i].fd);
				p[i].fd = -1;
				f->cut++;
			}
			p[i].revents = 0;
			/* Connections the server closed are made again, a hundred per
			 * pass at most, so that a thousand stay open or in the queue. */
			if (p[i].fd < 0 && reopen < 100) {
				p[i].fd = tcp_from("127.0.0.2", f->port, 1);
				sent[i] = 0;
				reopen++;
				f->reopened++;
			}
		}
		if (now_s() - last_byte >= 1.0) {
			last_byte = now_s();
			for (int i = 1; i < FLOOD_CONNS; i += 2)   /* odd ones trickle a ClientHello */
				if (p[i].fd >= 0 && sent[i] < sizeof flood_hello &&
				    send(p[i].fd, flood_hello + sent[i], 1, MSG_NOSIGNAL) == 1)
					sent[i]++;
		}
	}
out:
	for (int i = 0; p && i < FLOOD_CONNS; i++)
		if (p[i].fd >= 0) {
			f->held++;
			close(p[i].fd);
		}
	free(p);
	free(sent);
	return NULL;
}

/* The daemon's resident memory in KiB (for the log of the run), -1 if unknown. */
static long daemon_rss_kib(const struct harness *h)
{
	char path[64], *text, *line;
	long kib = -1;

	snprintf(path, sizeof path, "/proc/%d/status", (int)h->pid);
	text = harness_read_file(path, NULL);
	if (text && (line = strstr(text, "VmRSS:")))
		kib = strtol(line + 6, NULL, 10);
	free(text);
	return kib;
}

/* Enough descriptors for the flood here and in the daemon (which inherits them). */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 8192) {
		rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * With the default config (64 threads), a thousand connections from
 * 127.0.0.2 that stay idle or trickle a ClientHello a byte a second do not
 * delay a batch POSTed from 127.0.0.1 beyond 1 s.
 */
static void connection_flood_does_not_delay_a_post(void **state)
{
	struct e2e *t = *state;
	struct flood f = { 0 };
	double worst = 0, cap_refused = -1;
	long rss_idle, rss_flood;

	raise_nofile();
	snprintf(t->h.omit, sizeof t->h.omit, "threads");
	/* the flood comes from 127.0.0.1, exempt by default */
	e2e_boot(t, guard_lua, "rate_limit_exempt = none\n");
	rss_idle = daemon_rss_kib(&t->h);
	f.port = t->h.port;
	atomic_init(&f.stop, 0);
	assert_int_equal(pthread_create(&f.thread, NULL, flood_main, &f), 0);
	harness_sleep_ms(1500);   /* the flood is up: every worker would be taken */
	for (int i = 0; i < 6; i++) {
		struct harness_response resp;
		double t0 = now_s(), took;

		assert_int_equal(harness_post(&t->h, guard_batch, strlen(guard_batch), &resp), 0);
		took = now_s() - t0;
		fprintf(stderr, "[e2e] POST under the flood: %ld in %.3f s\n", resp.status, took);
		assert_int_equal(resp.status, 200);
		harness_response_free(&resp);
		if (took > worst)
			worst = took;
		harness_sleep_ms(700);
	}
	harness_metric(&t->h, "egoi_router_refused_total{reason=\"connection_cap\"}", &cap_refused);
	rss_flood = daemon_rss_kib(&t->h);
	atomic_store(&f.stop, 1);
	pthread_join(f.thread, NULL);
	fprintf(stderr, "[e2e] flood: %ld connections cut by the server and made again, %d "
		"open at the end; %.0f refused by the cap; slowest POST %.3f s\n",
		f.cut, f.held, cap_refused, worst);
	fprintf(stderr, "[e2e] daemon RSS: %ld KiB after start, %ld KiB under the flood\n",
		rss_idle, rss_flood);
	assert_true(worst <= 1.0);
	assert_true(cap_refused > 0);
	e2e_stop_ok(t);
	{
		/* Refusals are logged once per 10 s with a count, not one by one. */
		char *log = harness_read_file(t->h.log, NULL);
		int lines = 0;

		assert_non_null(log);
		for (char *s = log; (s = strstr(s, "refused: over max_connections_per_address")); s++)
			lines++;
		assert_true(lines >= 1 && lines <= 3);
		free(log);
	}
	e2e_pass(t);
}

/* --- item: slow bodies from a token holder --- */

#define SLOW_CONNS 8

struct slow_conn {
	int port;
	const char *token;
	long status;
	double secs;
	pthread_t thread;
};

/* Declares 10M, then sends a byte every 3 s until answered (40 s at most). */
static void *slow_main(void *arg)
{
	struct slow_conn *c = arg;
	struct raw_tls r;
	char head[512], buf[1024];
	double t0 = now_s();

	if (raw_open(&r, "127.0.0.1", c->port) < 0)
		goto out;
	snprintf(head, sizeof head,
		 "POST /hooks/egoi HTTP/1.1\r\nHost: x\r\nX-Router-Token: %s\r\n"
		 "Content-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{",
		 c->token);
	if (raw_send(&r, head, strlen(head)) < 0)
		goto out;
	while (now_s() - t0 < 40) {
		struct pollfd p = { .fd = r.fd, .events = POLLIN };

		if (poll(&p, 1, 3000) > 0) {
			c->status = raw_answer(&r, 2000, buf, sizeof buf);
			break;
		}
		if (raw_send(&r, " ", 1) < 0)
			break;
	}
out:
	c->secs = now_s() - t0;
	raw_close(&r);
	return NULL;
}

/*
 * Eight token holders trickling a byte every 3 s with Content-Length: 10M
 * (the body deadline alone would let them hold every worker for 170 s):
 * min_body_rate (default 32K/s after 2 s) answers each 408 within seconds.
 */
static void slow_bodies_get_408_at_min_body_rate(void **state)
{
	struct e2e *t = *state;
	struct slow_conn c[SLOW_CONNS];
	double worst = 0, counted = 0;

	e2e_boot(t, guard_lua, NULL);   /* harness default: threads 8, one per slow client */
	for (int i = 0; i < SLOW_CONNS; i++) {
		c[i] = (struct slow_conn){ .port = t->h.port, .token = t->h.token };
		assert_int_equal(pthread_create(&c[i].thread, NULL, slow_main, &c[i]), 0);
	}
	for (int i = 0; i < SLOW_CONNS; i++) {
		pthread_join(c[i].thread, NULL);
		fprintf(stderr, "[e2e] slow body %d: %ld after %.1f s\n", i, c[i].status, c[i].secs);
	}
	for (int i = 0; i < SLOW_CONNS; i++) {
		assert_int_equal(c[i].status, 408);
		if (c[i].secs > worst)
			worst = c[i].secs;
	}
	/* 2 s of grace, the watchdog's 0.5 s pass, up to 3 s until the client
	 * looks: about 5.5 s; the deadline alone would have been 170 s. */
	assert_true(worst < 12.0);
	assert_int_equal(harness_metric(&t->h, "egoi_router_refused_total{reason=\"slow_body\"}",
					&counted), 0);
	assert_true(counted >= SLOW_CONNS);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* --- item: request rate limit per address --- */

static long raw_post(struct e2e *t, const char *extra_headers, const char *body, char *buf,
		     size_t cap)
{
	struct raw_tls r;
	char head[1024];
	long status = 0;

	if (raw_open(&r, "127.0.0.1", t->h.port) == 0) {
		snprintf(head, sizeof head,
			 "POST /hooks/egoi HTTP/1.1\r\nHost: x\r\nX-Router-Token: %s\r\n"
			 "Content-Type: application/json\r\n%s\r\n",
			 t->h.token, extra_headers);
		if (raw_send(&r, head, strlen(head)) == 0 && raw_send(&r, body, strlen(body)) == 0)
			status = raw_answer(&r, 5000, buf, cap);
	}
	raw_close(&r);
	return status;
}

/* rate_limit = 2/s with a burst of 3: the fourth request at once gets 429
 * with Retry-After, counted; an exempt address is never limited. */
static void rate_limit_answers_429_with_retry_after(void **state)
{
	struct e2e *t = *state;
	char buf[2048], cl[64];
	int ok = 0;
	double limited = 0, code429 = 0;

	e2e_boot(t, guard_lua, "rate_limit = 2/s\nrate_limit_burst = 3\nrate_limit_exempt = none\n");
	snprintf(cl, sizeof cl, "Content-Length: %zu\r\nConnection: close\r\n", strlen(guard_batch));
	for (int i = 0; i < 3; i++)
		ok += raw_post(t, cl, guard_batch, buf, sizeof buf) == 200;
	assert_int_equal(ok, 3);
	assert_int_equal(raw_post(t, cl, guard_batch, buf, sizeof buf), 429);
	assert_non_null(strstr(buf, "\r\nRetry-After: 1\r\n"));
	assert_int_equal(harness_metric(&t->h, "egoi_router_refused_total{reason=\"rate_limit\"}",
					&limited), 0);
	assert_true(limited >= 1);
	assert_int_equal(harness_metric(&t->h, "egoi_router_requests_total{code=\"429\"}",
					&code429), 0);
	assert_true(code429 >= 1);
	harness_sleep_ms(1100);   /* two tokens again */
	assert_int_equal(raw_post(t, cl, guard_batch, buf, sizeof buf), 200);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void rate_limit_exempt_address_is_not_limited(void **state)
{
	struct e2e *t = *state;
	char buf[2048], cl[64];

	/* listed, and (second run) loopback by default */
	static const char *const confs[] = {
		"rate_limit = 1/s\nrate_limit_burst = 1\nrate_limit_exempt = 10.0.0.0/8, 127.0.0.0/8\n",
		"rate_limit = 1/s\nrate_limit_burst = 1\n",
	};

	snprintf(cl, sizeof cl, "Content-Length: %zu\r\nConnection: close\r\n", strlen(guard_batch));
	for (size_t c = 0; c < sizeof confs / sizeof confs[0]; c++) {
		e2e_boot(t, guard_lua, confs[c]);
		for (int i = 0; i < 6; i++)
			assert_int_equal(raw_post(t, cl, guard_batch, buf, sizeof buf), 200);
		e2e_stop_ok(t);
	}
	e2e_pass(t);
}

/* --- item: allow_from --- */

/* 40 connections from outside allow_from: all refused and counted, one
 * log line for them (plus the count at stop), not forty. */
static void allow_from_refusals_are_logged_rate_limited(void **state)
{
	struct e2e *t = *state;
	double refused = 0;
	char *log;
	int lines = 0;

	e2e_boot(t, guard_lua, "allow_from = 127.0.0.1\n");
	for (int i = 0; i < 40; i++) {
		int fd = tcp_from("127.0.0.2", t->h.port, 0);
		char c;

		assert_true(fd >= 0);
		{
			struct pollfd p = { .fd = fd, .events = POLLIN };

			assert_int_equal(poll(&p, 1, 5000), 1);   /* civetweb closes it */
		}
		assert_true(read(fd, &c, 1) <= 0);
		close(fd);
	}
	harness_sleep_ms(200);
	assert_int_equal(harness_metric(&t->h, "egoi_router_refused_total{reason=\"allow_from\"}",
					&refused), 0);
	assert_int_equal((long)refused, 40);
	e2e_stop_ok(t);
	log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	for (char *s = log; (s = strstr(s, "127.0.0.2")); s++)
		lines++;
	assert_true(lines >= 1 && lines <= 3);
	assert_non_null(strstr(log, "refused: not in allow_from (repeated 39 times)"));
	free(log);
	e2e_pass(t);
}

/* `check` refuses what `run` would: IPv6 in allow_from (this civetweb has
 * no IPv6: "Failed to setup access control list"), a bad rate_limit. */
static void check_refuses_ipv6_allow_from_and_bad_rate_limit(void **state)
{
	struct e2e *t = *state;
	const char *argv[] = { harness_bin(), "check", "-c", t->h.conf, NULL };
	static const char *const bad[][2] = {
		{ "allow_from = 127.0.0.1, ::1\n", "IPv6" },
		{ "allow_from = 2001:db8::/32\n", "IPv6" },
		{ "rate_limit_exempt = ::1\n", "IPv6" },
		{ "rate_limit = 5/m\n", "rate_limit" },
		{ "rate_limit = 0/s\n", "rate_limit" },
	};

	assert_int_equal(harness_write_rules(&t->h, guard_lua, NULL), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *out = NULL, *err = NULL;

		snprintf(t->h.extra, sizeof t->h.extra, "%s", bad[i][0]);
		assert_int_equal(harness_write_config(&t->h), 0);
		assert_int_equal(harness_run(&t->h, argv, NULL, 10000, &out, &err), 1);
		assert_non_null(err);
		if (!strstr(err, bad[i][1]))
			fprintf(stderr, "[e2e] want \"%s\" in: %s\n", bad[i][1], err);
		assert_non_null(strstr(err, bad[i][1]));
		free(out);
		free(err);
	}
	snprintf(t->h.extra, sizeof t->h.extra, "allow_from = 127.0.0.1, 10.0.0.0/8\n"
		 "rate_limit = 50/s\nrate_limit_exempt = 192.0.2.0/24\n");
	assert_int_equal(harness_write_config(&t->h), 0);
	assert_int_equal(harness_run(&t->h, argv, NULL, 10000, NULL, NULL), 0);
	e2e_pass(t);
}

/* --- item: framing --- */

/* Two Content-Length fields, "29x", "+29", or Content-Length beside
 * Transfer-Encoding: 400 before any body is read, nothing committed. */
static void ambiguous_content_length_gets_400(void **state)
{
	struct e2e *t = *state;
	char buf[2048], good[96], path[HARNESS_PATH + 16];
	size_t n = strlen(guard_batch);
	static const char *const cases[] = {
		"Content-Length: 36\r\nContent-Length: 36\r\n",
		"Content-Length: 36x\r\n",
		"Content-Length: +36\r\n",
		"Content-Length: 36\r\nTransfer-Encoding: chunked\r\n",
	};
	double framing = 0;

	assert_int_equal(n, 36);
	e2e_boot(t, guard_lua, NULL);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		long status = raw_post(t, cases[i], guard_batch, buf, sizeof buf);

		if (status != 400)
			fprintf(stderr, "[e2e] case %zu (%s): %ld\n", i, cases[i], status);
		assert_int_equal(status, 400);
		assert_non_null(strstr(buf, "Content-Length"));
	}
	assert_int_equal(harness_metric(&t->h, "egoi_router_refused_total{reason=\"framing\"}",
					&framing), 0);
	assert_int_equal((long)framing, 4);
	snprintf(path, sizeof path, "%s/seen.jsonl", t->h.output_dir);
	assert_int_equal(access(path, F_OK), -1);
	/* The same request, framed once and plainly, is a batch. */
	snprintf(good, sizeof good, "Content-Length: %zu\r\n", n);
	assert_int_equal(raw_post(t, good, guard_batch, buf, sizeof buf), 200);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_guard_tests[] = {
	E2E_TEST(connection_flood_does_not_delay_a_post),
	E2E_TEST(slow_bodies_get_408_at_min_body_rate),
	E2E_TEST(rate_limit_answers_429_with_retry_after),
	E2E_TEST(rate_limit_exempt_address_is_not_limited),
	E2E_TEST(allow_from_refusals_are_logged_rate_limited),
	E2E_TEST(check_refuses_ipv6_allow_from_and_bad_rate_limit),
	E2E_TEST(ambiguous_content_length_gets_400),
};
const size_t e2e_guard_count = sizeof(e2e_guard_tests) / sizeof(e2e_guard_tests[0]);
