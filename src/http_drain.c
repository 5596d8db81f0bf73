/*
 * http_drain.c — see http_drain.h.
 *
 * Closing the listening sockets behind civetweb's back, as verified in
 * civetweb 1.15's source and on Linux:
 * - civetweb's accept loop (master_thread_run) polls its listening
 *   descriptors for POLLIN in quanta of 2 s, accepts on those that report
 *   it, and ignores a failed accept(); at mg_stop it closes each
 *   descriptor once (close_all_listening_sockets). It keeps the numbers,
 *   never the sockets' state, so it cannot tell what a number now holds.
 * - close() alone would leave a number that poll reports as POLLNVAL at
 *   once (the accept loop would spin) and that civetweb closes again at
 *   mg_stop, maybe after it was reused for something else.
 * - dup3() of a pipe's read end over the number (the write end kept open,
 *   nothing written) gives a descriptor on which poll reports nothing: no
 *   POLLIN, no POLLHUP, no POLLERR. civetweb closes it at mg_stop as it
 *   would have closed the socket; we close the pipe after mg_stop.
 * - dup3 alone is not enough: a thread asleep in poll() holds its own
 *   reference to the socket, which goes on accepting connections until
 *   that poll returns (up to 2 s later). shutdown(SHUT_RDWR) on a
 *   listening socket takes it out of the LISTEN state at once, whoever
 *   holds it: new connections are refused and those still in the accept
 *   queue are reset (none of them has been given to a worker, so no
 *   request of theirs has been read).
 *
 * Finding the sockets: /proc/self/fd lists our descriptors; a listening
 * one reports SO_ACCEPTCONN, and its local port tells whose it is. Linux
 * lets a process read its own /proc/self/fd even after civetweb's
 * run_as_user has changed its user (the process is then not dumpable and
 * its /proc files belong to root; tried on this kernel). Nothing else in the daemon listens on
 * those ports, and nothing closes civetweb's listening sockets before
 * mg_stop, so a descriptor found cannot change under us.
 */
#include "http_drain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int http_drain_init(struct http_drain *d)
{
	memset(d, 0, sizeof *d);
	atomic_init(&d->draining, 0);
	atomic_init(&d->inflight, 0);
	if (pipe2(d->quiet, O_CLOEXEC) != 0) {
		d->quiet[0] = d->quiet[1] = -1;
		return -1;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->idle, NULL);
	d->ready = 1;
	return 0;
}

void http_drain_free(struct http_drain *d)
{
	if (!d->ready)
		return;
	close(d->quiet[0]);
	close(d->quiet[1]);
	d->quiet[0] = d->quiet[1] = -1;
	d->ready = 0;
	pthread_cond_destroy(&d->idle);
	pthread_mutex_destroy(&d->mu);
}

int http_drain_enter(struct http_drain *d)
{
	/* Counted first, flag read second: see the header. */
	atomic_fetch_add(&d->inflight, 1);
	if (!atomic_load(&d->draining))
		return 1;
	http_drain_leave(d);
	return 0;
}

void http_drain_leave(struct http_drain *d)
{
	/* The drainer checks the count under mu before it sleeps, so taking mu
	 * here cannot miss it: it is either not yet checking or already asleep. */
	if (atomic_fetch_sub(&d->inflight, 1) == 1 && atomic_load(&d->draining)) {
		pthread_mutex_lock(&d->mu);
		pthread_cond_broadcast(&d->idle);
		pthread_mutex_unlock(&d->mu);
	}
}

int http_drain_stopping(struct http_drain *d)
{
	return atomic_load(&d->draining);
}

long http_drain_begin(struct http_drain *d)
{
	atomic_store(&d->draining, 1);
	return atomic_load(&d->inflight);
}

long http_drain_wait(struct http_drain *d, double grace_s)
{
	struct timespec until;
	long left;

	/* The condition's clock is CLOCK_REALTIME; the grace is short enough
	 * that a clock step only shortens or lengthens it, never blocks. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)grace_s;
	until.tv_nsec += (long)((grace_s - (double)(time_t)grace_s) * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->mu);
	while ((left = atomic_load(&d->inflight)) > 0)
		if (pthread_cond_timedwait(&d->idle, &d->mu, &until) == ETIMEDOUT) {
			left = atomic_load(&d->inflight);
			break;
		}
	pthread_mutex_unlock(&d->mu);
	return left;
}

/* 1 if fd is a listening TCP socket on one of ports. */
static int http_drain_is_listener(int fd, const int *ports, int nports)
{
	struct sockaddr_storage sa;
	socklen_t salen = sizeof sa, optlen;
	int listening = 0, port;

	optlen = sizeof listening;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || !listening)
		return 0;
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) != 0)
		return 0;
	if (sa.ss_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)(const void *)&sa)->sin_port);
	else if (sa.ss_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)(const void *)&sa)->sin6_port);
	else
		return 0;
	for (int i = 0; i < nports; i++)
		if (ports[i] == port)
			return 1;
	return 0;
}

int http_drain_close_listeners(struct http_drain *d, const int *ports, int nports)
{
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int replaced = 0;

	if (!dir)
		return -1;
	while ((e = readdir(dir))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(dir) ||
		    fd == d->quiet[0] || fd == d->quiet[1])
			continue;
		if (!http_drain_is_listener(fd, ports, nports))
			continue;
		/* Its failure changes nothing: dup3 below still closes the socket,
		 * merely later if a poll holds it (see the top comment). */
		(void)shutdown(fd, SHUT_RDWR);
		if (dup3(d->quiet[0], fd, O_CLOEXEC) == fd)
			replaced++;
	}
	closedir(dir);
	return replaced;
}

void http_drain_wake(struct http_drain *d)
{
	/*
	 * From this write until mg_stop sets its stop flag (its first step),
	 * civetweb's accept loop sees input, calls accept() on the pipe (which
	 * fails at once, ENOTSOCK, and is ignored) and polls again: a spin of
	 * a few microseconds, after which it sees the flag and stops.
	 */
	ssize_t n;

	do
		n = write(d->quiet[1], "x", 1);
	while (n < 0 && errno == EINTR);
}
