/*
 * http_watchdog.c — see http_watchdog.h.
 *
 * Finding the socket: civetweb does not expose a connection's descriptor,
 * so the watchdog walks /proc/self/fd and picks the TCP socket whose peer
 * is the slot's address and port and whose local port is one of ours. This
 * runs only for a connection past its deadline, never per request.
 *
 * Locks, and the order they are taken in (two mutexes, nothing else):
 *   1. wd->mu (struct http_watchdog): the slot list, the ports, stop. The
 *      watchdog thread holds it for a whole pass (the timed wait lets it go
 *      between passes); register / unregister (a worker starting or ending)
 *      and set_ports / stop (the server's thread) take it alone.
 *   2. slot->mu (struct http_watchdog_slot, one per worker): the arming
 *      fields. Taken by the watchdog inside a pass, under wd->mu; by the
 *      worker alone in arm and disarm.
 * So wd->mu is never taken while a slot->mu is held: arm and disarm take
 * nothing else, and register / unregister init and destroy the slot's mutex
 * outside wd->mu. Under both, a pass only reads /proc, calls shutdown() and
 * log_msg (one write(), no lock). slot->received is an atomic, written by
 * the worker and read by the watchdog without a lock. Holding slot->mu
 * across the cut is what keeps the worker in its body read (http_watchdog.h).
 */
#include "http_watchdog.h"
#include "clock.h"
#include "util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define WATCHDOG_PERIOD_MS 500
#define WATCHDOG_MAX_PORTS 8

struct http_watchdog {
	pthread_t thread;
	pthread_mutex_t mu;            /* guards the slot list */
	pthread_cond_t wake;
	LIST_HEAD(, http_watchdog_slot) slots;
	int ports[WATCHDOG_MAX_PORTS];
	int nports;
	int stop;
};

static int http_watchdog_sockaddr_port(const struct sockaddr_storage *sa)
{
	if (sa->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
	if (sa->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return -1;
}

/* Numeric peer address as civetweb prints it (IPv4-mapped IPv6 as IPv4). */
static void http_watchdog_sockaddr_text(const struct sockaddr_storage *sa, char *out, size_t len)
{
	out[0] = '\0';
	if (sa->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
			  (socklen_t)len);
	} else if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)len);
		else
			inet_ntop(AF_INET6, a, out, (socklen_t)len);
	}
}

static int http_watchdog_is_our_port(const struct http_watchdog *wd, int port)
{
	for (int i = 0; i < wd->nports; i++)
		if (wd->ports[i] == port)
			return 1;
	return 0;
}

/* Shuts down the reading side of the connection from peer:port; 0 if found. */
static int http_watchdog_cut(const struct http_watchdog *wd, const char *peer, int peer_port)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int rc = -1;

	if (!d)
		return -1;
	while (rc != 0 && (e = readdir(d))) {
		struct sockaddr_storage local, remote;
		socklen_t ll = sizeof local, rl = sizeof remote;
		char text[64];
		int fd = atoi(e->d_name);

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd(d))
			continue;
		if (getsockname(fd, (struct sockaddr *)&local, &ll) != 0 ||
		    getpeername(fd, (struct sockaddr *)&remote, &rl) != 0)
			continue;
		if (!http_watchdog_is_our_port(wd, http_watchdog_sockaddr_port(&local)) ||
		    http_watchdog_sockaddr_port(&remote) != peer_port)
			continue;
		http_watchdog_sockaddr_text(&remote, text, sizeof text);
		if (strcmp(text, peer) == 0 && shutdown(fd, SHUT_RD) == 0)
			rc = 0;
	}
	closedir(d);
	return rc;
}

static void http_watchdog_check(struct http_watchdog *wd)
{
	double now = clock_mono();
	struct http_watchdog_slot *s;

	LIST_FOREACH(s, &wd->slots, link) {
		double late, need;
		int slow;

		pthread_mutex_lock(&s->mu);
		/* min_body_rate: past the grace, at least rate x (time - grace)
		 * bytes, never more than the body has. */
		late = now - s->armed_at - HTTP_WATCHDOG_RATE_GRACE_S;
		need = s->min_rate * late;
		if (need > (double)s->expect)
			need = (double)s->expect;
		slow = s->min_rate > 0 && late > 0 && (double)atomic_load(&s->received) < need;
		if (s->armed && !s->fired && (now > s->deadline || slow)) {
			/* Not found (yet): try again at the next pass, warn once. */
			if (http_watchdog_cut(wd, s->peer, s->peer_port) == 0) {
				s->fired = 1;
				log_msg(LOG_INFO, NULL, "request body from %s too slow (%s): "
					"connection cut", s->peer,
					slow ? "under min_body_rate" : "past its deadline");
			} else if (!s->warned) {
				s->warned = 1;
				log_msg(LOG_WARN, NULL, "request body from %s too slow, but its "
					"socket was not found; retrying", s->peer);
			}
		}
		pthread_mutex_unlock(&s->mu);
	}
}

static void *http_watchdog_main(void *arg)
{
	struct http_watchdog *wd = arg;
	struct timespec until;
	/* shown by top -H, ps -L and gdb; a failure only loses the name */
	(void)pthread_setname_np(pthread_self(), "egoi-watchdog");

	pthread_mutex_lock(&wd->mu);
	while (!wd->stop) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WATCHDOG_PERIOD_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&wd->wake, &wd->mu, &until);
		if (!wd->stop)
			http_watchdog_check(wd);
	}
	pthread_mutex_unlock(&wd->mu);
	return NULL;
}

void http_watchdog_set_ports(struct http_watchdog *wd, const int *ports, int nports)
{
	pthread_mutex_lock(&wd->mu);
	wd->nports = 0;
	for (int i = 0; i < nports && i < WATCHDOG_MAX_PORTS; i++)
		wd->ports[wd->nports++] = ports[i];
	pthread_mutex_unlock(&wd->mu);
}

struct http_watchdog *http_watchdog_start(void)
{
	struct http_watchdog *wd = calloc(1, sizeof *wd);

	if (!wd)
		return NULL;
	pthread_mutex_init(&wd->mu, NULL);
	pthread_cond_init(&wd->wake, NULL);
	LIST_INIT(&wd->slots);
	if (pthread_create(&wd->thread, NULL, http_watchdog_main, wd) != 0) {
		pthread_cond_destroy(&wd->wake);
		pthread_mutex_destroy(&wd->mu);
		free(wd);
		return NULL;
	}
	return wd;
}

void http_watchdog_stop(struct http_watchdog *wd)
{
	if (!wd)
		return;
	pthread_mutex_lock(&wd->mu);
	wd->stop = 1;
	pthread_cond_signal(&wd->wake);
	pthread_mutex_unlock(&wd->mu);
	pthread_join(wd->thread, NULL);
	pthread_cond_destroy(&wd->wake);
	pthread_mutex_destroy(&wd->mu);
	free(wd);
}

void http_watchdog_register(struct http_watchdog *wd, struct http_watchdog_slot *slot)
{
	pthread_mutex_init(&slot->mu, NULL);
	slot->armed = slot->fired = 0;
	atomic_init(&slot->received, 0);
	pthread_mutex_lock(&wd->mu);
	LIST_INSERT_HEAD(&wd->slots, slot, link);
	pthread_mutex_unlock(&wd->mu);
}

void http_watchdog_unregister(struct http_watchdog *wd, struct http_watchdog_slot *slot)
{
	pthread_mutex_lock(&wd->mu);
	LIST_REMOVE(slot, link);
	pthread_mutex_unlock(&wd->mu);
	pthread_mutex_destroy(&slot->mu);
}

void http_watchdog_arm(struct http_watchdog_slot *slot, const char *peer, int peer_port,
		       double deadline, double min_rate, long long expect)
{
	pthread_mutex_lock(&slot->mu);
	slot->armed_at = clock_mono();
	slot->min_rate = min_rate;
	slot->expect = expect;
	atomic_store(&slot->received, 0);
	util_copy(slot->peer, sizeof slot->peer, peer);
	slot->peer_port = peer_port;
	slot->deadline = deadline;
	slot->fired = 0;
	slot->warned = 0;
	slot->armed = 1;
	pthread_mutex_unlock(&slot->mu);
}

int http_watchdog_disarm(struct http_watchdog_slot *slot)
{
	int fired;

	pthread_mutex_lock(&slot->mu);
	slot->armed = 0;
	fired = slot->fired;
	pthread_mutex_unlock(&slot->mu);
	return fired;
}

void http_watchdog_progress(struct http_watchdog_slot *slot, size_t n)
{
	atomic_fetch_add(&slot->received, (long long)n);
}

/* Half a second's worth at the minimum rate (from 512 B to 16 KiB): the
 * count then lags by well under the grace. */
size_t http_watchdog_read_piece(double min_rate)
{
	double piece = min_rate / 2;

	if (min_rate <= 0 || piece > 16384)
		return 16384;
	return piece < 512 ? 512 : (size_t)piece;
}
