/*
 * http_probe.h — the operations routes, part of the intake (not an
 * interface for other modules): GET /healthz, GET /readyz and GET /metrics.
 * They are registered on the public listeners when admin_listen is not
 * set, else on the admin listener alone (http_admin.h).
 *
 * /healthz is liveness: 200 "ok" while the process serves, 503 "stopping"
 * once the intake drains (a load balancer takes the node out). /readyz is
 * readiness (readiness.h): 200 when every check passes, 503 otherwise, a
 * JSON body naming each check either way. /metrics is the Prometheus page
 * (metrics.h), open unless a token is given (admin_token on the admin
 * listener): then it wants Authorization: Bearer TOKEN, else 401. The
 * probes never need a token, so kubelet and load balancer checks work
 * without credentials.
 *
 * Threads: handlers run on civetweb's workers of whichever context serves
 * them; the intake pointer is read under mu, and http_probe_detach (main
 * thread, before the intake is freed) makes them stop reading it.
 */
#ifndef EGOI_HTTP_PROBE_H
#define EGOI_HTTP_PROBE_H

#include <pthread.h>

#include <civetweb.h>

struct http_server;
struct pipeline_shared;

struct http_probe {
	pthread_mutex_t mu;
	struct pipeline_shared *sh;      /* borrowed */
	struct http_server *intake;      /* under mu; NULL once detached */
	int detached;                    /* under mu: the intake stops or is gone */
	const char *token;               /* Bearer for /metrics, borrowed; NULL = open */
};

/* 0, or -1 when the mutex cannot be made. */
int http_probe_init(struct http_probe *p, struct pipeline_shared *sh,
		    struct http_server *intake, const char *token);

/* The intake is stopping: answer "stopping" and never touch it again. */
void http_probe_detach(struct http_probe *p);

/* After the context serving p has stopped. p may be zeroed. */
void http_probe_free(struct http_probe *p);

/* Registers /healthz, /readyz and /metrics on ctx with p as their data. */
void http_probe_routes(struct mg_context *ctx, struct http_probe *p);

#endif
