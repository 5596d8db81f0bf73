/*
 * faulty_conn.c — one connection of the fault destination (see faulty.h):
 * reads requests (headers, then Content-Length bytes of body; answers
 * "Expect: 100-continue" unless black-holing), records each one, then
 * answers, holds or drops the connection as the mode of that moment says.
 *
 * Design: every wait is a 100 ms poll that also checks faulty_stop and the
 * mode, so a connection notices FAULTY_REFUSE (the server "dies") or the
 * end of a black hole promptly. The record is appended before the answer
 * is written, so whatever the daemon does after reading an answer, the
 * test already sees the record. The fd is closed under the mutex and set
 * to -1, so faulty_stop never shuts down a number reused since.
 *
 * Threads: one per connection; shared state only under f->mu.
 */
#include "e2e/faulty_internal.h"
#include "clock.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

void faulty_conn_reset(int fd)
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
			faulty_conn_reset(c->fd);
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

void *faulty_conn_main(void *arg)
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
