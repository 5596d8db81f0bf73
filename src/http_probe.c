/*
 * http_probe.c — GET /healthz, /readyz and /metrics (see http_probe.h).
 *
 * Every answer is one mg_write with Content-Length and Cache-Control:
 * no-store (a cached probe answer is a wrong one).
 */
#include "http_probe.h"
#include "tls_cert.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "clock.h"
#include "config.h"
#include "http.h"
#include "http_internal.h"
#include "metrics.h"
#include "readiness.h"

int http_probe_init(struct http_probe *p, struct pipeline_shared *sh,
		    struct http_server *intake, const char *token)
{
	memset(p, 0, sizeof *p);
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		return -1;
	p->sh = sh;   /* set: http_probe_free destroys the mutex */
	p->intake = intake;
	p->token = token;
	return 0;
}

void http_probe_detach(struct http_probe *p)
{
	pthread_mutex_lock(&p->mu);
	p->detached = 1;
	p->intake = NULL;
	pthread_mutex_unlock(&p->mu);
}

void http_probe_free(struct http_probe *p)
{
	if (p && p->sh)
		pthread_mutex_destroy(&p->mu);
}

/* The whole answer in one mg_write (over TLS, one record), as http.c does. */
static void http_probe_reply(struct mg_connection *conn, int status, const char *reason,
			     const char *ctype, const char *body, size_t len, const char *extra)
{
	char *buf = malloc(len + 384);
	int n;

	if (!buf)
		return;
	n = snprintf(buf, 384,
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		     "Cache-Control: no-store\r\n%s\r\n",
		     status, reason, ctype, len, extra ? extra : "");
	if (n > 0 && n < 384) {
		memcpy(buf + n, body, len);
		(void)mg_write(conn, buf, (size_t)n + len);  /* < 0: the client went away */
	}
	free(buf);
}

/* 1 while the intake drains (or is gone). Call with p->mu held. */
static int http_probe_stopping_locked(struct http_probe *p)
{
	return p->detached || !p->intake || http_drain_stopping(&p->intake->drain);
}

/*
 * TLS state of the intake: 1 up, 0 not configured (listen has no 's'
 * port), -1 with why. Call with p->mu held.
 */
static int http_probe_tls_locked(struct http_probe *p, char *why, size_t len)
{
	struct mg_server_port ports[8];
	struct http_server *s = p->intake;
	const char *fault = NULL;
	int n, tls = 0;

	if (s && !strchr(s->cfg->listen, 's'))
		return 0;   /* the same test http_options makes to set TLS up */
	if (!s) {
		fault = "the intake is not running";
	} else if (!s->ssl_ctx) {
		fault = "the TLS context is not initialised";
	} else if (!tls_cert_active()) {
		/* the pair is handed to each handshake by tls_cert.c, not kept in
		 * civetweb's context */
		fault = "no certificate is loaded";
	} else if (tls_cert_expiry() >= 0 && tls_cert_expiry() < (long)time(NULL)) {
		fault = "the certificate served has expired";
	} else {
		n = mg_get_server_ports(s->ctx, 8, ports);
		for (int i = 0; i < n; i++)
			tls += ports[i].is_ssl != 0;
		if (tls == 0)
			fault = "no TLS port is listening";
	}
	if (fault) {
		snprintf(why, len, "%s", fault);
		return -1;
	}
	return 1;
}

static int http_probe_healthz(struct mg_connection *conn, void *cbdata)
{
	struct http_probe *p = cbdata;
	int stopping;

	pthread_mutex_lock(&p->mu);
	stopping = http_probe_stopping_locked(p);
	pthread_mutex_unlock(&p->mu);
	if (stopping) {
		mg_disable_keep_alive(conn);
		http_probe_reply(conn, 503, "Service Unavailable", "text/plain", "stopping", 8,
				 "Connection: close\r\n");
		return 503;
	}
	http_probe_reply(conn, 200, "OK", "text/plain", "ok", 2, NULL);
	return 200;
}

static int http_probe_readyz(struct mg_connection *conn, void *cbdata)
{
	struct http_probe *p = cbdata;
	struct readiness_facts f;
	struct readiness_report r;
	char *body = NULL;
	size_t len = 0;

	readiness_gather(p->sh, &f);
	pthread_mutex_lock(&p->mu);
	f.stopping = http_probe_stopping_locked(p);
	if (f.stopping) {   /* the listeners are closing (or gone): not up */
		f.tls = -1;
		snprintf(f.tls_why, sizeof f.tls_why, "the intake is stopping");
	} else {
		f.tls = http_probe_tls_locked(p, f.tls_why, sizeof f.tls_why);
	}
	pthread_mutex_unlock(&p->mu);
	readiness_judge(&f, clock_mono(), &r);
	if (readiness_json(&r, &body, &len) < 0) {
		http_probe_reply(conn, 500, "Internal Server Error", "text/plain", "out of memory",
				 13, NULL);
		return 500;
	}
	if (r.ready)
		http_probe_reply(conn, 200, "OK", "application/json", body, len, NULL);
	else
		http_probe_reply(conn, 503, "Service Unavailable", "application/json", body, len,
				 NULL);
	free(body);
	return r.ready ? 200 : 503;
}

/* Authorization: Bearer TOKEN, compared in constant time (http.h). */
static int http_probe_authorized(struct mg_connection *conn, const char *token)
{
	const char *h;

	if (!token)
		return 1;
	h = mg_get_header(conn, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	return http_token_equal(h, strlen(h), token);
}

static int http_probe_metrics(struct mg_connection *conn, void *cbdata)
{
	struct http_probe *p = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	static const char json405[] = "{\"error\":\"only GET is accepted here\"}";
	static const char json401[] = "{\"error\":\"unauthorized\"}";
	static const char json500[] = "{\"error\":\"out of memory\"}";
	char *text = NULL;
	size_t len = 0;

	if (strcmp(ri->request_method, "GET") != 0) {
		mg_disable_keep_alive(conn);
		http_probe_reply(conn, 405, "Method Not Allowed", "application/json", json405,
				 sizeof json405 - 1, "Allow: GET\r\nConnection: close\r\n");
		return 405;
	}
	if (!http_probe_authorized(conn, p->token)) {
		http_probe_reply(conn, 401, "Unauthorized", "application/json", json401,
				 sizeof json401 - 1, "WWW-Authenticate: Bearer\r\n");
		return 401;
	}
	if (metrics_render(&text, &len) < 0) {
		http_probe_reply(conn, 500, "Internal Server Error", "application/json", json500,
				 sizeof json500 - 1, NULL);
		return 500;
	}
	http_probe_reply(conn, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len,
			 NULL);
	free(text);
	return 200;
}

void http_probe_routes(struct mg_context *ctx, struct http_probe *p)
{
	/* "$" anchors the match: /healthz/x is not /healthz */
	mg_set_request_handler(ctx, "/healthz$", http_probe_healthz, p);
	mg_set_request_handler(ctx, "/readyz$", http_probe_readyz, p);
	mg_set_request_handler(ctx, "/metrics$", http_probe_metrics, p);
}
