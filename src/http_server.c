/*
 * http_server.c — civetweb set-up for the intake (see http.h): TLS library
 * start, listening options (TLS versions and ciphers, mTLS, timeouts,
 * keep-alive, TCP_NODELAY), one struct http_worker per worker
 * thread (init_thread / exit_thread), the per-address guard's hooks
 * (init_ssl; http_guard.h), the checks every request passes before its
 * handler (begin_request: allow_from, framing, rate limit), and a stop
 * that first drains the requests in flight
 * (http_drain.h).
 *
 * Threads: http_start and http_stop run on the main thread; the thread
 * callbacks on civetweb's workers.
 */
#include "http.h"
#include "http_internal.h"
#include "clock.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "http_admin.h"
#include "http_guard.h"
#include "log.h"
#include "rules.h"
#include "metrics.h"
#include "tls_cert.h"

int http_library_init(char *err, size_t errlen)
{
	unsigned want = MG_FEATURES_TLS;

	if ((mg_init_library(want) & want) != want) {
		snprintf(err, errlen, "TLS did not initialise in civetweb (OpenSSL could not be "
				      "loaded: the libssl.so/libcrypto.so shims belong in lib/ beside "
				      "the binary, or in ../lib/egoi-router/ when installed)");
		return -1;
	}
	return 0;
}

static void *http_init_thread(const struct mg_context *ctx, int thread_type)
{
	struct http_server *s = mg_get_user_data(ctx);
	struct http_worker *w;
	char err[256];

	if (thread_type != 1)
		return NULL;
	w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	pipeline_init(&w->pipe, s->sh);
	/* Before this worker serves, as the user civetweb runs it as (after
	 * run_as_user's drop); a failure is logged and its first batch tries
	 * again (and answers 500 if it still cannot). */
	if (pipeline_open_files(&w->pipe, err, sizeof err) < 0)
		log_msg(LOG_ERROR, NULL, "worker set-up: %s", err);
	w->server = s;
	http_watchdog_register(s->watchdog, &w->slot);
	if (RAND_bytes((unsigned char *)&w->rng, sizeof w->rng) != 1 || w->rng == 0)
		w->rng = (uint64_t)(uintptr_t)w ^ (uint64_t)time(NULL) ^ 0x9e3779b97f4a7c15ULL;
	return w;
}

static void http_exit_thread(const struct mg_context *ctx, int thread_type, void *ptr)
{
	struct http_worker *w = ptr;

	(void)ctx;
	(void)thread_type;
	if (!w)
		return;
	http_watchdog_unregister(w->server->watchdog, &w->slot);
	pipeline_free(&w->pipe);
	util_buf_free(&w->body);
	free(w);
}

/* A closing connection frees its worker (civetweb calls this in the worker's
 * thread): the worker may now wait long for another, so its per-batch
 * arrays and body buffer go (the shared Lua states shrink once quiet). */
static void http_connection_close(const struct mg_connection *conn)
{
	struct http_worker *w = mg_get_thread_pointer(conn);

	if (w) {
		pipeline_idle(&w->pipe);
		util_buf_free(&w->body);
	}
}

static int http_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	/* A connection the guard cut at its handshake: civetweb then reports the
	 * failed handshake, which the guard has already counted and logged. */
	if (http_guard_conn_was_cut())
		return 1;
	/* A client that connects and leaves (or speaks plain HTTP to a TLS port)
	 * makes civetweb say "sslize error:" with no detail: routine, not a fault.
	 * Both kinds are written once per LOG_REPEAT_S with a count (log.h). */
	if (strncmp(message, "sslize error", 12) == 0)
		log_limited(LOG_INFO, "TLS handshake failed", NULL, 0, "TLS handshake failed%s",
			    message + 12);
	else
		log_limited(LOG_WARN, message, NULL, 0, "http: %s", message);
	return 1;
}

/* civetweb's SSL_CTX is ready: the guard hooks the start of each handshake,
 * tls_cert.h the certificate (civetweb is given none, so reloads can swap it). */
static int http_init_ssl(void *ssl_ctx, void *user_data)
{
	struct http_server *s = user_data;

	s->ssl_ctx = ssl_ctx;
	if (tls_cert_install(ssl_ctx) < 0)
		return -1;
	return http_guard_install(s->guard, ssl_ctx) == 0 ? 0 : -1;
}

/* A connection's TLS handshake is done (or it is plain HTTP): HTTP starts. */
static int http_init_connection(const struct mg_connection *conn, void **conn_data)
{
	(void)conn;
	(void)conn_data;
	http_guard_conn_clear();
	return 0;
}

/* RFC 9112 section 6.3: 1*DIGIT, nothing else (no sign, no "29x"). */
static int http_digits_only(const char *v)
{
	if (!v || !*v)
		return 0;
	for (; *v; v++)
		if (*v < '0' || *v > '9')
			return 0;
	return 1;
}

/* Answers status before the handler runs, body unread, connection closed. */
static int http_early_reply(struct mg_connection *conn, int status, const char *reason,
			    const char *json, const char *extra)
{
	struct http_worker *w = mg_get_thread_pointer(conn);
	int n;

	mg_disable_keep_alive(conn);
	n = mg_printf(conn, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		      "Content-Length: %zu\r\nCache-Control: no-store\r\n%sX-Request-Id: %s\r\n"
		      "Connection: close\r\n\r\n%s",
		      status, reason, strlen(json), extra ? extra : "",
		      w ? w->access.rid : "-", json);
	if (w)
		http_access_answered(&w->access, status, n > 0 ? (size_t)n : 0);
	return status;
}

/* The request's access line (http_access.h), whoever answered it. */
static void http_end_request(const struct mg_connection *conn, int status)
{
	struct http_worker *w = mg_get_thread_pointer(conn);

	http_access_end(w ? &w->access : NULL, mg_get_request_info(conn), status);
}

/*
 * Every request, once its headers are read and before any handler or body
 * read. allow_from (403): the handshake applied it to TLS connections, this
 * applies it to plain HTTP and to connections a reload has since left out.
 * Framing: a request with two Content-Length fields, one that is not
 * plain digits ("29x", "+29"), or Content-Length beside Transfer-Encoding is
 * answered 400, so the router never reads a body other than a proxy in
 * front of it would. Then the endpoint's per-address rate limit (429).
 */
static int http_begin_request(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct http_server *s = ri->user_data;
	int lengths = 0, encodings = 0, bad = 0, endpoint;
	double start = clock_mono();
	struct http_worker *w = mg_get_thread_pointer(conn);
	long retry = 1;
	char extra[48];

	if (w)
		http_access_begin(&w->access, &w->rng, mg_get_header(conn, "X-Request-Id"));

	if (!http_guard_allow_address(s->guard, ri->remote_addr))
		return http_early_reply(conn, 403, "Forbidden",
					"{\"error\":\"address not allowed\"}", NULL);
	for (int i = 0; i < ri->num_headers; i++) {
		const char *name = ri->http_headers[i].name;

		if (strcasecmp(name, "Content-Length") == 0) {
			lengths++;
			bad |= !http_digits_only(ri->http_headers[i].value);
		} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
			encodings++;
		}
	}
	endpoint = ri->local_uri && strcmp(ri->local_uri, s->cfg->endpoint) == 0;
	if (bad || lengths > 1 || (lengths && encodings)) {
		metrics_refused(METRICS_REFUSED_FRAMING);
		log_msg(LOG_INFO, w ? w->access.rid : NULL,
			"400 from %s: invalid or conflicting Content-Length", ri->remote_addr);
		http_early_reply(conn, 400, "Bad Request",
				 "{\"error\":\"invalid or conflicting Content-Length\"}", NULL);
		if (endpoint)
			metrics_request(400, clock_mono() - start);
		return 400;
	}
	if (endpoint && !http_guard_allow_request(s->guard, ri->remote_addr, &retry)) {
		snprintf(extra, sizeof extra, "Retry-After: %ld\r\n", retry);
		http_early_reply(conn, 429, "Too Many Requests",
				 "{\"error\":\"rate limit exceeded\"}", extra);
		metrics_request(429, clock_mono() - start);
		return 429;
	}
	return 0;
}

/* Room for every civetweb option http_options sets, name and value. */
#define HTTP_OPTS_MAX 40

/*
 * civetweb's options from the config: listening, threads, timeouts, TLS,
 * run_as_user. Values point into cfg and s->threads. allow_from is the
 * guard's (http_guard.h), not civetweb's access_control_list, so that a
 * reload can change it.
 */
static int http_options(struct http_server *s, const char **opts, char *err, size_t errlen)
{
	const struct config *cfg = s->cfg;
	int n = 0;

	(void)err;      /* no option fails today (the allowlist was the one that could) */
	(void)errlen;
	snprintf(s->threads, sizeof s->threads, "%ld", cfg->threads);
	opts[n++] = "listening_ports";       opts[n++] = cfg->listen;
	opts[n++] = "num_threads";           opts[n++] = s->threads;
	opts[n++] = "enable_keep_alive";     opts[n++] = "yes";
	/* Each open connection holds a worker thread: idle or slow ones go fast. */
	opts[n++] = "keep_alive_timeout_ms"; opts[n++] = "5000";
	opts[n++] = "request_timeout_ms";    opts[n++] = "5000";
	opts[n++] = "tcp_nodelay";           opts[n++] = "1";
	/*
	 * civetweb's defaults (a 200-entry listen backlog, a 20-entry queue
	 * between its accept thread and the workers) let a connection flood
	 * fill the kernel's accept queue while the accept thread waits on the
	 * full queue: a legitimate client's SYN is then dropped and retried
	 * only after the 1 s initial retransmission timeout. Connections over
	 * the per-address cap are refused in microseconds, so deep queues
	 * drain fast; the queue costs a few dozen bytes an entry.
	 */
	opts[n++] = "listen_backlog";        opts[n++] = "4096";
	opts[n++] = "connection_queue";      opts[n++] = "1024";
	opts[n++] = "max_request_size";      opts[n++] = "16384";
	opts[n++] = "decode_url";            opts[n++] = "yes";
	opts[n++] = "enable_auth_domain_check"; opts[n++] = "no";
	if (strchr(cfg->listen, 's')) {
		/* civetweb: 4 = TLS 1.2 and newer, 5 = TLS 1.3 only */
		opts[n++] = "ssl_protocol_version"; opts[n++] =
			strcmp(cfg->tls_min_version, "1.3") == 0 ? "5" : "4";
		opts[n++] = "ssl_cipher_list";
		opts[n++] = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:!aNULL:!eNULL:!MD5:!SHA1";
		if (cfg->tls_client_ca) {
			opts[n++] = "ssl_ca_file";     opts[n++] = cfg->tls_client_ca;
			opts[n++] = "ssl_verify_peer"; opts[n++] = "yes";
		}
	}
	/* civetweb binds the ports, then setgid, clears the supplementary
	 * groups and setuid (every thread of the process), then starts its
	 * threads: the workers never run as root (privs.h). */
	if (cfg->run_as_user) {
		opts[n++] = "run_as_user"; opts[n++] = cfg->run_as_user;
	}
	opts[n] = NULL;
	return 0;
}

/* Binds, drops privileges, starts civetweb's threads; then the watchdog
 * learns the ports its probe must not take for a request. */
static int http_listen(struct http_server *s, const char **opts, char *err, size_t errlen)
{
	struct mg_callbacks cb;
	struct mg_init_data init;
	struct mg_error_data error;
	struct mg_server_port ports[8];
	char cerr[256] = "";
	int nports, nums[8];

	memset(&cb, 0, sizeof cb);
	cb.init_thread = http_init_thread;
	cb.exit_thread = http_exit_thread;
	cb.connection_close = http_connection_close;
	cb.log_message = http_log_message;
	cb.init_ssl = http_init_ssl;
	cb.init_connection = http_init_connection;
	cb.begin_request = http_begin_request;
	cb.end_request = http_end_request;
	memset(&init, 0, sizeof init);
	init.callbacks = &cb;
	init.user_data = s;
	init.configuration_options = opts;
	memset(&error, 0, sizeof error);
	error.text = cerr;
	error.text_buffer_size = sizeof cerr;

	s->ctx = mg_start2(&init, &error);
	if (!s->ctx) {
		snprintf(err, errlen, "cannot start HTTP server on %s: %s", s->cfg->listen,
			 cerr[0] ? cerr : "unknown error");
		return -1;
	}
	nports = mg_get_server_ports(s->ctx, 8, ports);
	for (int i = 0; i < nports; i++)
		nums[i] = ports[i].port;
	http_watchdog_set_ports(s->watchdog, nums, nports > 0 ? nports : 0);
	return 0;
}

/* The routes; "$" anchors the match: /hooks/egoi/x is not the endpoint. With
 * admin_listen, /healthz, /readyz and /metrics are there alone (404 here). */
static void http_routes(struct http_server *s)
{
	snprintf(s->endpoint, sizeof s->endpoint, "%s$", s->cfg->endpoint);
	mg_set_request_handler(s->ctx, s->endpoint, http_on_batch, s);
	if (!s->cfg->admin_listen)
		http_probe_routes(s->ctx, &s->probe);
}

/* Frees what http_start made before civetweb ran (or after mg_stop). */
static void http_server_free(struct http_server *s)
{
	http_watchdog_stop(s->watchdog);   /* after mg_stop: workers have unregistered */
	http_drain_free(&s->drain);        /* after mg_stop: it closed the replaced descriptors */
	http_guard_free(s->guard);         /* after mg_stop: every SSL object is freed */
	tls_cert_free();
	http_admin_stop(s->admin);         /* detached by http_stop: it no longer reads s */
	http_probe_free(&s->probe);
	free(s);
}

struct http_server *http_start(struct pipeline_shared *sh, char *err, size_t errlen)
{
	struct http_server *s = calloc(1, sizeof *s);
	const char *opts[HTTP_OPTS_MAX + 1];

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->sh = sh;
	s->cfg = sh->cfg;
	if (http_probe_init(&s->probe, sh, s, NULL) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	s->guard = http_guard_new(s->cfg, err, errlen);
	if (!s->guard)
		goto fail;
	if (http_drain_init(&s->drain) < 0) {
		snprintf(err, errlen, "cannot create the drain pipe: %s", strerror(errno));
		goto fail;
	}
	if (http_options(s, opts, err, errlen) < 0)
		goto fail;
	/* Read here, before civetweb drops privileges (init_ssl installs it). */
	if (strchr(s->cfg->listen, 's') &&
	    tls_cert_load(s->cfg->tls_certificate, s->cfg->tls_key, err, errlen) < 0)
		goto fail;
	/* Before civetweb: its worker threads register with the watchdog. */
	s->watchdog = http_watchdog_start();
	if (!s->watchdog) {
		snprintf(err, errlen, "cannot start the request watchdog");
		goto fail;
	}
	if (http_listen(s, opts, err, errlen) < 0)
		goto fail;
	http_routes(s);
	if (s->cfg->admin_listen && !(s->admin = http_admin_start(sh, s, err, errlen))) {
		mg_stop(s->ctx);
		goto fail;
	}
	return s;
fail:
	http_server_free(s);
	return NULL;
}

/*
 * How long http_stop waits for requests in flight. A batch's own work
 * (rules with their instruction limit, one group commit) takes
 * milliseconds; what can take longer is a body still arriving, which the
 * body watchdog bounds only at 10 s and more. Past the grace the stop goes
 * on: a request still unanswered then loses its connection, so a batch
 * committed in that very moment would be sent again (a duplicate, never a
 * loss). Ten seconds keeps the whole stop (then up to 5 s of delivery)
 * inside the 30 s that service managers commonly allow before SIGKILL.
 */
#define HTTP_DRAIN_GRACE_S 10.0

/*
 * Drain, then stop (http_drain.h says why mg_stop alone is not enough):
 * refuse new connections, refuse requests that have not started, wait for
 * those that have, then mg_stop. Every listening socket is replaced by
 * a quiet descriptor which http_drain_wake makes readable, so civetweb's
 * accept loop sees mg_stop's flag at once rather than after its 2 s poll.
 */
void http_stop(struct http_server *s)
{
	struct mg_server_port ports[8];
	int nums[8], nports, closed;
	long inflight, left;

	if (!s)
		return;
	http_admin_detach(s->admin);  /* its probes answer "stopping" from now on */
	if (s->ctx) {
		nports = mg_get_server_ports(s->ctx, 8, ports);
		for (int i = 0; i < nports; i++)
			nums[i] = ports[i].port;
		closed = nports > 0 ? http_drain_close_listeners(&s->drain, nums, nports) : 0;
		if (closed < nports)
			/* Still correct (requests there are answered 503), only the
			 * connections are accepted, and stopping may take 2 s more. */
			log_msg(LOG_WARN, NULL, "stopping intake: %d of %d listening sockets could "
				"not be closed early (%s); new connections there are answered 503",
				nports - (closed > 0 ? closed : 0), nports,
				closed < 0 ? strerror(errno) : "not found");
		inflight = http_drain_begin(&s->drain);
		log_msg(LOG_INFO, NULL, "stopping intake: %ld requests in flight", inflight);
		left = http_drain_wait(&s->drain, HTTP_DRAIN_GRACE_S);
		if (left > 0)
			rules_stop_all();  /* else mg_stop would wait for a worker still in a rule */
		if (left > 0)
			log_msg(LOG_WARN, NULL, "stopping intake: %ld requests still in flight after "
				"%.0f s, their connections are closed unanswered (E-goi sends those "
				"batches again)", left, HTTP_DRAIN_GRACE_S);
		else if (inflight > 0)
			log_msg(LOG_INFO, NULL, "stopping intake: every request in flight answered");
		http_drain_wake(&s->drain);
		mg_stop(s->ctx);
	}
	http_server_free(s);
}

struct http_guard *http_server_guard(struct http_server *s)
{
	return s ? s->guard : NULL;
}

int http_port(const struct http_server *s)
{
	struct mg_server_port ports[4];

	if (!s || mg_get_server_ports(s->ctx, 4, ports) < 1)
		return -1;
	return ports[0].port;
}
