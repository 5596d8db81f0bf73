/*
 * test_http_guard.c — the intake's per-address guard (http_guard.c): the
 * settings `check` refuses, the token bucket (burst, Retry-After, refill,
 * exemption), the connection cap and allow_from applied from OpenSSL's
 * handshake callback on real loopback sockets, and a reload's settings
 * swapped in whole. Under civetweb, with an attack running,
 * the guard is proven end to end in tests/e2e/e2e_guard.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http_guard.h"
#include "http_watchdog.h"

static struct config base(void)
{
	struct config c;

	memset(&c, 0, sizeof c);
	c.max_conns_per_address = 2;
	return c;
}

static void test_check_refuses_what_run_cannot_do(void **state)
{
	struct config c = base();
	char err[256];

	(void)state;
	assert_int_equal(http_guard_check(&c, err, sizeof err), 0);
	c.allow_from = "10.0.0.0/8,::1";
	assert_int_equal(http_guard_check(&c, err, sizeof err), -1);
	assert_non_null(strstr(err, "allow_from"));
	assert_non_null(strstr(err, "IPv6"));
	c.allow_from = "10.0.0.0/8,192.0.2.7";
	assert_int_equal(http_guard_check(&c, err, sizeof err), 0);
	c.rate_limit_exempt = "2001:db8::/32";
	assert_int_equal(http_guard_check(&c, err, sizeof err), -1);
	c.rate_limit_exempt = NULL;
	static const char *const bad[] = { "0/s", "10", "10/m", "-1/s", "1000001/s", "x/s", "5/s " };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		c.rate_limit = (char *)bad[i];
		assert_int_equal(http_guard_check(&c, err, sizeof err), -1);
	}
	c.rate_limit = "1000000/s";
	assert_int_equal(http_guard_check(&c, err, sizeof err), 0);
}

static void test_rate_limit_burst_retry_after_and_refill(void **state)
{
	struct config c = base();
	char err[256];
	struct http_guard *g;
	long retry = 0;

	(void)state;
	c.rate_limit = "2/s";
	c.rate_limit_burst = 3;
	c.rate_limit_exempt = "192.0.2.0/24";
	g = http_guard_new(&c, err, sizeof err);
	assert_non_null(g);
	for (int i = 0; i < 3; i++)
		assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 1);
	assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 0);
	assert_int_equal(retry, 1);
	/* Another address has its own bucket; an exempt one has none. */
	assert_int_equal(http_guard_allow_request(g, "10.1.2.4", &retry), 1);
	for (int i = 0; i < 20; i++)
		assert_int_equal(http_guard_allow_request(g, "192.0.2.200", &retry), 1);
	{
		struct timespec ts = { 0, 600 * 1000000L };   /* 1.2 tokens come back */

		nanosleep(&ts, NULL);
	}
	assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 1);
	assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 0);
	http_guard_free(g);
}

/* Without rate_limit every request passes, and no entry is kept. */
static void test_no_rate_limit_allows_all(void **state)
{
	struct config c = base();
	char err[256];
	struct http_guard *g;
	long retry = 0;

	(void)state;
	g = http_guard_new(&c, err, sizeof err);
	assert_non_null(g);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 1);
	http_guard_free(g);
}

struct pair {
	int client, served;
	SSL *ssl;
};

static int listener(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A connection from src accepted and given to a server SSL; returns SSL_accept's result. */
static int open_pair(struct pair *p, int lfd, int port, const char *src, SSL_CTX *ctx)
{
	struct sockaddr_in a = { .sin_family = AF_INET };

	p->client = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, src, &a.sin_addr);
	assert_int_equal(bind(p->client, (struct sockaddr *)&a, sizeof a), 0);
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_int_equal(connect(p->client, (struct sockaddr *)&a, sizeof a), 0);
	p->served = accept(lfd, NULL, NULL);
	assert_true(p->served >= 0);
	fcntl(p->served, F_SETFL, O_NONBLOCK);   /* as civetweb's workers have it */
	p->ssl = SSL_new(ctx);
	assert_non_null(p->ssl);
	SSL_set_fd(p->ssl, p->served);
	return SSL_get_error(p->ssl, SSL_accept(p->ssl));
}

static void close_pair(struct pair *p)
{
	SSL_free(p->ssl);   /* the guard's count drops here */
	close(p->served);
	close(p->client);
}

/*
 * Cap 2: the third connection from one address is shut down at the start
 * of its handshake (SSL_accept fails at once instead of waiting for data);
 * another address is unaffected; freeing one SSL makes room again.
 */
static void test_connection_cap_at_handshake_start(void **state)
{
	struct config c = base();
	char err[256];
	struct http_guard *g;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct pair p[5];
	int lfd, port;

	(void)state;
	assert_non_null(ctx);
	g = http_guard_new(&c, err, sizeof err);
	assert_non_null(g);
	assert_int_equal(http_guard_install(g, ctx), 0);
	lfd = listener(&port);
	assert_int_equal(open_pair(&p[0], lfd, port, "127.0.0.2", ctx), SSL_ERROR_WANT_READ);
	assert_int_equal(open_pair(&p[1], lfd, port, "127.0.0.2", ctx), SSL_ERROR_WANT_READ);
	assert_int_equal(http_guard_conn_was_cut(), 0);
	assert_int_not_equal(open_pair(&p[2], lfd, port, "127.0.0.2", ctx), SSL_ERROR_WANT_READ);
	assert_int_equal(http_guard_conn_was_cut(), 1);
	{
		char ch;   /* the client sees the end of the stream */

		assert_int_equal(read(p[2].client, &ch, 1), 0);
	}
	assert_int_equal(open_pair(&p[3], lfd, port, "127.0.0.3", ctx), SSL_ERROR_WANT_READ);
	close_pair(&p[0]);
	close_pair(&p[2]);
	assert_int_equal(open_pair(&p[4], lfd, port, "127.0.0.2", ctx), SSL_ERROR_WANT_READ);
	close_pair(&p[1]);
	close_pair(&p[3]);
	close_pair(&p[4]);
	close(lfd);
	SSL_CTX_free(ctx);
	http_guard_free(g);
}

/*
 * A reload's new settings, swapped in whole: a rate limit appears (and the
 * old bucket-less address gets one), allow_from narrows both the handshake
 * and the per-request check, the cap drops to 1 and counts the connection
 * opened before, and a bad block is refused before anything changes.
 */
static void test_update_swaps_settings_for_new_connections(void **state)
{
	struct config c = base();
	char err[256];
	struct http_guard *g;
	struct http_guard_params *p;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct pair a, b, x;
	int lfd, port;
	long retry = 0;

	(void)state;
	assert_non_null(ctx);
	c.max_conns_per_address = 0;   /* no cap, no limit, any address */
	g = http_guard_new(&c, err, sizeof err);
	assert_non_null(g);
	assert_int_equal(http_guard_install(g, ctx), 0);
	lfd = listener(&port);
	assert_int_equal(open_pair(&a, lfd, port, "127.0.0.2", ctx), SSL_ERROR_WANT_READ);
	for (int i = 0; i < 5; i++)
		assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 1);
	assert_int_equal(http_guard_allow_address(g, "10.9.9.9"), 1);

	/* Refused whole: nothing of it applies. */
	c.rate_limit = "5/m";
	assert_null(http_guard_params_new(&c, err, sizeof err));
	assert_non_null(strstr(err, "rate_limit"));

	c.rate_limit = "1/s";
	c.rate_limit_burst = 1;
	c.max_conns_per_address = 1;
	c.allow_from = "127.0.0.2,10.0.0.0/8";
	p = http_guard_params_new(&c, err, sizeof err);
	assert_non_null(p);
	http_guard_update(g, p);
	assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 1);
	assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 0);
	assert_int_equal(http_guard_allow_address(g, "10.9.9.9"), 1);
	assert_int_equal(http_guard_allow_address(g, "192.0.2.1"), 0);
	/* The connection from before counts against the new cap of 1. */
	assert_int_not_equal(open_pair(&b, lfd, port, "127.0.0.2", ctx), SSL_ERROR_WANT_READ);
	assert_int_equal(http_guard_conn_was_cut(), 1);
	/* Outside allow_from: cut at the handshake start. */
	assert_int_not_equal(open_pair(&x, lfd, port, "127.0.0.3", ctx), SSL_ERROR_WANT_READ);
	assert_int_equal(http_guard_conn_was_cut(), 1);
	{
		char ch;

		assert_int_equal(read(x.client, &ch, 1), 0);
	}
	close_pair(&x);
	close_pair(&b);

	/* Back to no allowlist and no rate: every address, every request. */
	c.allow_from = NULL;
	c.rate_limit = NULL;
	c.max_conns_per_address = 2;
	p = http_guard_params_new(&c, err, sizeof err);
	assert_non_null(p);
	http_guard_update(g, p);
	assert_int_equal(open_pair(&x, lfd, port, "127.0.0.3", ctx), SSL_ERROR_WANT_READ);
	assert_int_equal(open_pair(&b, lfd, port, "127.0.0.2", ctx), SSL_ERROR_WANT_READ);
	assert_int_equal(http_guard_allow_address(g, "192.0.2.1"), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(http_guard_allow_request(g, "10.1.2.3", &retry), 1);
	close_pair(&a);
	close_pair(&b);
	close_pair(&x);
	close(lfd);
	SSL_CTX_free(ctx);
	http_guard_update(NULL, NULL);   /* no guard: nothing to do, nothing leaks */
	http_guard_free(g);
}

/* Pieces small enough that the watchdog's byte count keeps up with the rate. */
static void test_read_piece_follows_min_rate(void **state)
{
	(void)state;
	assert_int_equal(http_watchdog_read_piece(0), 16384);
	assert_int_equal(http_watchdog_read_piece(32 * 1024), 16384);
	assert_int_equal(http_watchdog_read_piece(4096), 2048);
	assert_int_equal(http_watchdog_read_piece(100), 512);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_refuses_what_run_cannot_do),
		cmocka_unit_test(test_rate_limit_burst_retry_after_and_refill),
		cmocka_unit_test(test_no_rate_limit_allows_all),
		cmocka_unit_test(test_connection_cap_at_handshake_start),
		cmocka_unit_test(test_update_swaps_settings_for_new_connections),
		cmocka_unit_test(test_read_piece_follows_min_rate),
	};
	signal(SIGPIPE, SIG_IGN);   /* as civetweb does: the alert to a cut peer fails */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
