/*
 * http.c — the HTTPS intake (see http.h).
 *
 * Order of checks for the endpoint, cheapest and least revealing first:
 * method (405), auth (401), content type (415), declared size (413), then
 * the body is read with a hard bound on bytes actually received (413), and
 * the batch goes through the pipeline (200/400/413/5xx). The secret never
 * reaches a log line: we log method, path and status only, never the query.
 * Every answer of the endpoint is counted (requests_total, request_seconds)
 * in one place, http_on_batch, around the handler proper.
 *
 * GET /metrics (metrics.c) needs no token, so a Prometheus scraper can use
 * it as is, but like every route it is subject to allow_from (civetweb's
 * access control list applies server-wide). It exposes counts and label
 * values (forward names, hosts, write paths, drop reasons), never payloads
 * or URLs.
 *
 * Threads: civetweb runs `threads` workers; one open connection holds one
 * worker while it lives, so the keep-alive and request timeouts are short.
 */
#include "http.h"

#include <civetweb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <yajl/yajl_gen.h>

#include "config.h"
#include "http_watchdog.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"

#define HTTP_HEAD_MAX 512

/*
 * A body must arrive within HTTP_BODY_BASE_S plus one second per
 * HTTP_BODY_RATE bytes of its Content-Length (of max_body when chunked);
 * http_watchdog.c enforces it, since civetweb's timeout applies to each
 * read and a trickling client would otherwise hold its worker for ever.
 */
#define HTTP_BODY_BASE_S 10.0
#define HTTP_BODY_RATE (64.0 * 1024)

/* Buffers above this are freed after their request instead of kept per worker. */
#define HTTP_BODY_KEEP ((size_t)1 << 20)

struct http_server {
	struct mg_context *ctx;
	struct http_watchdog *watchdog;
	struct pipeline_shared *sh;
	const struct config *cfg;     /* sh->cfg */
	char endpoint[512];
};

/* A worker thread's own state, made in init_thread. */
struct http_worker {
	struct pipeline pipe;
	struct http_server *server;
	struct http_watchdog_slot slot;  /* body-read deadline */
	uint64_t rng;          /* xorshift state for request ids */
	char *body;            /* request body buffer, grown as needed, reused */
	size_t body_cap;
};

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

int http_token_equal(const char *presented, size_t len, const char *secret)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned alen = 0, blen = 0;

	if (!EVP_Digest(presented, len, a, &alen, EVP_sha256(), NULL) ||
	    !EVP_Digest(secret, strlen(secret), b, &blen, EVP_sha256(), NULL))
		return 0;
	return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
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
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

/*
 * Sends a whole response in one write. close != 0 asks civetweb to drop
 * the connection afterwards (used when the request body was not read).
 */
static void http_reply(struct mg_connection *conn, int status, const char *ctype,
		       const char *body, size_t len, int close, const char *extra)
{
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
	head = snprintf(buf, HTTP_HEAD_MAX,
			"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			"Cache-Control: no-store\r\n%s%s\r\n",
			status, http_reason(status), ctype, len, extra ? extra : "",
			close ? "Connection: close\r\n" : "");
	if (close)
		mg_disable_keep_alive(conn);
	if (head > 0 && head < HTTP_HEAD_MAX) {
		memcpy(buf + head, body, len);
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

static void http_request_id(struct http_worker *w, char *out, size_t outlen)
{
	uint64_t x = w->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	w->rng = x;
	snprintf(out, outlen, "%016llx", (unsigned long long)x);
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
		return http_token_equal(h, strlen(h), cfg->auth_token);
	h = mg_get_header(conn, "Authorization");
	if (h && strncasecmp(h, "Bearer ", 7) == 0) {
		h += 7;
		while (*h == ' ')
			h++;
		return http_token_equal(h, strlen(h), cfg->auth_token);
	}
	if (ri->query_string) {
		n = mg_get_var(ri->query_string, strlen(ri->query_string), "token", q, sizeof q);
		if (n >= 0)
			return http_token_equal(q, (size_t)n, cfg->auth_token);
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
 * shorter than its Content-Length, -2 if larger than max.
 */
static long long http_read_body(struct mg_connection *conn, struct http_worker *w, size_t max,
				long long declared)
{
	size_t len = 0;

	for (;;) {
		int n;

		if (len == w->body_cap) {
			size_t cap = w->body_cap ? w->body_cap * 2 : 65536;
			char *p;

			if (cap > max + 1)
				cap = max + 1;
			if (cap <= len)
				return -2;
			p = realloc(w->body, cap + 1);
			if (!p)
				return -1;
			w->body = p;
			w->body_cap = cap;
		}
		n = mg_read(conn, w->body + len, w->body_cap - len);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -2;
	}
	/* mg_read also returns 0 when a read times out: a short body is not a batch. */
	if (declared >= 0 && (long long)len != declared)
		return -1;
	w->body[len] = '\0';
	return (long long)len;
}

/* The endpoint proper: answers and returns the status it answered. */
static int http_batch(struct mg_connection *conn, void *cbdata)
{
	struct http_server *s = cbdata;
	const struct config *cfg = s->cfg;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	struct http_worker *w = mg_get_thread_pointer(conn);
	struct pipeline_result res;
	struct timespec ts;
	char rid[24], answer[96];
	long long len;
	int n;

	if (!w) {
		http_reply_error(conn, 500, "worker not initialised", 1, NULL);
		return 500;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	http_request_id(w, rid, sizeof rid);

	if (strcmp(ri->request_method, "POST") != 0) {
		/* close: civetweb would otherwise read and discard any body first */
		http_reply_error(conn, 405, "only POST is accepted here", 1, "Allow: POST\r\n");
		return 405;
	}
	if (!http_authorized(conn, cfg)) {
		log_msg(LOG_INFO, rid, "401 from %s: missing or wrong token", ri->remote_addr);
		http_reply_error(conn, 401, "unauthorized", 1, "WWW-Authenticate: Bearer\r\n");
		return 401;
	}
	if (!http_is_json(mg_get_header(conn, "Content-Type"))) {
		http_reply_error(conn, 415, "Content-Type must be application/json", 1, NULL);
		return 415;
	}
	if (ri->content_length > (long long)cfg->max_body) {
		http_reply_error(conn, 413, "body larger than max_body", 1, NULL);
		return 413;
	}
	http_watchdog_arm(&w->slot, ri->remote_addr, ri->remote_port,
			  http_watchdog_now() + HTTP_BODY_BASE_S +
				  (double)(ri->content_length >= 0 ? (size_t)ri->content_length
								   : cfg->max_body) / HTTP_BODY_RATE);
	len = http_read_body(conn, w, cfg->max_body, ri->content_length);
	if (http_watchdog_disarm(&w->slot)) {
		log_msg(LOG_INFO, rid, "request body from %s too slow, connection closed",
			ri->remote_addr);
		http_reply_error(conn, 408, "request body too slow", 1, NULL);
		return 408;
	}
	if (len == -2) {
		http_reply_error(conn, 413, "body larger than max_body", 1, NULL);
		return 413;
	}
	if (len < 0) {
		log_msg(LOG_INFO, rid, "request body from %s incomplete or unreadable",
			ri->remote_addr);
		http_reply_error(conn, 400, "request body incomplete", 1, NULL);
		return 400;
	}

	pipeline_process(&w->pipe, w->body, (size_t)len,
			 (double)ts.tv_sec + (double)ts.tv_nsec / 1e9, ri->remote_addr, rid, &res);
	/* A rare large batch must not pin max_body of memory in every worker. */
	if (w->body_cap > HTTP_BODY_KEEP) {
		free(w->body);
		w->body = NULL;
		w->body_cap = 0;
	}
	if (res.http_status != 200) {
		log_msg(res.http_status >= 500 ? LOG_ERROR : LOG_INFO, rid, "%d from %s: %s",
			res.http_status, ri->remote_addr, res.error);
		/* 4xx reasons help the sender; 5xx details (paths, Lua or SQLite
		 * messages) stay in the log, found by the request id. */
		if (res.http_status >= 500)
			snprintf(res.error, sizeof res.error,
				 "internal error, batch not accepted (request id %s)", rid);
		http_reply_error(conn, res.http_status, res.error, 0, NULL);
		return res.http_status;
	}
	log_msg(LOG_DEBUG, rid,
		"batch from %s: %zu accepted, %zu rejected, %zu forwards, %zu writes, %zu dead letters",
		ri->remote_addr, res.accepted, res.rejected, res.summary.forwards, res.summary.writes,
		res.summary.dead_letters);
	n = snprintf(answer, sizeof answer, "{\"accepted\":%zu,\"rejected\":%zu}", res.accepted,
		     res.rejected);
	http_reply(conn, 200, "application/json", answer, (size_t)n, 0, NULL);
	return 200;
}

static double http_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int http_on_batch(struct mg_connection *conn, void *cbdata)
{
	double start = http_mono_now();
	int status = http_batch(conn, cbdata);

	metrics_request(status, http_mono_now() - start);
	return status;
}

static int http_on_healthz(struct mg_connection *conn, void *cbdata)
{
	(void)cbdata;
	http_reply(conn, 200, "text/plain", "ok", 2, 0, NULL);
	return 200;
}

/* No token (see the top comment); the whole exposition in one write. */
static int http_on_metrics(struct mg_connection *conn, void *cbdata)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	char *text = NULL;
	size_t len = 0;

	(void)cbdata;
	if (strcmp(ri->request_method, "GET") != 0) {
		http_reply_error(conn, 405, "only GET is accepted here", 1, "Allow: GET\r\n");
		return 405;
	}
	if (metrics_render(&text, &len) < 0) {
		http_reply_error(conn, 500, "out of memory", 0, NULL);
		return 500;
	}
	http_reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, 0, NULL);
	free(text);
	return 200;
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
	free(acl);
	free(s);
	return NULL;
}

/*
 * civetweb 1.15's listening thread looks at its stop flag only between
 * accepts or every 2 s, so mg_stop alone takes ~2 s. While it runs, this
 * thread connects to our own ports on the loopback every 50 ms, which
 * wakes the listener at once. Harmless when it cannot connect (a port
 * bound to another address): stopping is then merely slower.
 */
struct http_poker {
	int ports[8];
	int nports;
	atomic_int done;
};

static void *http_poke_main(void *arg)
{
	struct http_poker *pk = arg;
	const struct timespec pause = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };

	for (int round = 0; round < 100 && !atomic_load(&pk->done); round++) {
		(void)nanosleep(&pause, NULL);
		for (int i = 0; i < pk->nports; i++) {
			struct sockaddr_in sa = { .sin_family = AF_INET };
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

			if (fd < 0)
				continue;
			sa.sin_port = htons((uint16_t)pk->ports[i]);
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			(void)connect(fd, (struct sockaddr *)&sa, sizeof sa);
			close(fd);
		}
	}
	return NULL;
}

void http_stop(struct http_server *s)
{
	struct mg_server_port ports[8];
	struct http_poker pk;
	pthread_t poker;
	int poking = 0;

	if (!s)
		return;
	if (s->ctx) {
		memset(&pk, 0, sizeof pk);
		pk.nports = mg_get_server_ports(s->ctx, 8, ports);
		for (int i = 0; i < pk.nports; i++)
			pk.ports[i] = ports[i].port;
		poking = pk.nports > 0 && pthread_create(&poker, NULL, http_poke_main, &pk) == 0;
		mg_stop(s->ctx);
		if (poking) {
			atomic_store(&pk.done, 1);
			pthread_join(poker, NULL);
		}
	}
	http_watchdog_stop(s->watchdog);   /* after mg_stop: workers have unregistered */
	free(s);
}

int http_port(const struct http_server *s)
{
	struct mg_server_port ports[4];

	if (!s || mg_get_server_ports(s->ctx, 4, ports) < 1)
		return -1;
	return ports[0].port;
}
