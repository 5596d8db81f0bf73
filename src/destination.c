/*
 * destination.c — the destination key of a URL (see destination.h), parsed
 * with libcurl's URL API: the same parser that later sends the request, so
 * the key names exactly where the request goes.
 *
 * Threads: no state; curl_url handles are created and freed per call.
 */
#include "destination.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int destination_key(const char *url, char **key, char **host)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *h = NULL, *port = NULL;
	int rc = -1;

	*key = NULL;
	if (host)
		*host = NULL;
	if (!u || !url)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		goto out;
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
		goto out;
	/* libcurl also reads "http:/h" and "http:///h" as host h; a URL names
	 * its host right after "scheme://", or has none. */
	if (strncasecmp(url, scheme, strlen(scheme)) != 0 ||
	    strncmp(url + strlen(scheme), "://", 3) != 0 ||
	    strchr("/\\", url[strlen(scheme) + 3]))
		goto out;
	for (char *c = h; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	for (char *c = scheme; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	if (asprintf(key, "%s://%s:%s", scheme, h, port) < 0) {
		*key = NULL;
		goto out;
	}
	if (host) {
		*host = strdup(h);
		if (!*host) {
			free(*key);
			*key = NULL;
			goto out;
		}
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(h);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static int destination_loopback(const char *h)
{
	return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 ||
	       strcmp(h, "[::1]") == 0 || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "[::]") == 0;
}

/* Whether host:port (from a URL) is the listen entry tok (len bytes). */
static int destination_listens(const char *tok, size_t len, const char *host, const char *port)
{
	const char *colon;
	size_t alen, plen;

	while (len > 0 && (tok[len - 1] == 's' || tok[len - 1] == 'r'))   /* TLS, redirect */
		len--;
	colon = NULL;
	for (size_t i = len; i > 0; i--)
		if (tok[i - 1] == ':') {
			colon = tok + i - 1;
			break;
		}
	alen = colon ? (size_t)(colon - tok) : 0;
	plen = colon ? len - alen - 1 : len;
	if (plen != strlen(port) || strncmp(colon ? colon + 1 : tok, port, plen) != 0)
		return 0;
	if (alen == 0 || (alen == 7 && strncmp(tok, "0.0.0.0", 7) == 0) ||
	    (alen == 4 && strncmp(tok, "[::]", 4) == 0))
		return destination_loopback(host);
	if (alen == strlen(host) && strncasecmp(tok, host, alen) == 0)
		return 1;
	/* 127.0.0.1 is also reached as localhost */
	return strncmp(tok, "127.", 4) == 0 && strcasecmp(host, "localhost") == 0;
}

int destination_is_self(const char *url, const char *listen, const char *endpoint)
{
	CURLU *u = curl_url();
	char *h = NULL, *port = NULL, *path = NULL;
	size_t elen = endpoint ? strlen(endpoint) : 0;
	int self = 0;

	if (!u || !url || !listen || elen == 0)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE) != CURLUE_OK)
		goto out;
	while (elen > 1 && endpoint[elen - 1] == '/')
		elen--;
	if (strncmp(path, endpoint, elen) != 0 || (path[elen] != '\0' && path[elen] != '/'))
		goto out;
	for (const char *p = listen; *p && !self;) {
		size_t n = strcspn(p, ",");
		const char *t = p;
		size_t tl = n;

		while (tl > 0 && (*t == ' ' || *t == '\t')) {
			t++;
			tl--;
		}
		while (tl > 0 && (t[tl - 1] == ' ' || t[tl - 1] == '\t'))
			tl--;
		self = tl > 0 && destination_listens(t, tl, h, port);
		p += n + (p[n] == ',');
	}
out:
	curl_free(h);
	curl_free(port);
	curl_free(path);
	curl_url_cleanup(u);
	return self;
}

static void destination_sql(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *url = argc == 1 ? sqlite3_value_text(argv[0]) : NULL;
	char *key = NULL;

	if (url && destination_key((const char *)url, &key, NULL) == 0) {
		sqlite3_result_text(ctx, key, -1, free);
		return;
	}
	if (url == NULL && argc == 1 && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, "", 0, SQLITE_STATIC);
}

int destination_sql_register(sqlite3 *db)
{
	return sqlite3_create_function(db, "router_dest", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
				       NULL, destination_sql, NULL, NULL);
}
