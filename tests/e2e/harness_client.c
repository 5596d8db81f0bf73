/*
 * harness_client.c — the end-to-end tests' HTTPS client: libcurl with the
 * run's generated certificate as the only trusted CA (verification on), one
 * fresh connection per request so no kept-alive connection holds one of the
 * daemon's worker threads between steps; and, for the scenarios that need
 * one, a single kept-alive connection (struct harness_conn).
 *
 * Threads: harness_request, harness_post and harness_metric may run on
 * several threads at once (each call has its own easy handle; curl's global
 * state is set up once by harness_suite_init); the rest: test thread only.
 */
#include "e2e/harness.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>

/* --- TLS client --- */


static size_t harness_collect(char *data, size_t size, size_t nmemb, void *userp)
{
	struct harness_response *r = userp;
	size_t n = size * nmemb;
	char *nb = realloc(r->body, r->len + n + 1);

	if (nb == NULL)
		return 0;
	memcpy(nb + r->len, data, n);
	r->body = nb;
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

int harness_request(const struct harness *h, const char *method, const char *path,
		    const char *content_type, const char *const *headers, const char *body,
		    size_t len, int with_token, struct harness_response *resp)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL, *tmp;
	char url[256], line[256];
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	if (c == NULL)
		return -1;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", h->port, path);
	/* No "Expect: 100-continue" pause for bodies over 1 KiB. */
	const char *fixed[] = { "Expect:", NULL };
	for (size_t i = 0; fixed[i] != NULL; i++)
		if ((tmp = curl_slist_append(hl, fixed[i])) != NULL)
			hl = tmp;
	if (content_type != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s", content_type);
		if ((tmp = curl_slist_append(hl, line)) != NULL)
			hl = tmp;
	} else if ((tmp = curl_slist_append(hl, "Content-Type:")) != NULL) {
		hl = tmp; /* stop libcurl adding its form content type */
	}
	if (with_token) {
		snprintf(line, sizeof(line), "X-Router-Token: %s", h->token);
		if ((tmp = curl_slist_append(hl, line)) != NULL)
			hl = tmp;
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		if ((tmp = curl_slist_append(hl, headers[i])) != NULL)
			hl = tmp;

	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CAINFO, harness_cert()) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, harness_collect) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp) != CURLE_OK)
		goto out;
	if (strcmp(method, "GET") == 0) {
		if (curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) != CURLE_OK)
			goto out;
	} else {
		if (curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
		    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body != NULL ? body : "") != CURLE_OK)
			goto out;
		if (strcmp(method, "POST") != 0 &&
		    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
			goto out;
	}
	CURLcode cr = curl_easy_perform(c);
	if (cr != CURLE_OK) {
		if (resp->body == NULL)
			resp->body = strdup("");
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	if (resp->body == NULL)
		resp->body = strdup("");
	rc = resp->body != NULL ? 0 : -1;
out:
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return rc;
}

int harness_post(const struct harness *h, const char *body, size_t len,
		 struct harness_response *resp)
{
	return harness_request(h, "POST", "/hooks/egoi", "application/json", NULL, body, len, 1,
			       resp);
}

void harness_response_free(struct harness_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
}

int harness_counts(const struct harness_response *resp, long *accepted, long *rejected)
{
	const char *pa[] = { "accepted", NULL }, *pr[] = { "rejected", NULL };
	yajl_val v = yajl_tree_parse(resp->body != NULL ? resp->body : "", NULL, 0);
	yajl_val a = v != NULL ? yajl_tree_get(v, pa, yajl_t_number) : NULL;
	yajl_val r = v != NULL ? yajl_tree_get(v, pr, yajl_t_number) : NULL;
	int rc = -1;

	if (a != NULL && r != NULL && YAJL_IS_INTEGER(a) && YAJL_IS_INTEGER(r)) {
		*accepted = (long)YAJL_GET_INTEGER(a);
		*rejected = (long)YAJL_GET_INTEGER(r);
		rc = 0;
	}
	yajl_tree_free(v);
	return rc;
}

int harness_admin_get(const struct harness *h, const char *path, const char *const *headers,
		      struct harness_response *resp)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL, *tmp;
	char url[256];
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	if (c == NULL)
		return -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", h->admin_port, path);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		if ((tmp = curl_slist_append(hl, headers[i])) != NULL)
			hl = tmp;
	if (curl_easy_setopt(c, CURLOPT_URL, url) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, harness_collect) == CURLE_OK &&
	    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp) == CURLE_OK &&
	    curl_easy_perform(c) == CURLE_OK &&
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status) == CURLE_OK)
		rc = 0;
	if (resp->body == NULL)
		resp->body = strdup("");
	if (resp->body == NULL)
		rc = -1;
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return rc;
}

int harness_metric(const struct harness *h, const char *series, double *value)
{
	struct harness_response r;
	size_t slen = strlen(series);
	int rc = -1;

	if ((h->admin_port > 0 ? harness_admin_get(h, "/metrics", NULL, &r)
			       : harness_request(h, "GET", "/metrics", NULL, NULL, NULL, 0, 0, &r)) != 0 ||
	    r.status != 200)
		goto out;
	for (const char *p = r.body; p != NULL && *p != '\0';) {
		if (strncmp(p, series, slen) == 0 && p[slen] == ' ') {
			char *end;
			double v = strtod(p + slen + 1, &end);
			if (end != p + slen + 1) {
				*value = v;
				rc = 0;
			}
			break;
		}
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
out:
	harness_response_free(&r);
	return rc;
}

/* --- one kept-alive connection --- */

struct harness_conn {
	const struct harness *h;
	CURL *c;
	struct curl_slist *post_headers;
};

struct harness_conn *harness_conn_new(const struct harness *h)
{
	struct harness_conn *k = calloc(1, sizeof(*k));
	struct curl_slist *tmp;
	char token[128];

	if (k == NULL)
		return NULL;
	k->h = h;
	k->c = curl_easy_init();
	snprintf(token, sizeof(token), "X-Router-Token: %s", h->token);
	const char *lines[] = { "Expect:", "Content-Type: application/json", token, NULL };
	for (size_t i = 0; lines[i] != NULL; i++)
		if ((tmp = curl_slist_append(k->post_headers, lines[i])) != NULL)
			k->post_headers = tmp;
	if (k->c == NULL || curl_easy_setopt(k->c, CURLOPT_CAINFO, harness_cert()) != CURLE_OK ||
	    curl_easy_setopt(k->c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(k->c, CURLOPT_TIMEOUT_MS, 10000L) != CURLE_OK ||
	    curl_easy_setopt(k->c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, harness_collect) != CURLE_OK) {
		harness_conn_free(k);
		return NULL;
	}
	return k;
}

int harness_conn_request(struct harness_conn *k, const char *path, const char *body, size_t len,
			 struct harness_response *resp, int *reused)
{
	char url[256];
	long fresh = 1;
	int rc = -1;

	memset(resp, 0, sizeof(*resp));
	*reused = 0;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", k->h->port, path);
	if (curl_easy_setopt(k->c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(k->c, CURLOPT_WRITEDATA, resp) != CURLE_OK)
		goto out;
	if (body == NULL) {
		if (curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, NULL) != CURLE_OK ||
		    curl_easy_setopt(k->c, CURLOPT_HTTPGET, 1L) != CURLE_OK)
			goto out;
	} else if (curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, k->post_headers) != CURLE_OK ||
		   curl_easy_setopt(k->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) != CURLE_OK ||
		   curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, body) != CURLE_OK) {
		goto out;
	}
	if (curl_easy_perform(k->c) != CURLE_OK)
		goto out;
	curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(k->c, CURLINFO_NUM_CONNECTS, &fresh);
	*reused = fresh == 0;
	rc = 0;
out:
	if (resp->body == NULL)
		resp->body = strdup("");
	return resp->body != NULL ? rc : -1;
}

void harness_conn_free(struct harness_conn *k)
{
	if (k == NULL)
		return;
	curl_easy_cleanup(k->c);
	curl_slist_free_all(k->post_headers);
	free(k);
}
