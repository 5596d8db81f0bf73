/*
 * http.c — the HTTPS intake's request handlers (see http.h; civetweb set-up
 * and worker threads are in http_server.c).
 *
 * Order of checks for the endpoint, cheapest and least revealing first:
 * before any handler, http_server.c's begin_request answers ambiguous
 * framing (400) and the per-address rate limit (429); then here
 * method (405), auth (401), content type (415), declared size (413), then
 * the body is read with a hard bound on bytes actually received (413), and
 * the batch goes through the pipeline (200/400/413/5xx). The secret never
 * reaches a log line: the access line (http_access.h) redacts every query
 * value. Every answer written here records its status and size for that
 * line and carries X-Request-Id.
 * Every answer of the endpoint is counted (requests_total, request_seconds)
 * in one place, http_on_batch, around the handler proper.
 *
 * GET /healthz, /readyz and /metrics are in http_probe.c: here unless
 * admin_listen moves them to the admin listener (http_admin.h). On the
 * public listeners they need no token, so a Prometheus scraper can use
 * /metrics as is, but like every route there they are subject to
 * allow_from (the guard applies it to every connection and request,
 * http_guard.h).
 * /metrics exposes counts and label values (forward names, hosts, write
 * paths, drop reasons), never payloads or URLs.
 *
 * Stopping (http_stop, http_drain.h): a batch request that starts once the
 * drain has begun is answered 503 with Connection: close before its body
 * is read, so nothing of it is committed and E-goi sends it again; one
 * already in flight is answered as usual, with Connection: close; /healthz
 * and /readyz answer 503.
 *
 * Threads: civetweb runs `threads` workers; one open connection holds one
 * worker while it lives, so the keep-alive and request timeouts are short.
 */
#include "http.h"
#include "clock.h"
#include "http_internal.h"

#include <civetweb.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_gen.h>

#include "config.h"
#include "config_reload.h"
#include "http_drain.h"
#include "http_hop.h"
#include "http_watchdog.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "util.h"

#define HTTP_HEAD_MAX 512

/*
 * A body must arrive within HTTP_BODY_BASE_S plus one second per
 * HTTP_BODY_RATE bytes of its Content-Length (of max_body when chunked);
 * http_watchdog.c enforces it, since civetweb's timeout applies to each
 * read and a trickling client would otherwise hold its worker for ever.
 */
#define HTTP_BODY_BASE_S 10.0
#define HTTP_BODY_RATE (64.0 * 1024)

/*
 * A body buffer above this is freed after its request instead of kept for
 * the worker's next one: batches of a few hundred events reuse theirs, and
 * 32 connections that once sent a large batch do not each pin it (an idle
 * worker frees its buffer whatever its size, http_server.c).
 */
#define HTTP_BODY_KEEP ((size_t)64 << 10)
#define HTTP_BODY_FIRST ((size_t)64 << 10)

_Static_assert(sizeof ((struct config *)0)->auth_token_sha256 == UTIL_SHA256_LEN,
	       "the configured token's digest is a SHA-256");

int http_token_matches(const char *presented, size_t len, const unsigned char *secret_sha256)
{
	unsigned char a[UTIL_SHA256_LEN];

	if (util_sha256(presented, len, a) != 0)
		return 0;
	return CRYPTO_memcmp(a, secret_sha256, sizeof a) == 0;
}

int http_token_equal(const char *presented, size_t len, const char *secret)
{
	unsigned char b[UTIL_SHA256_LEN];

	if (util_sha256(secret, strlen(secret), b) != 0)
		return 0;
	return http_token_matches(presented, len, b);
}

static const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	case 508: return "Loop Detected";
	default: return "Internal Server Error";
	}
}

/* Appends s to buf at *n unless that would pass HTTP_HEAD_MAX (then *n becomes SIZE_MAX). */
static void http_reply_put(char *buf, size_t *n, const char *s)
{
	size_t len = strlen(s);

	if (*n == SIZE_MAX || len >= HTTP_HEAD_MAX - *n) {
		*n = SIZE_MAX;
		return;
	}
	memcpy(buf + *n, s, len);
	*n += len;
}

/*
 * The status line and headers into buf (HTTP_HEAD_MAX bytes): their length,
 * or -1 when they do not fit. Pieces are copied, not formatted: one
 * snprintf with ten conversions was 3% of a batch-1 request's instructions.
 */
static int http_reply_head(char *buf, int status, const char *ctype, size_t len, const char *extra,
			   const char *rid, int close)
{
	char num[UTIL_DEC_SIZE];
	size_t n = 0;

	util_dec(num, (unsigned long long)status);
	http_reply_put(buf, &n, "HTTP/1.1 ");
	http_reply_put(buf, &n, num);
	http_reply_put(buf, &n, " ");
	http_reply_put(buf, &n, http_reason(status));
	http_reply_put(buf, &n, "\r\nContent-Type: ");
	http_reply_put(buf, &n, ctype);
	util_dec(num, len);
	http_reply_put(buf, &n, "\r\nContent-Length: ");
	http_reply_put(buf, &n, num);
	http_reply_put(buf, &n, "\r\nCache-Control: no-store\r\n");
	if (extra)
		http_reply_put(buf, &n, extra);
	if (rid) {
		http_reply_put(buf, &n, "X-Request-Id: ");
		http_reply_put(buf, &n, rid);
		http_reply_put(buf, &n, "\r\n");
	}
	if (close)
		http_reply_put(buf, &n, "Connection: close\r\n");
	http_reply_put(buf, &n, "\r\n");
	return n == SIZE_MAX ? -1 : (int)n;
}

/*
 * Sends a whole response in one write. close != 0 asks civetweb to drop
 * the connection afterwards (used when the request body was not read, and
 * while the intake stops).
 */
static void http_reply(struct mg_connection *conn, int status, const char *ctype,
		       const char *body, size_t len, int close, const char *extra)
{
	struct http_worker *w = mg_get_thread_pointer(conn);
	struct http_access *a = w && w->access.active ? &w->access : NULL;
	char stack[HTTP_HEAD_MAX + 512];
	char *buf = stack;
	size_t cap = sizeof stack;
	int head;

	if (len > sizeof stack - HTTP_HEAD_MAX) {
		cap = len + HTTP_HEAD_MAX;
		buf = malloc(cap);
		if (!buf)
			return;
	}
	head = http_reply_head(buf, status, ctype, len, extra, a ? a->rid : NULL, close);
	if (close)
		mg_disable_keep_alive(conn);
	if (head > 0) {
		memcpy(buf + head, body, len);
		http_access_answered(a, status, (size_t)head + len);
		if (mg_write(conn, buf, (size_t)head + len) < 0)
			log_msg(LOG_DEBUG, NULL, "client went away before the answer");
	}
	if (buf != stack)
		free(buf);
}

/* Answers {"error": reason} as JSON (yajl escapes the reason). */
static void http_reply_error(struct mg_connection *conn, int status, const char *reason,
			     int close, const char *extra)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *out;
	size_t len;

	if (!g)
		return;
	if (yajl_gen_map_open(g) == yajl_gen_status_ok &&
	    yajl_gen_string(g, (const unsigned char *)"error", 5) == yajl_gen_status_ok &&
	    yajl_gen_string(g, (const unsigned char *)reason, strlen(reason)) ==
		    yajl_gen_status_ok &&
	    yajl_gen_map_close(g) == yajl_gen_status_ok &&
	    yajl_gen_get_buf(g, &out, &len) == yajl_gen_status_ok)
		http_reply(conn, status, "application/json", (const char *)out, len, close, extra);
	yajl_gen_free(g);
}

/* Finds the token in X-Router-Token, Authorization: Bearer, or ?token=. */
static int http_authorized(struct mg_connection *conn, const struct config *cfg)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *h;
	char q[512];
	int n;

	if (cfg->auth_disabled)
		return 1;
	h = mg_get_header(conn, "X-Router-Token");
	if (h)
		return http_token_matches(h, strlen(h), cfg->auth_token_sha256);
	h = mg_get_header(conn, "Authorization");
	if (h && strncasecmp(h, "Bearer ", 7) == 0) {
		h += 7;
		while (*h == ' ')
			h++;
		return http_token_matches(h, strlen(h), cfg->auth_token_sha256);
	}
	if (ri->query_string) {
		int ok;

		n = mg_get_var(ri->query_string, strlen(ri->query_string), "token", q, sizeof q);
		ok = n >= 0 && http_token_matches(q, (size_t)n, cfg->auth_token_sha256);
		explicit_bzero(q, sizeof q);  /* a copy of the secret */
		return ok;
	}
	return 0;
}

/* application/json or application/<anything>+json, parameters allowed. */
static int http_is_json(const char *ctype)
{
	size_t n;

	if (!ctype)
		return 0;
	n = strcspn(ctype, ";");
	while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
		n--;
	if (n == 16 && strncasecmp(ctype, "application/json", 16) == 0)
		return 1;
	return n > 17 && strncasecmp(ctype, "application/", 12) == 0 &&
	       strncasecmp(ctype + n - 5, "+json", 5) == 0;
}

/*
 * Reads the body into w->body, never more than max + 1 bytes whatever
 * Content-Length says. Returns the length, -1 on a read error or a body
 * shorter than its Content-Length, -2 if larger than max. A declared
 * length (at most max, checked before) is allocated at once: no regrowth
 * copies while a large batch arrives.
 */
static long long http_read_body(struct mg_connection *conn, struct http_worker *w, size_t max,
				long long declared, double min_rate)
{
	struct util_buf *b = &w->body;
	size_t piece = http_watchdog_read_piece(min_rate);

	util_buf_reset(b);
	b->max = max + 1;
	if (declared >= 0 && util_buf_reserve(b, (size_t)declared + 1) < 0)
		return -1;
	for (;;) {
		size_t room;
		int n;

		if (b->len + 1 >= b->cap) {   /* full (the NUL's byte aside): grow */
			size_t more = b->len ? b->len : HTTP_BODY_FIRST;

			if (more > b->max - b->len)
				more = b->max - b->len;
			if (util_buf_reserve(b, more) < 0)
				return -1;
		}
		room = b->cap - 1 - b->len;
		/* mg_read returns only once it has all it was asked for: pieces
		 * let the watchdog see the body's rate. */
		n = mg_read(conn, b->p + b->len, room < piece ? room : piece);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		b->len += (size_t)n;
		http_watchdog_progress(&w->slot, (size_t)n);
		if (b->len > max)
			return -2;
	}
	/* mg_read also returns 0 when a read times out: a short body is not a batch. */
	if (declared >= 0 && (long long)b->len != declared)
		return -1;
	b->p[b->len] = '\0';
	return (long long)b->len;
}

/* The endpoint proper: answers and returns the status it answered. */
/*
 * Phase 1, before the body is read: method, token, hop count, content type
 * and declared size. 0 to go on, else the status it answered (with close:
 * civetweb would otherwise read and discard any body first).
 */
static int http_batch_admit(struct mg_connection *conn, const struct config *cfg,
			    struct http_worker *w, const struct mg_request_info *ri,
			    const char *rid)
{
	const char *hop_reason;
	int n;

	if (strcmp(ri->request_method, "POST") != 0) {
		http_reply_error(conn, 405, "only POST is accepted here", 1, "Allow: POST\r\n");
		return 405;
	}
	if (!http_authorized(conn, cfg)) {
		log_msg(LOG_INFO, rid, "401 from %s: missing or wrong token", ri->remote_addr);
		http_reply_error(conn, 401, "unauthorized", 1, "WWW-Authenticate: Bearer\r\n");
		return 401;
	}
	if ((n = http_hop_check(mg_get_header(conn, "X-Router-Hop"), cfg->max_hops, &w->pipe.hop,
				&hop_reason)) != 0) {
		if (n == 508) {
			metrics_loop_refused();
			log_msg(LOG_WARN, rid, "508 from %s: X-Router-Hop %ld reached max_hops %ld",
				ri->remote_addr, w->pipe.hop, cfg->max_hops);
		}
		http_reply_error(conn, n, hop_reason, 1, NULL);
		return n;
	}
	if (!http_is_json(mg_get_header(conn, "Content-Type"))) {
		http_reply_error(conn, 415, "Content-Type must be application/json", 1, NULL);
		return 415;
	}
	if (ri->content_length > (long long)cfg->max_body) {
		http_reply_error(conn, 413, "body larger than max_body", 1, NULL);
		return 413;
	}
	return 0;
}

/*
 * Phase 2: reads the body into w->body under the watchdog. 0 with *len
 * set, else the status it answered.
 */
static int http_batch_receive(struct mg_connection *conn, const struct config *cfg,
			      struct http_worker *w, const struct mg_request_info *ri,
			      const char *rid, size_t *len)
{
	long long expect, got;

	expect = ri->content_length >= 0 ? ri->content_length : (long long)cfg->max_body;
	http_watchdog_arm(&w->slot, ri->remote_addr, ri->remote_port,
			  clock_mono() + HTTP_BODY_BASE_S + (double)expect / HTTP_BODY_RATE,
			  (double)cfg->min_body_rate, expect);
	got = http_read_body(conn, w, cfg->max_body, ri->content_length,
			     (double)cfg->min_body_rate);
	if (http_watchdog_disarm(&w->slot)) {
		metrics_refused(METRICS_REFUSED_SLOW_BODY);
		log_msg(LOG_INFO, rid, "request body from %s too slow, connection closed",
			ri->remote_addr);
		http_reply_error(conn, 408, "request body too slow", 1, NULL);
		return 408;
	}
	if (got == -2) {
		http_reply_error(conn, 413, "body larger than max_body", 1, NULL);
		return 413;
	}
	if (got < 0) {
		log_msg(LOG_INFO, rid, "request body from %s incomplete or unreadable",
			ri->remote_addr);
		http_reply_error(conn, 400, "request body incomplete", 1, NULL);
		return 400;
	}
	*len = (size_t)got;
	w->access.bytes_in = got;
	return 0;
}

/* The answer's two counts fit whatever they are: 12 + 20 + 12 + 20 + "}" + NUL. */
#define HTTP_ANSWER_MAX 66

/* {"accepted":A,"rejected":R} into out (HTTP_ANSWER_MAX bytes): its length. */
static size_t http_answer_counts(char *out, size_t accepted, size_t rejected)
{
	size_t n = 12;

	memcpy(out, "{\"accepted\":", 12);
	n += util_dec(out + n, accepted);
	memcpy(out + n, ",\"rejected\":", 12);
	n += 12;
	n += util_dec(out + n, rejected);
	out[n++] = '}';
	out[n] = '\0';
	return n;
}

/* Phase 3: routes and commits the batch, then answers; returns the status. */
static int http_batch_route(struct mg_connection *conn, struct http_server *s,
			    struct http_worker *w, const struct mg_request_info *ri,
			    const char *rid, size_t len, double received_at)
{
	struct pipeline_result res;
	char answer[HTTP_ANSWER_MAX];
	size_t n;

	pipeline_process(&w->pipe, w->body.p, len, received_at, ri->remote_addr, rid, &res);
	w->access.events = (long long)res.accepted;
	w->access.rejected = (long long)res.rejected;
	if (res.http_status != 200) {
		log_msg(res.http_status >= 500 ? LOG_ERROR : LOG_INFO, rid, "%d from %s: %s",
			res.http_status, ri->remote_addr, res.error);
		/* 4xx reasons help the sender; 5xx details (paths, Lua or SQLite
		 * messages) stay in the log, found by the request id. */
		if (res.http_status >= 500)
			snprintf(res.error, sizeof res.error,
				 "internal error, batch not accepted (request id %s)", rid);
		http_reply_error(conn, res.http_status, res.error, http_drain_stopping(&s->drain),
				 NULL);
		return res.http_status;
	}
	log_msg(LOG_DEBUG, rid,
		"batch from %s: %zu accepted, %zu rejected, %zu forwards, %zu writes, %zu dead letters",
		ri->remote_addr, res.accepted, res.rejected, res.summary.forwards, res.summary.writes,
		res.summary.dead_letters);
	n = http_answer_counts(answer, res.accepted, res.rejected);
	/* While stopping, the sender must not send its next batch on this
	 * connection: it would be refused, or meet the connection's close. */
	http_reply(conn, 200, "application/json", answer, n,
		   http_drain_stopping(&s->drain), NULL);
	return 200;
}

static int http_batch(struct mg_connection *conn, void *cbdata)
{
	struct http_server *s = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct http_worker *w = mg_get_thread_pointer(conn);
	struct config_snap *snap;
	const struct config *cfg;
	const char *rid;
	double received_at;
	size_t len = 0;
	int status;

	if (!w) {
		http_reply_error(conn, 500, "worker not initialised", 1, NULL);
		return 500;
	}
	received_at = clock_wall();
	if (!w->access.active)   /* begin_request always starts it; never unnamed */
		http_access_begin(&w->access, &w->rng, NULL);
	rid = w->access.rid;
	/* One config from start to end of the request, whatever a SIGHUP
	 * publishes meanwhile (config_reload.h); the worker's pipeline reads
	 * it too (limits, the rules' Lua limits when it builds a generation). */
	snap = config_snap_acquire();
	cfg = snap ? &snap->cfg : s->cfg;
	w->pipe.cfg = cfg;
	if ((status = http_batch_admit(conn, cfg, w, ri, rid)) == 0 &&
	    (status = http_batch_receive(conn, cfg, w, ri, rid, &len)) == 0)
		status = http_batch_route(conn, s, w, ri, rid, len, received_at);
	/* A large body must not stay pinned in every worker that once read one. */
	if (w->body.cap > HTTP_BODY_KEEP)
		util_buf_free(&w->body);
	w->pipe.cfg = s->cfg;
	config_snap_release(snap);
	return status;
}

/*
 * Every batch handler passes the drain gate (http_drain.h): once the
 * intake is stopping, a request that had not started is answered 503
 * before anything is read or committed, and its connection closed; one
 * that had started goes on to its answer, which http_stop waits for.
 */
int http_on_batch(struct mg_connection *conn, void *cbdata)
{
	struct http_server *s = cbdata;
	double start = clock_mono();
	int status;

	if (http_drain_enter(&s->drain)) {
		status = http_batch(conn, cbdata);
		http_drain_leave(&s->drain);   /* after the answer: it has been written */
	} else {
		http_reply_error(conn, 503, "shutting down, batch not accepted; send it again", 1,
				 "Retry-After: 5\r\n");
		status = 503;
	}
	metrics_request(status, clock_mono() - start);
	return status;
}
