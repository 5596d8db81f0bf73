/*
 * faulty.c — the scriptable fault destination (see faulty.h for the modes
 * and the contract).
 *
 * Design: the accept thread owns the listening socket. A mode change bumps
 * a generation under the mutex; the accept thread, which wakes every 20 ms,
 * brings the socket in line with the mode (closed for FAULTY_REFUSE, bound
 * again with SO_REUSEADDR otherwise), marks the generation applied and
 * signals the condition faulty_set_mode waits on. Each accepted connection
 * gets a thread (faulty_conn.c) that reads, records and answers requests;
 * finished ones are joined by the accept thread, the rest by faulty_stop.
 *
 * Every socket is created close-on-exec: the daemon under test is spawned
 * from this process, and an inherited listening socket would keep the port
 * open (connections would queue instead of being refused).
 *
 * Threads: see faulty.h. Everything shared lives under f->mu.
 */
#include "e2e/faulty_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A close-on-exec listening socket on 127.0.0.1:port (0 = any); -1 on error. */
static int faulty_listen(int port, int *bound)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)port);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(a.sin_port);
	return fd;
}

/* Closes fd with SO_LINGER 0, so the peer gets a reset instead of a FIN. */static void faulty_reap(struct faulty *f, int all)
{
	struct faulty_conn *done = NULL;

	pthread_mutex_lock(&f->mu);
	for (struct faulty_conn **pp = &f->conns; *pp != NULL;) {
		struct faulty_conn *c = *pp;
		if (all || atomic_load(&c->done)) {
			*pp = c->next;
			c->next = done;
			done = c;
		} else {
			pp = &c->next;
		}
	}
	pthread_mutex_unlock(&f->mu);
	while (done != NULL) {
		struct faulty_conn *c = done;
		done = c->next;
		pthread_join(c->thread, NULL);
		free(c);
	}
}

/* Brings the listening socket in line with the mode; under f->mu. */
static void faulty_apply(struct faulty *f)
{
	if (f->mode == FAULTY_REFUSE && f->lfd >= 0) {
		close(f->lfd);
		f->lfd = -1;
	} else if (f->mode != FAULTY_REFUSE && f->lfd < 0) {
		int bound = 0;
		f->lfd = faulty_listen(f->port, &bound);
	}
	if (f->applied != f->gen) {
		f->applied = f->gen;
		pthread_cond_broadcast(&f->cv);
	}
}

static void faulty_accept_one(struct faulty *f, int fd)
{
	struct faulty_conn *c = NULL;

	pthread_mutex_lock(&f->mu);
	f->connections++;
	if (f->mode == FAULTY_RESET) {
		faulty_conn_reset(fd);
		f->resets++;
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		goto out;
	}
	c->f = f;
	c->fd = fd;
	if (pthread_create(&c->thread, NULL, faulty_conn_main, c) != 0) {
		fprintf(stderr, "faulty: cannot start a connection thread\n");
		close(fd);
		free(c);
		goto out;
	}
	c->next = f->conns;
	f->conns = c;
out:
	pthread_mutex_unlock(&f->mu);
}

static void *faulty_accept_main(void *arg)
{
	struct faulty *f = arg;

	while (!atomic_load(&f->stop)) {
		pthread_mutex_lock(&f->mu);
		faulty_apply(f);
		int lfd = f->lfd;   /* only this thread closes or replaces it */
		pthread_mutex_unlock(&f->mu);
		faulty_reap(f, 0);
		if (lfd < 0) {
			struct timespec ts = { 0, FAULTY_TICK_MS * 1000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		if (poll(&p, 1, FAULTY_TICK_MS) <= 0)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			faulty_accept_one(f, fd);
	}
	pthread_mutex_lock(&f->mu);
	if (f->lfd >= 0)
		close(f->lfd);
	f->lfd = -1;
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

struct faulty *faulty_start(void)
{
	struct faulty *f = calloc(1, sizeof(*f));
	pthread_condattr_t ca;
	int sync_ready = 0;

	if (f == NULL)
		return NULL;
	f->lfd = faulty_listen(0, &f->port);
	if (f->lfd < 0) {
		fprintf(stderr, "faulty: cannot listen on 127.0.0.1: %s\n", strerror(errno));
		goto fail;
	}
	if (pthread_mutex_init(&f->mu, NULL) != 0 || pthread_condattr_init(&ca) != 0)
		goto fail;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&f->cv, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&f->mu);
		goto fail;
	}
	pthread_condattr_destroy(&ca);
	sync_ready = 1;
	f->mode = FAULTY_OK;
	if (pthread_create(&f->acceptor, NULL, faulty_accept_main, f) != 0) {
		fprintf(stderr, "faulty: cannot start the accept thread\n");
		goto fail;
	}
	return f;
fail:
	if (f->lfd >= 0)
		close(f->lfd);
	if (sync_ready) {
		pthread_cond_destroy(&f->cv);
		pthread_mutex_destroy(&f->mu);
	}
	free(f);
	return NULL;
}

void faulty_stop(struct faulty *f)
{
	if (f == NULL)
		return;
	atomic_store(&f->stop, 1);
	pthread_join(f->acceptor, NULL);
	pthread_mutex_lock(&f->mu);
	for (struct faulty_conn *c = f->conns; c != NULL; c = c->next)
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);
	pthread_mutex_unlock(&f->mu);
	faulty_reap(f, 1);
	for (size_t i = 0; i < f->nrecs; i++) {
		free((char *)f->recs[i]->uri);
		free((char *)f->recs[i]->body);
		free((long *)f->recs[i]->tags);
		free(f->recs[i]);
	}
	free(f->recs);
	pthread_cond_destroy(&f->cv);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

int faulty_port(const struct faulty *f)
{
	return f->port;
}

void faulty_url(const struct faulty *f, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%d", f->port);
}

int faulty_set_mode(struct faulty *f, enum faulty_mode mode, int status,
		    const char *retry_after)
{
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += FAULTY_SWITCH_MS / 1000;
	pthread_mutex_lock(&f->mu);
	f->mode = mode;
	f->status = status;
	snprintf(f->retry_after, sizeof(f->retry_after), "%s", retry_after != NULL ? retry_after : "");
	unsigned want = ++f->gen;
	while ((int)(f->applied - want) < 0 &&
	       pthread_cond_timedwait(&f->cv, &f->mu, &dl) != ETIMEDOUT)
		;
	if ((int)(f->applied - want) < 0 || (mode == FAULTY_REFUSE) != (f->lfd < 0)) {
		fprintf(stderr, "faulty: port %d: mode %d not in force after %d ms%s\n", f->port,
			(int)mode, FAULTY_SWITCH_MS,
			mode != FAULTY_REFUSE ? " (the port could not be bound again)" : "");
		rc = -1;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

size_t faulty_count(struct faulty *f)
{
	size_t n;

	pthread_mutex_lock(&f->mu);
	n = f->nrecs;
	pthread_mutex_unlock(&f->mu);
	return n;
}

int faulty_get(struct faulty *f, size_t i, struct faulty_request *out)
{
	int rc = -1;

	pthread_mutex_lock(&f->mu);
	if (i < f->nrecs) {
		*out = *f->recs[i];
		rc = 0;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static int faulty_cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int faulty_cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

void faulty_stats(struct faulty *f, struct faulty_stats *s)
{
	const char **ids = NULL;
	size_t nids = 0;

	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&f->mu);
	s->requests = f->nrecs;
	s->connections = f->connections;
	s->resets = f->resets;
	ids = f->nrecs ? malloc(f->nrecs * sizeof(*ids)) : NULL;
	for (size_t i = 0; i < f->nrecs; i++) {
		if (f->recs[i]->status / 100 != 2)
			continue;
		s->answered_2xx++;
		if (ids != NULL)
			ids[nids++] = f->recs[i]->delivery_id;
	}
	/* The id strings live in records, which stay put until faulty_stop. */
	pthread_mutex_unlock(&f->mu);
	if (ids == NULL)
		return;
	qsort(ids, nids, sizeof(*ids), faulty_cmp_str);
	for (size_t i = 0; i < nids;) {
		size_t j = i + 1;
		while (j < nids && strcmp(ids[j], ids[i]) == 0)
			j++;
		s->distinct_ok++;
		if (j - i > 1)
			s->duplicates++;
		i = j;
	}
	free(ids);
}

long *faulty_tags(struct faulty *f, size_t *n)
{
	size_t total = 0, k = 0;
	long *tags = NULL;

	*n = 0;
	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < f->nrecs; i++)
		if (f->recs[i]->status / 100 == 2)
			total += f->recs[i]->ntags;
	if (total > 0 && (tags = malloc(total * sizeof(*tags))) != NULL)
		for (size_t i = 0; i < f->nrecs; i++)
			if (f->recs[i]->status / 100 == 2)
				for (size_t j = 0; j < f->recs[i]->ntags; j++)
					tags[k++] = f->recs[i]->tags[j];
	pthread_mutex_unlock(&f->mu);
	if (tags == NULL)
		return NULL;
	qsort(tags, k, sizeof(*tags), faulty_cmp_long);
	for (size_t i = 0; i < k; i++)
		if (*n == 0 || tags[*n - 1] != tags[i])
			tags[(*n)++] = tags[i];
	return tags;
}
