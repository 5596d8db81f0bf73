/*
 * http_access.c — see http_access.h. The query is redacted whole, value by
 * value: the token may come as ?token=, and a sender's other parameters
 * are no business of a log line either; the names stay, to tell requests
 * apart.
 */
#include "http_access.h"

#include "clock.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

int http_access_id_ok(const char *id)
{
	size_t n;

	if (!id)
		return 0;
	n = strlen(id);
	if (n == 0 || n > HTTP_ACCESS_ID_MAX)
		return 0;
	/* tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~" */
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
			  "!#$%&'*+-.^_`|~") == n;
}

void http_access_begin(struct http_access *a, uint64_t *rng, const char *client_id)
{
	uint64_t id;

	memset(a, 0, sizeof *a);
	a->start = clock_mono();
	a->active = 1;
	a->events = a->rejected = -1;
	if (http_access_id_ok(client_id)) {
		memcpy(a->rid, client_id, strlen(client_id) + 1);   /* checked: it fits */
		return;
	}
	/* 16 hex digits of a random 64-bit number (util_hex: snprintf's "%016llx"
	 * was a tenth of a small request's formatting). */
	id = util_xorshift64s(rng);
	util_hex(a->rid, &id, sizeof id);
}

void http_access_answered(struct http_access *a, int status, size_t n)
{
	if (!a)
		return;
	a->status = status;
	a->bytes_out += n;
}

void http_access_path(const char *uri, const char *query, char *out, size_t cap)
{
	size_t len;

	if (cap == 0)
		return;
	snprintf(out, cap, "%s", uri ? uri : "-");
	if (!query)
		return;
	len = strlen(out);
	for (const char *p = query; len + 1 < cap;) {
		size_t name = strcspn(p, "=&"), pair = strcspn(p, "&");
		int n = snprintf(out + len, cap - len, "%s%.*s%s", p == query ? "?" : "&",
				 (int)name, p, name < pair ? "=REDACTED" : "");

		if (n < 0 || (size_t)n >= cap - len) {
			out[len] = '\0';
			return;
		}
		len += (size_t)n;
		if (!p[pair])
			return;
		p += pair + 1;
	}
}

void http_access_end(struct http_access *a, const struct mg_request_info *ri, int status)
{
	char path[512];
	int answered = a && a->active && a->status ? a->status : status;
	double ms = a && a->active ? (clock_mono() - a->start) * 1000.0 : 0;
	struct log_field f[] = {
		LOG_FS("method", ri->request_method),
		LOG_FS("path", path),
		LOG_FI("status", answered),
		LOG_FI("bytes_in", a && a->active ? a->bytes_in : 0),
		LOG_FI("bytes_out", a && a->active ? (long long)a->bytes_out : 0),
		LOG_FD("duration_ms", ms),
		LOG_FI("events", a && a->active && a->events >= 0 ? a->events : 0),
		LOG_FI("rejected", a && a->active && a->rejected >= 0 ? a->rejected : 0),
		LOG_FS("remote", ri->remote_addr),
	};

	if (log_enabled(LOG_INFO)) {   /* the path's redaction is work only a logged line needs */
		http_access_path(ri->local_uri, ri->query_string, path, sizeof path);
		log_fields(LOG_INFO, a && a->active ? a->rid : NULL, f, sizeof f / sizeof f[0], "request");
	}
	if (a)
		a->active = 0;
}
