/*
 * test_http_drain.c — the intake's drain (http_drain.c): the gate between
 * handlers and the drainer, its bounded wait, and closing listening
 * sockets in place. The shutdown sequence as a whole (real civetweb, TLS,
 * SIGTERM) is proven end to end in tests/e2e/e2e_lifecycle.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_drain.h"

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void test_gate_refuses_after_begin(void **state)
{
	struct http_drain d;

	(void)state;
	assert_int_equal(http_drain_init(&d), 0);
	assert_int_equal(http_drain_enter(&d), 1);
	assert_false(http_drain_stopping(&d));
	assert_int_equal(http_drain_begin(&d), 1);
	assert_true(http_drain_stopping(&d));
	assert_int_equal(http_drain_enter(&d), 0);          /* refused, not counted */
	assert_int_equal(atomic_load(&d.inflight), 1);
	http_drain_leave(&d);
	assert_int_equal(http_drain_wait(&d, 5.0), 0);
	http_drain_free(&d);
	http_drain_free(&d);                                /* twice is harmless */
}

static void test_wait_gives_up_after_grace(void **state)
{
	struct http_drain d;

	(void)state;
	assert_int_equal(http_drain_init(&d), 0);
	assert_int_equal(http_drain_enter(&d), 1);
	assert_int_equal(http_drain_enter(&d), 1);
	assert_int_equal(http_drain_begin(&d), 2);
	assert_int_equal(http_drain_wait(&d, 0.2), 2);
	http_drain_leave(&d);
	http_drain_leave(&d);
	http_drain_free(&d);
}

struct late_leaver {
	struct http_drain *d;
	atomic_int left;
};

static void *late_leave_main(void *arg)
{
	struct late_leaver *l = arg;

	sleep_ms(100);
	atomic_store(&l->left, 1);
	http_drain_leave(l->d);
	return NULL;
}

/* The drainer sleeps until the last handler leaves, and wakes then. */
static void test_wait_wakes_when_last_leaves(void **state)
{
	struct http_drain d;
	struct late_leaver l = { .d = &d };
	pthread_t th;

	(void)state;
	assert_int_equal(http_drain_init(&d), 0);
	assert_int_equal(http_drain_enter(&d), 1);
	assert_int_equal(pthread_create(&th, NULL, late_leave_main, &l), 0);
	assert_int_equal(http_drain_begin(&d), 1);
	assert_int_equal(http_drain_wait(&d, 30.0), 0);
	assert_int_equal(atomic_load(&l.left), 1);
	pthread_join(th, NULL);
	http_drain_free(&d);
}

#define RACE_THREADS 4

struct racer {
	struct http_drain *d;
	atomic_int *stop;
	atomic_int *drained;       /* set once http_drain_wait returned 0 */
	atomic_int *inside;
	atomic_long *late;         /* entries seen after the drain completed */
	atomic_long *entered;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;

	while (!atomic_load(r->stop)) {
		if (!http_drain_enter(r->d))
			continue;
		atomic_fetch_add(r->inside, 1);
		atomic_fetch_add(r->entered, 1);
		if (atomic_load(r->drained))
			atomic_fetch_add(r->late, 1);
		for (volatile int spin = 0; spin < 200; spin++)
			;
		atomic_fetch_sub(r->inside, 1);
		http_drain_leave(r->d);
	}
	return NULL;
}

/*
 * Handlers entering and leaving as fast as they can while the drain
 * begins: once the wait says "none inside", none is, and none gets in.
 */
static void test_gate_has_no_window(void **state)
{
	for (int round = 0; round < 20; round++) {
		struct http_drain d;
		atomic_int stop = 0, drained = 0, inside = 0;
		atomic_long late = 0, entered = 0;
		struct racer r = { &d, &stop, &drained, &inside, &late, &entered };
		pthread_t th[RACE_THREADS];

		(void)state;
		assert_int_equal(http_drain_init(&d), 0);
		for (int i = 0; i < RACE_THREADS; i++)
			assert_int_equal(pthread_create(&th[i], NULL, race_main, &r), 0);
		for (int i = 0; i < 1000 && atomic_load(&entered) < 100; i++)
			sleep_ms(1);
		http_drain_begin(&d);
		assert_int_equal(http_drain_wait(&d, 30.0), 0);
		atomic_store(&drained, 1);
		assert_int_equal(atomic_load(&inside), 0);
		sleep_ms(5);
		atomic_store(&stop, 1);
		for (int i = 0; i < RACE_THREADS; i++)
			pthread_join(th[i], NULL);
		assert_int_equal(atomic_load(&late), 0);
		assert_int_equal(atomic_load(&inside), 0);
		assert_true(atomic_load(&entered) > 0);
		http_drain_free(&d);
	}
}

/* A listening socket on 127.0.0.1, port chosen by the kernel. */
static int listener(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A connected socket to 127.0.0.1:port, or -1 with errno. */
static int dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

struct poller {
	int fd;
	int result;
	short revents;
};

static void *poll_main(void *arg)
{
	struct poller *p = arg;
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	p->result = poll(&pfd, 1, 1000);
	p->revents = pfd.revents;
	return NULL;
}

/*
 * Our listener is closed in place while another thread sleeps in poll on
 * it (as civetweb's accept loop does): new connections are refused at
 * once, the number stays valid and quiet, and everything else (another
 * listener, an accepted connection on the same port) is left alone.
 */
static void test_close_listeners_in_place(void **state)
{
	struct http_drain d;
	struct poller p = { 0 };
	struct pollfd pfd;
	pthread_t th;
	int port, other_port, fd, other, client, served, c2, ports[1];
	char byte = 0;

	(void)state;
	assert_int_equal(http_drain_init(&d), 0);
	fd = listener(&port);
	other = listener(&other_port);
	client = dial(port);
	assert_true(client >= 0);
	served = accept(fd, NULL, NULL);
	assert_true(served >= 0);
	p.fd = fd;
	assert_int_equal(pthread_create(&th, NULL, poll_main, &p), 0);
	sleep_ms(50);   /* most likely asleep in poll by now; right either way */

	ports[0] = port;
	assert_int_equal(http_drain_close_listeners(&d, ports, 1), 1);
	assert_int_equal(dial(port), -1);
	assert_int_equal(errno, ECONNREFUSED);
	pthread_join(th, NULL);
	assert_true(p.result == 0 || (p.result == 1 && !(p.revents & (POLLNVAL | POLLERR))));

	/* Same number, still open, close-on-exec, and nothing to report. */
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 0);

	/* The other listener and the accepted connection still work. */
	c2 = dial(other_port);
	assert_true(c2 >= 0);
	close(c2);
	assert_int_equal(write(client, "k", 1), 1);
	assert_int_equal(read(served, &byte, 1), 1);
	assert_int_equal(byte, 'k');

	/* The wake-up makes the replaced number readable. */
	http_drain_wake(&d);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 1000), 1);
	assert_true(pfd.revents & POLLIN);
	/* Nothing left to close a second time. */
	assert_int_equal(http_drain_close_listeners(&d, ports, 1), 0);

	close(fd);      /* what civetweb does at mg_stop */
	close(other);
	close(client);
	close(served);
	http_drain_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gate_refuses_after_begin),
		cmocka_unit_test(test_wait_gives_up_after_grace),
		cmocka_unit_test(test_wait_wakes_when_last_leaves),
		cmocka_unit_test(test_gate_has_no_window),
		cmocka_unit_test(test_close_listeners_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
