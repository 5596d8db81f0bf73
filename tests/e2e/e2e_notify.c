/*
 * e2e_notify.c — the daemon under a Type=notify supervisor: started with
 * NOTIFY_SOCKET naming a unix datagram socket we bind (as systemd does),
 * it sends READY=1 only once its HTTPS port answers, RELOADING=1 (with
 * MONOTONIC_USEC=) then READY=1 around each SIGHUP, whether the new rules
 * load or are refused, and STOPPING=1 when SIGTERM begins the stop.
 *
 * Threads: the scenario's thread, and a listener thread that reads the
 * socket and, on the first READY=1, asks /healthz at once (harness_request
 * may be called from another thread, harness.h). The listener's state is
 * on the heap and left there when an assert ends the scenario early, since
 * its thread may still be reading.
 */
#include "e2e/e2e.h"

#include <libgen.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define NOTIFY_MAX 16

struct notify_listener {
	struct e2e *t;
	int fd;
	pthread_t thread;
	pthread_mutex_t lock;
	char msgs[NOTIFY_MAX][256];       /* the datagrams, in order of arrival */
	int n;                            /* how many, under lock */
	long healthz_at_ready;            /* /healthz status right after the first READY=1 */
};

/* Reads datagrams until STOPPING=1, NOTIFY_MAX of them, or 20 s of silence. */
static void *notify_listen(void *arg)
{
	struct notify_listener *l = arg;
	char buf[256];

	for (;;) {
		ssize_t got = recv(l->fd, buf, sizeof buf - 1, 0);
		int first_ready;

		if (got <= 0)  /* timeout, or shutdown() by the scenario */
			break;
		buf[got] = '\0';
		pthread_mutex_lock(&l->lock);
		first_ready = strncmp(buf, "READY=1", 7) == 0 && l->healthz_at_ready < 0;
		pthread_mutex_unlock(&l->lock);
		if (first_ready) {
			struct harness_response r;
			long status = harness_request(&l->t->h, "GET", "/healthz", NULL, NULL, NULL,
						      0, 0, &r) == 0 ? r.status : 0;
			harness_response_free(&r);
			pthread_mutex_lock(&l->lock);
			l->healthz_at_ready = status;
			pthread_mutex_unlock(&l->lock);
		}
		pthread_mutex_lock(&l->lock);
		snprintf(l->msgs[l->n], sizeof l->msgs[l->n], "%s", buf);
		l->n++;
		pthread_mutex_unlock(&l->lock);
		if (strncmp(buf, "STOPPING=1", 10) == 0 || l->n == NOTIFY_MAX)
			break;
	}
	return NULL;
}

/* Messages received so far. */
static int notify_count(struct notify_listener *l)
{
	int n;

	pthread_mutex_lock(&l->lock);
	n = l->n;
	pthread_mutex_unlock(&l->lock);
	return n;
}

/* Waits (<= 10 s) until at least n messages arrived; 0 or -1. */
static int notify_wait(struct notify_listener *l, int n)
{
	for (long waited = 0; waited <= 10000; waited += 20) {
		if (notify_count(l) >= n)
			return 0;
		harness_sleep_ms(20);
	}
	fprintf(stderr, "[e2e] %d notify messages, waited for %d\n", notify_count(l), n);
	return -1;
}

/* Binds dir/notify and starts the listener thread. */
static struct notify_listener *notify_listener_start(struct e2e *t, char *path, size_t size)
{
	struct notify_listener *l = calloc(1, sizeof *l);
	struct sockaddr_un sa;
	struct timeval tv = { .tv_sec = 20 };

	assert_non_null(l);
	l->t = t;
	l->healthz_at_ready = -1;
	assert_int_equal(pthread_mutex_init(&l->lock, NULL), 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	assert_true((size_t)snprintf(path, size, "%s/notify", t->h.dir) < sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);  /* a socket file left by an earlier listener */
	l->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(l->fd >= 0);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
	assert_int_equal(pthread_create(&l->thread, NULL, notify_listen, l), 0);
	return l;
}

/* "RELOADING=1\nMONOTONIC_USEC=<digits>\n..." */
static int notify_is_reloading(const char *m)
{
	const char *p = m + 27;

	if (strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27) != 0)
		return 0;
	while (*p >= '0' && *p <= '9')
		p++;
	return p > m + 27 && (*p == '\n' || *p == '\0');
}

static void notify_ready_reload_stopping(void **state)
{
	struct e2e *t = *state;
	struct notify_listener *l;
	char path[HARNESS_PATH + 16], status[64];

	l = notify_listener_start(t, path, sizeof path);
	/* The harness hands the daemon our environment (harness.c). */
	assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
	snprintf(t->h.extra, sizeof t->h.extra, "%s", "");
	assert_int_equal(harness_write_rules(&t->h, "function route(e, m) end\n", NULL), 0);
	int started = harness_start(&t->h);
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(started, 0);

	/* Start-up: one message, READY=1, sent once /healthz answers. */
	assert_int_equal(notify_wait(l, 1), 0);
	for (long waited = 0; waited <= 10000; waited += 20) {
		pthread_mutex_lock(&l->lock);
		long st = l->healthz_at_ready;
		pthread_mutex_unlock(&l->lock);
		if (st >= 0)
			break;
		harness_sleep_ms(20);
	}
	snprintf(status, sizeof status, "READY=1\nSTATUS=listening on 127.0.0.1:%ds", t->h.port);
	assert_string_equal(l->msgs[0], status);
	assert_int_equal(l->healthz_at_ready, 200);

	/* A reload that loads, then one that is refused: each is bracketed. */
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	assert_int_equal(notify_wait(l, 3), 0);
	assert_true(notify_is_reloading(l->msgs[1]));
	assert_string_equal(l->msgs[2], status);
	assert_int_equal(harness_write_rules(&t->h, "function route(e, m)\n", NULL), 0);
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	assert_int_equal(notify_wait(l, 5), 0);
	assert_true(notify_is_reloading(l->msgs[3]));
	assert_string_equal(l->msgs[4], status);
	char *log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "reload refused"));
	free(log);

	/* SIGTERM: STOPPING=1, the last message. */
	e2e_stop_ok(t);
	assert_int_equal(pthread_join(l->thread, NULL), 0);
	assert_int_equal(l->n, 6);
	assert_true(strncmp(l->msgs[5], "STOPPING=1\n", 11) == 0);
	close(l->fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
	e2e_pass(t);
}

/* Starts the daemon with NOTIFY_SOCKET = path, as run_as_user = nobody. */
static void notify_boot_as_nobody(struct e2e *t, const char *path)
{
	char parent[HARNESS_PATH];

	/* The suite's and this test's dirs are 0700 (mkdtemp): nobody must
	 * reach the config, the rules and the socket after the drop. */
	snprintf(parent, sizeof parent, "%s", t->h.dir);
	assert_int_equal(chmod(dirname(parent), 0755), 0);
	assert_int_equal(chmod(t->h.dir, 0755), 0);
	snprintf(t->h.extra, sizeof t->h.extra, "run_as_user = nobody\n");
	assert_int_equal(harness_write_rules(&t->h, "function route(e, m) end\n", NULL), 0);
	assert_int_equal(chmod(t->h.rules, 0644), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
	int started = harness_start(&t->h);
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(started, 0);
}

static void notify_after_drop_to_run_as_user(void **state)
{
	struct e2e *t = *state;
	struct notify_listener *l;
	struct passwd *pw = getpwnam("nobody");
	char path[HARNESS_PATH + 16];

	if (geteuid() != 0 || pw == NULL || pw->pw_uid == 0) {
		fprintf(stderr, "[e2e] skipped: needs root and the user nobody\n");
		e2e_pass(t);
		return;
	}
	l = notify_listener_start(t, path, sizeof path);
	assert_int_equal(chmod(path, 0666), 0);
	notify_boot_as_nobody(t, path);
	assert_int_equal(notify_wait(l, 1), 0);
	assert_true(strncmp(l->msgs[0], "READY=1\n", 8) == 0);
	e2e_stop_ok(t);
	assert_int_equal(pthread_join(l->thread, NULL), 0);
	assert_int_equal(l->n, 2);
	assert_true(strncmp(l->msgs[1], "STOPPING=1\n", 11) == 0);
	close(l->fd);
	pthread_mutex_destroy(&l->lock);
	free(l);

	/* The same socket, writable by root alone: nothing arrives, the daemon
	 * says why and serves. */
	l = notify_listener_start(t, path, sizeof path);
	assert_int_equal(chmod(path, 0600), 0);
	notify_boot_as_nobody(t, path);
	struct harness_response r;
	assert_int_equal(harness_request(&t->h, "GET", "/healthz", NULL, NULL, NULL, 0, 0, &r), 0);
	assert_int_equal(r.status, 200);
	harness_response_free(&r);
	char *log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	assert_non_null(strstr(log, "systemd notify: cannot send READY=1: Permission denied"));
	free(log);
	e2e_stop_ok(t);
	assert_int_equal(notify_count(l), 0);
	shutdown(l->fd, SHUT_RDWR);
	assert_int_equal(pthread_join(l->thread, NULL), 0);
	close(l->fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
	e2e_pass(t);
}

/* Started without NOTIFY_SOCKET (by hand, by this harness): nothing is
 * sent and nothing is logged about it. */
static void notify_silent_without_socket(void **state)
{
	struct e2e *t = *state;

	unsetenv("NOTIFY_SOCKET");
	e2e_boot(t, "function route(e, m) end\n", NULL);
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	e2e_stop_ok(t);
	char *log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	assert_null(strstr(log, "systemd notify"));
	free(log);
	e2e_pass(t);
}

const struct CMUnitTest e2e_notify_tests[] = {
	E2E_TEST(notify_ready_reload_stopping),
	E2E_TEST(notify_after_drop_to_run_as_user),
	E2E_TEST(notify_silent_without_socket),
};
const size_t e2e_notify_count = sizeof(e2e_notify_tests) / sizeof(e2e_notify_tests[0]);
