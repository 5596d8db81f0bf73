/*
 * egoi_api.c — E-goi Marketing API v3 webhooks over libcurl (see
 * egoi_api.h): one easy handle reused for every request, answers parsed
 * with yajl_tree, problem objects turned into one line.
 *
 * Threads: the caller's thread only.
 */
#include "egoi_api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <yajl/yajl_tree.h>

#include "util_buf.h"

/* Largest answer kept: a page of 1000 webhooks is a few MB. */
#define EGOI_API_BODY_MAX (64u * 1024 * 1024)

struct egoi_api {
	CURL *easy;
	char *base;                 /* without a trailing '/' */
	struct curl_slist *headers; /* Apikey (zeroed before freeing), Accept */
	char *key_line;
	long timeout_ms;
	long requests;
	char errbuf[CURL_ERROR_SIZE];
};

static void egoi_api_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void egoi_api_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* https anywhere; http only to a loopback host. 0, or -1 with err set. */
static int egoi_api_check_base(const char *base, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = -1;

	if (!u)
		goto out;
	if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		egoi_api_set_err(err, errlen, "egoi_api_base '%.200s' is not a URL", base);
		goto out;
	}
	if (strcasecmp(scheme, "https") == 0 ||
	    (strcasecmp(scheme, "http") == 0 &&
	     (strcmp(host, "127.0.0.1") == 0 || strcmp(host, "[::1]") == 0 ||
	      strcasecmp(host, "localhost") == 0)))
		rc = 0;
	else
		egoi_api_set_err(err, errlen, "egoi_api_base '%.200s' must be https (plain http "
				 "only to 127.0.0.1, ::1 or localhost)", base);
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

struct egoi_api *egoi_api_new(const struct egoi_api_options *o, char *err, size_t errlen)
{
	struct egoi_api *a = NULL;
	struct curl_slist *l;
	size_t n;

	if (egoi_api_check_base(o->base, err, errlen) < 0)
		return NULL;
	a = calloc(1, sizeof *a);
	if (!a)
		goto nomem;
	a->timeout_ms = o->timeout_ms;
	a->base = strdup(o->base);
	if (!a->base)
		goto nomem;
	n = strlen(a->base);
	while (n > 0 && a->base[n - 1] == '/')
		a->base[--n] = '\0';
	n = strlen(o->key) + sizeof "Apikey: ";
	a->key_line = malloc(n);
	if (!a->key_line)
		goto nomem;
	snprintf(a->key_line, n, "Apikey: %s", o->key);
	l = curl_slist_append(NULL, a->key_line);
	if (!l)
		goto nomem;
	a->headers = l;
	l = curl_slist_append(a->headers, "Accept: application/json");
	if (!l)
		goto nomem;
	a->easy = curl_easy_init();
	if (!a->easy)
		goto nomem;
	return a;
nomem:
	egoi_api_free(a);
	egoi_api_set_err(err, errlen, "out of memory");
	return NULL;
}

void egoi_api_free(struct egoi_api *a)
{
	if (!a)
		return;
	if (a->easy)
		curl_easy_cleanup(a->easy);
	/* curl_slist_append copied the line: zero both copies of the key. */
	for (struct curl_slist *l = a->headers; l; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(a->headers);
	if (a->key_line) {
		explicit_bzero(a->key_line, strlen(a->key_line));
		free(a->key_line);
	}
	free(a->base);
	free(a);
}

long egoi_api_requests(const struct egoi_api *a)
{
	return a->requests;
}

static size_t egoi_api_on_body(char *p, size_t size, size_t n, void *arg)
{
	struct util_buf *b = arg;

	return util_buf_add(b, p, size * n) < 0 ? 0 : size * n;
}

/* Text of a JSON value for an error line: strings as they are, arrays
 * joined with ", ", objects as "key: value" joined with "; ". */
static void egoi_api_render(struct util_buf *b, yajl_val v, int depth)
{
	if (!v || depth > 4)
		return;
	if (YAJL_IS_STRING(v)) {
		util_buf_printf(b, "%s", (v)->u.string);
	} else if (YAJL_IS_NUMBER(v)) {
		util_buf_printf(b, "%s", YAJL_GET_NUMBER(v));
	} else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
		util_buf_printf(b, "%s", YAJL_IS_TRUE(v) ? "true" : "false");
	} else if (YAJL_IS_ARRAY(v)) {
		for (size_t i = 0; i < YAJL_GET_ARRAY(v)->len; i++) {
			if (i)
				util_buf_printf(b, ", ");
			egoi_api_render(b, YAJL_GET_ARRAY(v)->values[i], depth + 1);
		}
	} else if (YAJL_IS_OBJECT(v)) {
		for (size_t i = 0; i < YAJL_GET_OBJECT(v)->len; i++) {
			util_buf_printf(b, "%s%s: ", i ? "; " : "", YAJL_GET_OBJECT(v)->keys[i]);
			egoi_api_render(b, YAJL_GET_OBJECT(v)->values[i], depth + 1);
		}
	}
}

/* "STATUS TITLE: DETAIL (errors: ...)" from a problem object, or the
 * start of a body that is not one; control bytes become '?'. */
static void egoi_api_problem(long status, const char *body, char *err, size_t errlen)
{
	const char *tp[] = { "title", NULL }, *dp[] = { "detail", NULL }, *ep[] = { "errors", NULL };
	yajl_val root = body && *body ? yajl_tree_parse(body, NULL, 0) : NULL;
	struct util_buf b = { .max = 2048 };
	yajl_val title = root ? yajl_tree_get(root, tp, yajl_t_string) : NULL;
	yajl_val detail = root ? yajl_tree_get(root, dp, yajl_t_string) : NULL;
	yajl_val errors = root ? yajl_tree_get(root, ep, yajl_t_any) : NULL;

	util_buf_printf(&b, "HTTP %ld", status);
	if (title)
		util_buf_printf(&b, " %s", (title)->u.string);
	if (detail)
		util_buf_printf(&b, ": %s", (detail)->u.string);
	if (errors && !YAJL_IS_NULL(errors)) {
		util_buf_printf(&b, " (errors: ");
		egoi_api_render(&b, errors, 0);
		util_buf_printf(&b, ")");
	}
	if (!root && body && *body)
		util_buf_printf(&b, ": %.200s", body);
	b.failed = 0;  /* a cut line is still worth printing */
	snprintf(err, errlen, "%s", b.p ? b.p : "");
	for (char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	util_buf_free(&b);
	yajl_tree_free(root);
}

/* Seconds to wait before retrying a 429: Retry-After (libcurl parses
 * seconds and dates), else X-RateLimit-Reset, else 1, 2, 4 s; capped. */
static long egoi_api_wait_s(struct egoi_api *a, int attempt)
{
	curl_off_t after = 0;
	struct curl_header *h = NULL;
	long wait = 1L << attempt;

	if (curl_easy_getinfo(a->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0) {
		wait = (long)(after > EGOI_API_WAIT_MAX_S ? EGOI_API_WAIT_MAX_S : after);
	} else if (curl_easy_header(a->easy, "X-RateLimit-Reset", 0, CURLH_HEADER, -1, &h) ==
		   CURLHE_OK) {
		char *end;
		long long v = strtoll(h->value, &end, 10);

		if (end != h->value && v > 0) {
			if (v > 1000000000LL)
				v -= (long long)time(NULL);
			if (v >= 0)
				wait = (long)(v > EGOI_API_WAIT_MAX_S ? EGOI_API_WAIT_MAX_S : v);
		}
	}
	return wait < 1 ? 1 : wait > EGOI_API_WAIT_MAX_S ? EGOI_API_WAIT_MAX_S : wait;
}

/* Sets a->easy up for one attempt of method on url (body NULL = none),
 * the answer into b. 0, or -1 when libcurl refused an option. */
static int egoi_api_setup(struct egoi_api *a, const char *method, const char *url,
			  const char *body, struct curl_slist *hdrs, struct util_buf *b)
{
	int bad = 0;

	curl_easy_reset(a->easy);
	a->errbuf[0] = '\0';
	bad |= curl_easy_setopt(a->easy, CURLOPT_URL, url) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, a->timeout_ms) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_USERAGENT, "egoi-router") != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, egoi_api_on_body) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_WRITEDATA, b) != CURLE_OK;
	bad |= curl_easy_setopt(a->easy, CURLOPT_ERRORBUFFER, a->errbuf) != CURLE_OK;
	if (body) {
		bad |= curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK;
		bad |= curl_easy_setopt(a->easy, CURLOPT_POSTFIELDSIZE_LARGE,
					(curl_off_t)strlen(body)) != CURLE_OK;
	} else if (strcmp(method, "GET") == 0) {
		bad |= curl_easy_setopt(a->easy, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	}
	return bad ? -1 : 0;
}

/* Sleeps s whole seconds, whatever signals come. */
static void egoi_api_sleep_s(long s)
{
	while (s-- > 0) {
		struct timespec ts = { 1, 0 };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

/* The error of a final non-2xx answer (body: what it said) into err, and
 * whether it is E-goi refusing (4xx but 408 and 429) or failing. */
static int egoi_api_refusal(long status, const char *body, const char *what, char *err,
			    size_t errlen)
{
	char line[1536];

	egoi_api_problem(status, body, line, sizeof line);
	if (status == 401 || status == 403)
		egoi_api_set_err(err, errlen, "%s: %s (check egoi_api_key / EGOI_API_KEY)", what,
				 line);
	else if (status == 429)
		egoi_api_set_err(err, errlen, "%s: %s, still after %d retries", what, line,
				 EGOI_API_RETRIES);
	else
		egoi_api_set_err(err, errlen, "%s: %s", what, line);
	return status >= 400 && status < 500 && status != 408 && status != 429 ? EGOI_API_REFUSED
									     : EGOI_API_FAILED;
}

/*
 * One call: method on base + path (body NULL = none), retried on 429. On
 * EGOI_API_OK, *status is the 2xx and resp (when not NULL) holds the answer.
 */
static int egoi_api_call(struct egoi_api *a, const char *method, const char *path,
			 const char *body, long *status, struct util_buf *resp, char *err,
			 size_t errlen)
{
	struct curl_slist *hdrs = a->headers, *ctype = NULL;
	struct util_buf tmp = { .max = EGOI_API_BODY_MAX };
	struct util_buf *b = resp ? resp : &tmp;
	char url[2048], what[256];
	int rc = EGOI_API_FAILED;

	snprintf(what, sizeof what, "%s %.200s", method, path);
	if ((size_t)snprintf(url, sizeof url, "%s%s", a->base, path) >= sizeof url) {
		egoi_api_set_err(err, errlen, "%s: URL too long", what);
		goto out;
	}
	if (body) {
		/* A copy of the shared list with Content-Type in front. */
		ctype = curl_slist_append(NULL, "Content-Type: application/json");
		if (!ctype) {
			egoi_api_set_err(err, errlen, "out of memory");
			goto out;
		}
		ctype->next = a->headers;
		hdrs = ctype;
	}
	for (int attempt = 0;; attempt++) {
		CURLcode cc;

		util_buf_reset(b);
		if (egoi_api_setup(a, method, url, body, hdrs, b) != 0) {
			egoi_api_set_err(err, errlen, "%s: libcurl refused an option", what);
			goto out;
		}
		a->requests++;
		cc = curl_easy_perform(a->easy);
		if (cc == CURLE_OPERATION_TIMEDOUT) {
			egoi_api_set_err(err, errlen, "%s: no answer within %ld ms (timeout)", what,
					 a->timeout_ms);
			goto out;
		}
		if (cc == CURLE_WRITE_ERROR && b->failed) {
			egoi_api_set_err(err, errlen, "%s: answer larger than %u bytes", what,
					 EGOI_API_BODY_MAX);
			goto out;
		}
		if (cc != CURLE_OK) {
			egoi_api_set_err(err, errlen, "%s: %s", what,
					 a->errbuf[0] ? a->errbuf : curl_easy_strerror(cc));
			goto out;
		}
		if (curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, status) != CURLE_OK)
			*status = 0;
		if (*status == 429 && attempt < EGOI_API_RETRIES) {
			long wait = egoi_api_wait_s(a, attempt);

			fprintf(stderr, "egoi-router: E-goi: %s: 429 rate limited, retrying in %ld s "
				"(%d of %d)\n", what, wait, attempt + 1, EGOI_API_RETRIES);
			egoi_api_sleep_s(wait);
			continue;
		}
		break;
	}
	if (*status >= 200 && *status < 300)
		rc = EGOI_API_OK;
	else
		rc = egoi_api_refusal(*status, b->p, what, err, errlen);
out:
	if (ctype) {
		ctype->next = NULL;
		curl_slist_free_all(ctype);
	}
	util_buf_free(&tmp);
	return rc;
}

void egoi_api_set_free(struct egoi_webhook_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		egoi_webhook_clear(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* Appends the items of one page to out; *total and *got from the page. */
static int egoi_api_page(const char *text, struct egoi_webhook_set *out, long long *total,
			 size_t *got, char *err, size_t errlen)
{
	const char *tp[] = { "total_items", NULL }, *ip[] = { "items", NULL };
	char perr[128];
	yajl_val root = yajl_tree_parse(text ? text : "", perr, sizeof perr);
	yajl_val t = root ? yajl_tree_get(root, tp, yajl_t_number) : NULL;
	yajl_val items = root ? yajl_tree_get(root, ip, yajl_t_array) : NULL;
	int rc = EGOI_API_FAILED;
	size_t n;
	struct egoi_webhook *nv;

	if (!t || !YAJL_IS_INTEGER(t) || !items) {
		egoi_api_set_err(err, errlen, "GET /webhooks: the answer is not {\"total_items\": N, "
				 "\"items\": [...]}");
		goto out;
	}
	*total = YAJL_GET_INTEGER(t);
	n = YAJL_GET_ARRAY(items)->len;
	*got = n;
	nv = realloc(out->v, (out->n + n + 1) * sizeof *nv);
	if (!nv) {
		egoi_api_set_err(err, errlen, "out of memory");
		goto out;
	}
	out->v = nv;
	for (size_t i = 0; i < n; i++) {
		memset(&out->v[out->n], 0, sizeof out->v[out->n]);
		if (egoi_webhook_from_json(&out->v[out->n], YAJL_GET_ARRAY(items)->values[i]) < 0) {
			egoi_api_set_err(err, errlen, "GET /webhooks: item %zu is not a webhook "
					 "(webhook_id, list_id, url)", i);
			goto out;
		}
		out->n++;
	}
	rc = EGOI_API_OK;
out:
	yajl_tree_free(root);
	return rc;
}

int egoi_api_list(struct egoi_api *a, struct egoi_webhook_set *out, char *err, size_t errlen)
{
	struct util_buf b = { .max = EGOI_API_BODY_MAX };
	long long total = 0;
	int rc = EGOI_API_OK;

	memset(out, 0, sizeof *out);
	/* Until total_items are read; an empty page ends it too, so a total
	 * that grows while we read cannot loop forever. */
	do {
		char path[64];
		size_t got = 0;
		long status = 0;

		snprintf(path, sizeof path, "/webhooks?offset=%zu&limit=%d", out->n, EGOI_API_PAGE);
		rc = egoi_api_call(a, "GET", path, NULL, &status, &b, err, errlen);
		if (rc == EGOI_API_OK)
			rc = egoi_api_page(b.p, out, &total, &got, err, errlen);
		if (rc != EGOI_API_OK || got == 0)
			break;
	} while ((long long)out->n < total);
	util_buf_free(&b);
	if (rc != EGOI_API_OK)
		egoi_api_set_free(out);
	return rc;
}

int egoi_api_create(struct egoi_api *a, const struct egoi_webhook *w, long long *id, char *err,
		    size_t errlen)
{
	const char *ip[] = { "webhook_id", NULL };
	struct util_buf b = { .max = EGOI_API_BODY_MAX };
	char *body = egoi_webhook_body(w);
	yajl_val root = NULL, v;
	long status = 0;
	int rc;

	*id = 0;
	if (!body) {
		egoi_api_set_err(err, errlen, "out of memory");
		return EGOI_API_FAILED;
	}
	rc = egoi_api_call(a, "POST", "/webhooks", body, &status, &b, err, errlen);
	if (rc == EGOI_API_OK) {
		root = yajl_tree_parse(b.p ? b.p : "", NULL, 0);
		v = root ? yajl_tree_get(root, ip, yajl_t_number) : NULL;
		if (v && YAJL_IS_INTEGER(v))
			*id = YAJL_GET_INTEGER(v);
	}
	yajl_tree_free(root);
	util_buf_free(&b);
	free(body);
	return rc;
}

int egoi_api_delete(struct egoi_api *a, long long id, char *err, size_t errlen)
{
	char path[64];
	long status = 0;

	snprintf(path, sizeof path, "/webhooks/%lld", id);
	return egoi_api_call(a, "DELETE", path, NULL, &status, NULL, err, errlen);
}
