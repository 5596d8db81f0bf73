/*
 * receiver.h — the end-to-end tests' webhook receiver: an in-process civetweb
 * plain-HTTP server on 127.0.0.1 (ephemeral port) that records every request
 * the daemon forwards and answers with a scriptable status.
 *
 * Design: each request is copied into a heap record (method, uri, headers,
 * body) appended to a list under a mutex; records are never moved or freed
 * before receiver_stop, so pointers returned by receiver_get stay valid.
 * Statuses come from a queue (receiver_script) and, when it is empty, from
 * the default status (200 unless changed).
 *
 * Threads: civetweb workers write the list; the test thread reads it. Every
 * function here is safe to call from the test thread while requests arrive.
 */
#ifndef E2E_RECEIVER_H
#define E2E_RECEIVER_H

#include <stddef.h>

struct recv_header {
	char *name;
	char *value;
};

/* One recorded request; owned by the receiver until receiver_stop. */
struct recv_request {
	char *method;
	char *uri;                 /* path and query as sent */
	struct recv_header *headers;
	size_t nheaders;
	char *body;                /* NUL-terminated copy; body_len bytes of content */
	size_t body_len;
	int status;                /* what the receiver answered */
};

struct receiver;

/* Starts on 127.0.0.1:0. NULL on failure (message on stderr). */
struct receiver *receiver_start(void);

/* Stops the server and frees every record; r may be NULL. */
void receiver_stop(struct receiver *r);

/* The bound port. */
int receiver_port(const struct receiver *r);

/* Writes "http://127.0.0.1:PORT" into buf. */
void receiver_url(const struct receiver *r, char *buf, size_t len);

/* Queues statuses for the next requests, in order (at most 32 queued). */
void receiver_script(struct receiver *r, const int *statuses, size_t n);

/* Status answered when the queue is empty. */
void receiver_set_default(struct receiver *r, int status);

/* Number of requests recorded so far. */
size_t receiver_count(struct receiver *r);

/* Waits until at least n requests were recorded, polling every 50 ms for at
 * most timeout_ms. Returns 0 when reached, -1 on timeout. */
int receiver_wait(struct receiver *r, size_t n, long timeout_ms);

/* The i-th recorded request (0-based), or NULL. Valid until receiver_stop. */
const struct recv_request *receiver_get(struct receiver *r, size_t i);

/* The first recorded request whose uri equals uri, or NULL. */
const struct recv_request *receiver_find(struct receiver *r, const char *uri);

/* Value of a header (case-insensitive name), or NULL. */
const char *recv_header(const struct recv_request *q, const char *name);

#endif
