/*
 * http_access.h — the intake's access line and request id.
 *
 * Every answer of the intake makes exactly one access line at info
 * (log_fields "request": method, path with every query value redacted,
 * status, bytes_in, bytes_out, duration_ms, events, rejected, remote,
 * request_id). A request begins in civetweb's begin_request callback (the
 * id is chosen, the clock starts), each answer the router writes records
 * its status and size (http_access_answered), and civetweb's end_request
 * callback writes the line — also for answers the handlers never saw.
 *
 * The request id: the client's X-Request-Id when it is 1 to
 * HTTP_ACCESS_ID_MAX token characters (RFC 9110 tchar), so a proxy's id
 * follows the request into this log, the outbox and dead letters;
 * otherwise 16 hex digits from the worker's xorshift64* state
 * (util_xorshift64s, seeded from RAND_bytes). It is answered as X-Request-Id on every answer the router
 * writes.
 *
 * Threads: a civetweb worker, on its own struct http_access.
 */
#ifndef EGOI_HTTP_ACCESS_H
#define EGOI_HTTP_ACCESS_H

#include <stddef.h>
#include <stdint.h>

#include <civetweb.h>

#define HTTP_ACCESS_ID_MAX 64

struct http_access {
	char rid[HTTP_ACCESS_ID_MAX + 1];
	double start;          /* clock_mono at begin */
	int active;            /* between begin and end */
	int status;            /* as answered by the router; 0 = civetweb's own */
	long long bytes_in;    /* body bytes read */
	size_t bytes_out;      /* head and body written */
	long long events;      /* accepted, -1 = no batch routed */
	long long rejected;
};

/* A request starts: picks its id (client's or *rng's), starts the clock. */
void http_access_begin(struct http_access *a, uint64_t *rng, const char *client_id);

/* The router wrote an answer of status, n bytes in all. */
void http_access_answered(struct http_access *a, int status, size_t n);

/* The request is over: writes its access line (status is civetweb's, used
 * when the router wrote no answer itself). a may be NULL (no worker state:
 * the line then has no request id). */
void http_access_end(struct http_access *a, const struct mg_request_info *ri, int status);

/* path (local_uri) and, when there is a query, "?" and each of its
 * name=value pairs with the value replaced by "REDACTED". */
void http_access_path(const char *uri, const char *query, char *out, size_t cap);

/* 1 when id is 1..HTTP_ACCESS_ID_MAX token characters. */
int http_access_id_ok(const char *id);

#endif
