/*
 * http_server.c — civetweb set-up for the intake (see http.h): TLS library
 * start, listening options (TLS versions and ciphers, mTLS, allowlist,
 * timeouts, keep-alive, TCP_NODELAY), one struct http_worker per worker
 * thread (init_thread / exit_thread), and a stop that first drains the
 * requests in flight (http_drain.h).
 *
 * Threads: http_start and http_stop run on the main thread; the thread
 * callbacks on civetweb's workers.
 */
#include "http.h"
#include "http_internal.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "rules.h"

int http_library_init(char *err, size_t errlen)
{
	unsigned want = MG_FEATURES_TLS;

	if ((mg_init_library(want) & want) != want) {
		snprintf(err, errlen, "TLS did not initialise in civetweb (OpenSSL could not be "
				      "loaded; is build/lib/libssl.so beside the binary?)");
		return -1;
	}
	return 0;
}

static void *http_init_thread(const struct mg_context *ctx, int thread_type)
{
	struct http_server *s = mg_get_user_data(ctx);
	struct http_worker *w;

	if (thread_type != 1)
		return NULL;
	w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	pipeline_init(&w->pipe, s->sh);
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
	free(w->body);
	free(w);
}

static int http_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	/* A client that connects and leaves (or speaks plain HTTP to a TLS port)
	 * makes civetweb say "sslize error:" with no detail: routine, not a fault. */
	if (strncmp(message, "sslize error", 12) == 0)
		log_msg(LOG_INFO, NULL, "TLS handshake failed%s", message + 12);
	else
		log_msg(LOG_WARN, NULL, "http: %s", message);
	return 1;
}

/* civetweb's access_control_list: deny all, then allow each CIDR. */
static char *http_acl(const char *allow_from)
{
	size_t cap = strlen(allow_from) * 2 + 32, len;
	char *acl = malloc(cap), *copy = strdup(allow_from), *save = NULL;

	if (!acl || !copy) {
		free(acl);
		acl = NULL;
		goto out;
	}
	len = (size_t)snprintf(acl, cap, "-0.0.0.0/0");
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save))
		len += (size_t)snprintf(acl + len, cap - len, ",+%s", tok);
out:
	free(copy);
	return acl;
}

struct http_server *http_start(struct pipeline_shared *sh, char *err, size_t errlen)
{
	const struct config *cfg = sh->cfg;
	struct http_server *s = calloc(1, sizeof *s);
	struct mg_callbacks cb;
	struct mg_init_data init;
	struct mg_error_data error;
	char threads[24], cerr[256] = "";
	char *acl = NULL;
	const char *opts[40];
	int n = 0;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->sh = sh;
	s->cfg = cfg;
	if (http_drain_init(&s->drain) < 0) {
		snprintf(err, errlen, "cannot create the drain pipe: %s", strerror(errno));
		goto fail;
	}
	snprintf(threads, sizeof threads, "%ld", cfg->threads);

	opts[n++] = "listening_ports";       opts[n++] = cfg->listen;
	opts[n++] = "num_threads";           opts[n++] = threads;
	opts[n++] = "enable_keep_alive";     opts[n++] = "yes";
	/* Each open connection holds a worker thread: idle or slow ones go fast. */
	opts[n++] = "keep_alive_timeout_ms"; opts[n++] = "5000";
	opts[n++] = "request_timeout_ms";    opts[n++] = "5000";
	opts[n++] = "tcp_nodelay";           opts[n++] = "1";
	opts[n++] = "max_request_size";      opts[n++] = "16384";
	opts[n++] = "decode_url";            opts[n++] = "yes";
	opts[n++] = "enable_auth_domain_check"; opts[n++] = "no";
	if (strchr(cfg->listen, 's')) {
		opts[n++] = "ssl_certificate";      opts[n++] = cfg->tls_certificate;
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
	if (cfg->allow_from) {
		acl = http_acl(cfg->allow_from);
		if (!acl) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		opts[n++] = "access_control_list"; opts[n++] = acl;
	}
	if (cfg->run_as_user) {
		opts[n++] = "run_as_user"; opts[n++] = cfg->run_as_user;
	}
	opts[n] = NULL;

	memset(&cb, 0, sizeof cb);
	cb.init_thread = http_init_thread;
	cb.exit_thread = http_exit_thread;
	cb.log_message = http_log_message;
	memset(&init, 0, sizeof init);
	init.callbacks = &cb;
	init.user_data = s;
	init.configuration_options = opts;
	memset(&error, 0, sizeof error);
	error.text = cerr;
	error.text_buffer_size = sizeof cerr;

	/* Before mg_start2: its worker threads register with the watchdog. */
	s->watchdog = http_watchdog_start();
	if (!s->watchdog) {
		snprintf(err, errlen, "cannot start the request watchdog");
		goto fail;
	}
	s->ctx = mg_start2(&init, &error);
	if (!s->ctx) {
		snprintf(err, errlen, "cannot start HTTP server on %s: %s", cfg->listen,
			 cerr[0] ? cerr : "unknown error");
		goto fail;
	}
	{
		struct mg_server_port ports[8];
		int nports = mg_get_server_ports(s->ctx, 8, ports), nums[8];

		for (int i = 0; i < nports; i++)
			nums[i] = ports[i].port;
		http_watchdog_set_ports(s->watchdog, nums, nports > 0 ? nports : 0);
	}
	free(acl);
	/* "$" anchors the match: /hooks/egoi/x is not the endpoint. */
	snprintf(s->endpoint, sizeof s->endpoint, "%s$", cfg->endpoint);
	mg_set_request_handler(s->ctx, s->endpoint, http_on_batch, s);
	mg_set_request_handler(s->ctx, "/healthz$", http_on_healthz, s);
	mg_set_request_handler(s->ctx, "/metrics$", http_on_metrics, s);
	return s;
fail:
	http_watchdog_stop(s->watchdog);
	http_drain_free(&s->drain);
	free(acl);
	free(s);
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
	http_watchdog_stop(s->watchdog);   /* after mg_stop: workers have unregistered */
	http_drain_free(&s->drain);        /* after mg_stop: it closed the replaced descriptors */
	free(s);
}

int http_port(const struct http_server *s)
{
	struct mg_server_port ports[4];

	if (!s || mg_get_server_ports(s->ctx, 4, ports) < 1)
		return -1;
	return ports[0].port;
}
