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
