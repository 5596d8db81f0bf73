/*
 * test_notify.c — the sd_notify messages: what systemd receives on a
 * NOTIFY_SOCKET we bind (READY=1 with STATUS=, RELOADING=1 with a
 * MONOTONIC_USEC= taken at the call, STOPPING=1), nothing and no error when
 * NOTIFY_SOCKET is unset, an error when the socket is not there.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

struct fixture {
	char dir[64];
	char path[96];    /* dir/notify, bound by fd */
	int fd;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	struct sockaddr_un sa;

	assert_non_null(fx);
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test-notify-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof fx->path, "%s/notify", fx->dir);
	fx->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(fx->fd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fx->path);
	assert_int_equal(bind(fx->fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(setenv("NOTIFY_SOCKET", fx->path, 1), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	unsetenv("NOTIFY_SOCKET");
	close(fx->fd);
	tu_rmtree(fx->dir);
	free(fx);
	return 0;
}

/* The next datagram, NUL-terminated in buf; its length, or -1 when none is
 * waiting (sd_notify has returned, so a sent one is already queued). */
static ssize_t next_message(const struct fixture *fx, char *buf, size_t size)
{
	ssize_t n = recv(fx->fd, buf, size - 1, 0);

	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static unsigned long long mono_usec(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

static void ready_says_where_it_listens(void **state)
{
	struct fixture *fx = *state;
	char buf[512];

	assert_int_equal(notify_ready("127.0.0.1:8443s"), 0);
	assert_true(next_message(fx, buf, sizeof buf) > 0);
	assert_string_equal(buf, "READY=1\nSTATUS=listening on 127.0.0.1:8443s");
	assert_int_equal(next_message(fx, buf, sizeof buf), -1);
}

static void reloading_carries_the_monotonic_time(void **state)
{
	struct fixture *fx = *state;
	unsigned long long before, after, at;
	char buf[512], *p, *end;

	before = mono_usec();
	assert_int_equal(notify_reloading(), 0);
	after = mono_usec();
	assert_true(next_message(fx, buf, sizeof buf) > 0);
	assert_true(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
	p = buf + 27;
	errno = 0;
	at = strtoull(p, &end, 10);
	assert_int_equal(errno, 0);
	assert_true(end > p && *end == '\n');
	assert_true(at >= before && at <= after);
	assert_string_equal(end, "\nSTATUS=reloading");
}

static void stopping(void **state)
{
	struct fixture *fx = *state;
	char buf[512];

	assert_int_equal(notify_stopping(), 0);
	assert_true(next_message(fx, buf, sizeof buf) > 0);
	assert_true(strncmp(buf, "STOPPING=1\n", 11) == 0);
}

static void nothing_without_notify_socket(void **state)
{
	struct fixture *fx = *state;
	char buf[512];

	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_ready("x"), 0);
	assert_int_equal(notify_reloading(), 0);
	assert_int_equal(notify_stopping(), 0);
	assert_int_equal(next_message(fx, buf, sizeof buf), -1);
}

static void missing_socket_is_an_error(void **state)
{
	struct fixture *fx = *state;
	char path[160];

	snprintf(path, sizeof path, "%s/absent", fx->dir);
	assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
	assert_true(notify_ready("x") < 0);
	assert_true(notify_stopping() < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ready_says_where_it_listens, setup, teardown),
		cmocka_unit_test_setup_teardown(reloading_carries_the_monotonic_time, setup,
						teardown),
		cmocka_unit_test_setup_teardown(stopping, setup, teardown),
		cmocka_unit_test_setup_teardown(nothing_without_notify_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_socket_is_an_error, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
