/*
 * http_internal.h — shared by the intake's two files: http_server.c
 * (civetweb set-up, worker threads, stopping) and http.c (the request
 * handlers). Not an interface for other modules.
 */
#ifndef EGOI_HTTP_INTERNAL_H
#define EGOI_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <civetweb.h>

#include "http_access.h"
#include "http_drain.h"
#include "http_guard.h"
#include "http_probe.h"
#include "http_watchdog.h"
#include "pipeline.h"
#include "util_buf.h"

struct http_server {
	struct mg_context *ctx;
	struct http_watchdog *watchdog;
	struct http_guard *guard;     /* per-address cap and rate limit (http_guard.h) */
	struct http_drain drain;      /* handlers in flight; refuses them once stopping */
	struct pipeline_shared *sh;
	const struct config *cfg;     /* sh->cfg */
	char endpoint[512];
	char threads[24];             /* num_threads, as civetweb reads it */
	void *ssl_ctx;                /* civetweb's SSL_CTX (init_ssl), for readiness */
	struct http_probe probe;      /* /healthz, /readyz, /metrics here (no admin_listen) */
	struct http_admin *admin;     /* admin_listen's listener, or NULL */
};

/* A worker thread's own state, made in init_thread. */
struct http_worker {
	struct pipeline pipe;
	struct http_server *server;
	struct http_watchdog_slot slot;  /* body-read deadline */
	uint64_t rng;          /* xorshift state for request ids */
	struct http_access access;  /* the request being served (http_access.h) */
	/* request body (max: max_body + 1, the byte that tells a body too large);
	 * kept for the next request only up to HTTP_BODY_KEEP, freed when idle */
	struct util_buf body;
};

/* The endpoint's handler (civetweb callback; cbdata is the struct http_server);
 * the other routes are in http_probe.c. */
int http_on_batch(struct mg_connection *conn, void *cbdata);

#endif
