/*
 * http_admin.h — the admin listener (admin_listen): /metrics, /healthz and
 * /readyz over plain HTTP, away from the public endpoint (http_probe.h has
 * the routes; the public listeners then serve the webhook endpoint alone).
 *
 * A second civetweb context with its own HTTP_ADMIN_THREADS workers, so
 * connections to the public port (however many, however slow) cannot keep
 * a probe or a scrape waiting. Neither allow_from (the senders' addresses,
 * not the monitoring network's), the per-address connection cap (TLS
 * listeners only) nor the rate limit (the endpoint only) apply to it: its
 * bind address is what restricts it, with admin_token for /metrics. Later
 * admin pages (a status console) belong here too.
 *
 * It starts after the intake (http_start), so after civetweb's drop to
 * run_as_user: a port below 1024 then needs CAP_NET_BIND_SERVICE.
 *
 * Threads: start, detach and stop on the main thread (from http_start and
 * http_stop); the handlers on the context's workers.
 */
#ifndef EGOI_HTTP_ADMIN_H
#define EGOI_HTTP_ADMIN_H

#include <stddef.h>

struct config;
struct http_admin;
struct http_server;
struct pipeline_shared;

#define HTTP_ADMIN_THREADS 4

/*
 * Validates admin_listen (plain ports: PORT or ADDRESS:PORT, comma-separated,
 * no 's' TLS suffix) and admin_token (only with admin_listen). 0, or -1 with
 * err, so `check` refuses what `run` would.
 */
int http_admin_check(const struct config *cfg, char *err, size_t errlen);

/* Binds admin_listen and starts serving; sh and intake are borrowed and
 * must outlive it (see http_admin_detach). NULL with err. */
struct http_admin *http_admin_start(struct pipeline_shared *sh, struct http_server *intake,
				    char *err, size_t errlen);

/* The intake is about to stop: from now on /healthz and /readyz answer 503
 * "stopping" without looking at it. a may be NULL. */
void http_admin_detach(struct http_admin *a);

/* Stops the context and frees a. a may be NULL. */
void http_admin_stop(struct http_admin *a);

/* The first admin port, or -1. */
int http_admin_port(const struct http_admin *a);

#endif
