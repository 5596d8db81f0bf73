/*
 * http_admin.c — the admin listener (see http_admin.h).
 */
#include "http_admin.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "console.h"
#include "http_probe.h"
#include "log.h"
#include "pipeline.h"

struct http_admin {
	struct mg_context *ctx;
	struct http_probe probe;
	struct console *console;   /* NULL without admin_token: /console is no route */
	char threads[8];
};

/* One entry of admin_listen: [ADDRESS:]PORT, PORT 1-65535, no suffix. */
static int http_admin_check_port(const char *spec, size_t n, char *err, size_t errlen)
{
	const char *colon = memrchr(spec, ':', n);
	const char *port = colon ? colon + 1 : spec;
	size_t plen = n - (size_t)(port - spec);
	long v = 0;

	if (plen > 0 && port[plen - 1] == 's') {
		snprintf(err, errlen, "admin_listen: '%.*s': TLS ('s') is not supported on the admin "
			 "listener; bind it to a loopback or private address", (int)n, spec);
		return -1;
	}
	for (size_t i = 0; i < plen && v <= 65535; i++) {
		if (port[i] < '0' || port[i] > '9') {
			v = -1;
			break;
		}
		v = v * 10 + (port[i] - '0');
	}
	if (plen == 0 || v < 1 || v > 65535 || (colon && colon == spec)) {
		snprintf(err, errlen, "admin_listen: '%.*s' is not PORT or ADDRESS:PORT", (int)n,
			 spec);
		return -1;
	}
	return 0;
}

int http_admin_check(const struct config *cfg, char *err, size_t errlen)
{
	const char *p = cfg->admin_listen;

	if (!p) {
		if (cfg->admin_token) {
			snprintf(err, errlen, "admin_token is set but admin_listen is not: the "
				 "token guards the admin listener only");
			return -1;
		}
		return 0;
	}
	for (;;) {
		size_t n;

		while (*p == ' ' || *p == '\t')
			p++;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (http_admin_check_port(p, n, err, errlen) < 0)
			return -1;
		p += strcspn(p, ",");
		if (!*p)
			return 0;
		p++;
	}
}

static int http_admin_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	log_msg(LOG_WARN, NULL, "admin http: %s", message);
	return 1;
}

struct http_admin *http_admin_start(struct pipeline_shared *sh, struct http_server *intake,
				    char *err, size_t errlen)
{
	const struct config *cfg = sh->cfg;
	struct http_admin *a = calloc(1, sizeof *a);
	struct mg_callbacks cb;
	struct mg_init_data init;
	struct mg_error_data error;
	char cerr[256] = "";
	const char *opts[24];
	int n = 0;

	if (!a || http_probe_init(&a->probe, sh, intake, cfg->admin_token) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (cfg->admin_token && !(a->console = console_new(sh, cfg->admin_token))) {
		snprintf(err, errlen, "the console cannot start: out of memory or randomness");
		goto fail;
	}
	snprintf(a->threads, sizeof a->threads, "%d", HTTP_ADMIN_THREADS);
	opts[n++] = "listening_ports";       opts[n++] = cfg->admin_listen;
	opts[n++] = "num_threads";           opts[n++] = a->threads;
	/* a scraper keeps its connection; an idle one frees its worker soon */
	opts[n++] = "enable_keep_alive";     opts[n++] = "yes";
	opts[n++] = "keep_alive_timeout_ms"; opts[n++] = "5000";
	opts[n++] = "request_timeout_ms";    opts[n++] = "5000";
	opts[n++] = "tcp_nodelay";           opts[n++] = "1";
	opts[n++] = "max_request_size";      opts[n++] = "16384";
	opts[n++] = "decode_url";            opts[n++] = "yes";
	opts[n++] = "enable_auth_domain_check"; opts[n++] = "no";
	opts[n] = NULL;

	memset(&cb, 0, sizeof cb);
	cb.log_message = http_admin_log_message;
	memset(&init, 0, sizeof init);
	init.callbacks = &cb;
	init.user_data = a;
	init.configuration_options = opts;
	memset(&error, 0, sizeof error);
	error.text = cerr;
	error.text_buffer_size = sizeof cerr;
	a->ctx = mg_start2(&init, &error);
	if (!a->ctx) {
		snprintf(err, errlen, "cannot start the admin listener on %s: %s", cfg->admin_listen,
			 cerr[0] ? cerr : "unknown error");
		goto fail;
	}
	http_probe_routes(a->ctx, &a->probe);
	if (a->console)
		console_routes(a->ctx, a->console);
	log_msg(LOG_INFO, NULL, "admin listener on %s (/metrics%s, /healthz, /readyz%s)",
		cfg->admin_listen, cfg->admin_token ? " with admin_token" : "",
		a->console ? ", /console" : "");
	return a;
fail:
	if (a) {
		http_probe_free(&a->probe);  /* a zeroed probe is a no-op */
		console_free(a->console);
	}
	free(a);
	return NULL;
}

void http_admin_detach(struct http_admin *a)
{
	if (a)
		http_probe_detach(&a->probe);
}

void http_admin_stop(struct http_admin *a)
{
	if (!a)
		return;
	mg_stop(a->ctx);
	http_probe_free(&a->probe);
	console_free(a->console);
	free(a);
}

int http_admin_port(const struct http_admin *a)
{
	struct mg_server_port ports[4];

	if (!a || mg_get_server_ports(a->ctx, 4, ports) < 1)
		return -1;
	return ports[0].port;
}
