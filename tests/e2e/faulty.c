/*
 * faulty.c — the scriptable fault destination (see faulty.h for the modes
 * and the contract).
 *
 * Design: the accept thread owns the listening socket. A mode change bumps
 * a generation under the mutex; the accept thread, which wakes every 20 ms,
 * brings the socket in line with the mode (closed for FAULTY_REFUSE, bound
 * again with SO_REUSEADDR otherwise), marks the generation applied and
 * signals the condition faulty_set_mode waits on. Each accepted connection
 * gets a thread that reads requests (headers, then Content-Length bytes of
 * body), records them and answers according to the mode of the moment.
 * Connection threads wait in 100 ms polls so they notice a mode change or
 * faulty_stop promptly; a connection's fd is closed only under the mutex
 * (and set to -1), so faulty_stop never shuts down a number reused since.
 *
 * Every socket is created close-on-exec: the daemon under test is spawned
 * from this process, and an inherited listening socket would keep the port
 * open (connections would queue instead of being refused).
 *
 * Threads: see faulty.h. Everything shared lives under f->mu.
 */
#include "e2e/faulty.h"
#include "clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define FAULTY_MAX_HEADER (64 * 1024)
#define FAULTY_MAX_BODY (16 * 1024 * 1024)
#define FAULTY_TICK_MS 20         /* accept thread's longest sleep */
#define FAULTY_CONN_TICK_MS 100   /* connection threads' longest sleep */
#define FAULTY_SWITCH_MS 3000     /* faulty_set_mode's longest wait */

struct faulty_conn {
	struct faulty *f;
	int fd;                       /* under f->mu; -1 once closed */
	pthread_t thread;
	atomic_int done;
	struct faulty_conn *next;
};

struct faulty {
	pthread_mutex_t mu;
	pthread_cond_t cv;            /* signalled when a generation is applied */
	int port;
	int lfd;                      /* listening socket or -1; written by the accept thread */
	enum faulty_mode mode;
	int status;
	char retry_after[64];
	unsigned gen, applied;
	atomic_int stop;
	pthread_t acceptor;
	struct faulty_conn *conns;
	struct faulty_request **recs; /* each record and what it points to is owned here */
	size_t nrecs, caprecs;
	size_t connections, resets;
};

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

/* Closes fd with SO_LINGER 0, so the peer gets a reset instead of a FIN. */
static void faulty_close_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* Closes the connection's fd under the mutex (reset = with SO_LINGER 0). */
static void faulty_conn_close(struct faulty_conn *c, int reset)
{
	pthread_mutex_lock(&c->f->mu);
	if (c->fd >= 0) {
		if (reset) {
			faulty_close_reset(c->fd);
			c->f->resets++;
		} else {
			close(c->fd);
		}
		c->fd = -1;
	}
	pthread_mutex_unlock(&c->f->mu);
}

static enum faulty_mode faulty_mode_now(struct faulty *f)
{
	enum faulty_mode m;

	pthread_mutex_lock(&f->mu);
	m = f->mode;
	pthread_mutex_unlock(&f->mu);
	return m;
}

/* Waits until fd is readable: 1; 0 when the connection must end (stop, or the
 * server is "down" in FAULTY_REFUSE); -1 on a socket error. */
static int faulty_wait_readable(struct faulty_conn *c, int fd)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (atomic_load(&c->f->stop) || faulty_mode_now(c->f) == FAULTY_REFUSE)
			return 0;
		int r = poll(&p, 1, FAULTY_CONN_TICK_MS);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static int faulty_send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Value of header name in the header block hdr (request line first), copied
 * into out (trimmed); 0 when found, -1 otherwise. */
static int faulty_header(const char *hdr, size_t hlen, const char *name, char *out, size_t olen)
{
	size_t nlen = strlen(name);
	const char *end = hdr + hlen;

	for (const char *p = memchr(hdr, '\n', hlen); p != NULL && p + 1 < end;
	     p = memchr(p + 1, '\n', (size_t)(end - p - 1))) {
		const char *line = p + 1;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			const char *v = line + nlen + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			size_t vlen = (size_t)(eol - v);
			while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
				vlen--;
			if (vlen >= olen)
				vlen = olen - 1;
			memcpy(out, v, vlen);
			out[vlen] = '\0';
			return 0;
		}
	}
	return -1;
}

/* The "seq" integers of the elements of body's "events" array. */
static void faulty_parse_tags(const char *body, long **tags, size_t *ntags)
{
	const char *pe[] = { "events", NULL }, *ps[] = { "seq", NULL };
	yajl_val v = yajl_tree_parse(body, NULL, 0);
	yajl_val ev = v != NULL ? yajl_tree_get(v, pe, yajl_t_array) : NULL;

	*tags = NULL;
	*ntags = 0;
	if (ev == NULL || YAJL_GET_ARRAY(ev)->len == 0)
		goto out;
	*tags = calloc(YAJL_GET_ARRAY(ev)->len, sizeof(**tags));
	if (*tags == NULL)
		goto out;
	for (size_t i = 0; i < YAJL_GET_ARRAY(ev)->len; i++) {
		yajl_val s = yajl_tree_get(YAJL_GET_ARRAY(ev)->values[i], ps, yajl_t_number);
		if (s != NULL && YAJL_IS_INTEGER(s))
			(*tags)[(*ntags)++] = (long)YAJL_GET_INTEGER(s);
	}
out:
	yajl_tree_free(v);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" for t, independent of the locale. */
static void faulty_http_date(time_t t, char *buf, size_t len)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char mons[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
		 mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static const char *faulty_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/* Appends rec (taking ownership); -1 when memory ran out (rec is freed). */
static int faulty_append(struct faulty *f, struct faulty_request *rec)
{
	int rc = 0;

	pthread_mutex_lock(&f->mu);
	if (f->nrecs == f->caprecs) {
		size_t cap = f->caprecs ? f->caprecs * 2 : 256;
		struct faulty_request **nr = realloc(f->recs, cap * sizeof(*nr));
		if (nr == NULL) {
			rc = -1;
			goto out;
		}
		f->recs = nr;
		f->caprecs = cap;
	}
	f->recs[f->nrecs++] = rec;
out:
	pthread_mutex_unlock(&f->mu);
	if (rc != 0) {
		fprintf(stderr, "faulty: out of memory recording a request\n");
		free((char *)rec->uri);
		free((char *)rec->body);
		free((long *)rec->tags);
		free(rec);
	}
	return rc;
}

/* Holds a black-holed connection until the mode changes, stop, or the peer
 * closes it; unread bytes are discarded. */
static void faulty_hold(struct faulty_conn *c, int fd)
{
	char sink[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (atomic_load(&c->f->stop) || faulty_mode_now(c->f) != FAULTY_BLACKHOLE)
			return;
		int r = poll(&p, 1, FAULTY_CONN_TICK_MS);
		if (r < 0 && errno != EINTR)
			return;
		if (r > 0 && recv(fd, sink, sizeof(sink), 0) <= 0)
			return;
	}
}

/*
 * Reads one whole request into buf (which may already hold *have bytes).
 * Returns the total size of the request (headers + body), with *hdr_len the
 * size of the header block; 0 when the connection must end.
 */
static size_t faulty_read_request(struct faulty_conn *c, int fd, char **buf, size_t *cap,
				  size_t *have, size_t *hdr_len)
{
	char *end;
	char val[64];
	size_t clen = 0;
	int continued = 0;

	for (;;) {
		end = *have >= 4 ? memmem(*buf, *have, "\r\n\r\n", 4) : NULL;
		if (end != NULL)
			break;
		if (*have >= FAULTY_MAX_HEADER) {
			fprintf(stderr, "faulty: request header over %d bytes\n", FAULTY_MAX_HEADER);
			return 0;
		}
		if (faulty_wait_readable(c, fd) <= 0)
			return 0;
		ssize_t n = recv(fd, *buf + *have, *cap - *have, 0);
		if (n <= 0)
			return 0;
		*have += (size_t)n;
	}
	*hdr_len = (size_t)(end - *buf) + 4;
	if (faulty_header(*buf, *hdr_len, "Transfer-Encoding", val, sizeof(val)) == 0) {
		fprintf(stderr, "faulty: Transfer-Encoding %s not supported\n", val);
		return 0;
	}
	if (faulty_header(*buf, *hdr_len, "Content-Length", val, sizeof(val)) == 0) {
		char *e;
		unsigned long v = strtoul(val, &e, 10);
		if (*e != '\0' || v > FAULTY_MAX_BODY) {
			fprintf(stderr, "faulty: bad Content-Length '%s'\n", val);
			return 0;
		}
		clen = v;
	}
	if (*hdr_len + clen > *cap) {
		char *nb = realloc(*buf, *hdr_len + clen + 1);
		if (nb == NULL)
			return 0;
		*buf = nb;
		*cap = *hdr_len + clen;
	}
	while (*have < *hdr_len + clen) {
		/* A black hole never says "100 Continue": curl sends the body anyway
		 * after its own short wait. */
		if (!continued && faulty_mode_now(c->f) != FAULTY_BLACKHOLE &&
		    faulty_header(*buf, *hdr_len, "Expect", val, sizeof(val)) == 0 &&
		    strcasecmp(val, "100-continue") == 0) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			if (faulty_send_all(fd, cont, sizeof(cont) - 1) != 0)
				return 0;
			continued = 1;
		}
		if (faulty_wait_readable(c, fd) <= 0)
			return 0;
		ssize_t n = recv(fd, *buf + *have, *hdr_len + clen - *have, 0);
		if (n <= 0)
			return 0;
		*have += (size_t)n;
	}
	return *hdr_len + clen;
}

/* Builds the record of one request read whole, as the current mode answers it. */
static struct faulty_request *faulty_record(struct faulty *f, const char *req, size_t hdr_len,
					    size_t total, char *answer, size_t alen, int *close_after,
					    enum faulty_mode *used)
{
	struct faulty_request *rec = calloc(1, sizeof(*rec));
	char val[128], ra[128] = "";
	long *tags = NULL;
	char *body = NULL, *uri = NULL;
	const char *sp1, *sp2;

	if (rec == NULL)
		return NULL;
	rec->at = clock_wall();
	body = malloc(total - hdr_len + 1);
	sp1 = memchr(req, ' ', hdr_len);
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', hdr_len - (size_t)(sp1 + 1 - req)) : NULL;
	uri = sp2 != NULL ? strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1)) : strdup("");
	if (body == NULL || uri == NULL) {
		free(body);
		free(uri);
		free(rec);
		return NULL;
	}
	memcpy(body, req + hdr_len, total - hdr_len);
	body[total - hdr_len] = '\0';
	rec->body = body;
	rec->body_len = total - hdr_len;
	rec->uri = uri;
	faulty_parse_tags(body, &tags, &rec->ntags);
	rec->tags = tags;
	if (faulty_header(req, hdr_len, "X-Router-Delivery-Id", val, sizeof(val)) == 0)
		snprintf(rec->delivery_id, sizeof(rec->delivery_id), "%s", val);
	if (faulty_header(req, hdr_len, "X-Router-Attempt", val, sizeof(val)) == 0)
		rec->attempt = strtol(val, NULL, 10);
	*close_after = faulty_header(req, hdr_len, "Connection", val, sizeof(val)) == 0 &&
		       strcasecmp(val, "close") == 0;

	pthread_mutex_lock(&f->mu);
	enum faulty_mode mode = f->mode;
	*used = mode;
	int status = mode == FAULTY_OK ? 200 : mode == FAULTY_STATUS ? f->status : 0;
	if (mode == FAULTY_STATUS && f->retry_after[0] == '+') {
		time_t when = (time_t)rec->at + strtol(f->retry_after + 1, NULL, 10);
		faulty_http_date(when, ra, sizeof(ra));
		rec->not_before = (double)when;
	} else if (mode == FAULTY_STATUS && f->retry_after[0] != '\0') {
		snprintf(ra, sizeof(ra), "%s", f->retry_after);
		rec->not_before = rec->at + strtod(f->retry_after, NULL);
	}
	pthread_mutex_unlock(&f->mu);

	rec->status = status;
	answer[0] = '\0';
	if (status != 0) {
		const char *text = status / 100 == 2 ? "ok\n" : "fault\n";
		snprintf(answer, alen,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
			 "%s%s%s%s\r\n%s",
			 status, faulty_reason(status), strlen(text), ra[0] ? "Retry-After: " : "", ra,
			 ra[0] ? "\r\n" : "", *close_after ? "Connection: close\r\n" : "", text);
	}
	return rec;
}

static void *faulty_conn_main(void *arg)
{
	struct faulty_conn *c = arg;
	struct faulty *f = c->f;
	size_t cap = FAULTY_MAX_HEADER, have = 0;
	char *buf = malloc(cap + 1);
	int reset = 0;

	pthread_mutex_lock(&f->mu);
	int fd = c->fd;
	pthread_mutex_unlock(&f->mu);
	if (buf == NULL)
		goto out;
	for (;;) {
		size_t hdr_len = 0, total;
		char answer[512];
		int close_after = 0;
		enum faulty_mode mode;

		total = faulty_read_request(c, fd, &buf, &cap, &have, &hdr_len);
		if (total == 0)
			goto out;
		struct faulty_request *rec =
			faulty_record(f, buf, hdr_len, total, answer, sizeof(answer), &close_after,
				      &mode);
		if (rec == NULL)
			goto out;
		int status = rec->status;
		if (faulty_append(f, rec) != 0)
			goto out;
		if (status == 0) {
			/* The mode the record was made in decides: no answer. */
			if (mode == FAULTY_BLACKHOLE)
				faulty_hold(c, fd);
			reset = mode == FAULTY_RESET;
			goto out;
		}
		if (faulty_send_all(fd, answer, strlen(answer)) != 0 || close_after)
			goto out;
		memmove(buf, buf + total, have - total);
		have -= total;
	}
out:
	free(buf);
	faulty_conn_close(c, reset);
	atomic_store(&c->done, 1);
	return NULL;
}

/* Joins and frees finished connection threads (all of them when all). */
static void faulty_reap(struct faulty *f, int all)
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
		faulty_close_reset(fd);
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
