/*
 * egoi_webhook.c — E-goi webhook objects: from and to JSON (yajl), set
 * comparison, and the token in their URLs (see egoi_webhook.h).
 *
 * Threads: pure functions on caller-owned data.
 */
#include "egoi_webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "json_out.h"
#include "util.h"

static void egoi_free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void egoi_free_list(char **v, size_t n)
{
	egoi_free_strings(v, n);
}

void egoi_webhook_clear(struct egoi_webhook *w)
{
	if (!w)
		return;
	free(w->url);
	egoi_free_strings(w->actions, w->nactions);
	egoi_free_strings(w->fields, w->nfields);
	memset(w, 0, sizeof *w);
}

/* A JSON array of strings into a malloc'd array; a missing member is empty. */
static int egoi_strings_from_json(yajl_val arr, char ***out, size_t *n)
{
	char **v = NULL;
	size_t len;

	*out = NULL;
	*n = 0;
	if (!arr || YAJL_IS_NULL(arr))
		return 0;
	if (!YAJL_IS_ARRAY(arr))
		return -1;
	len = YAJL_GET_ARRAY(arr)->len;
	if (len == 0)
		return 0;
	v = calloc(len, sizeof *v);
	if (!v)
		return -1;
	for (size_t i = 0; i < len; i++) {
		yajl_val s = YAJL_GET_ARRAY(arr)->values[i];

		if (!YAJL_IS_STRING(s) || !(v[i] = strdup((s)->u.string))) {
			egoi_free_strings(v, len);
			return -1;
		}
	}
	*out = v;
	*n = len;
	return 0;
}

static yajl_val egoi_member(yajl_val obj, const char *name)
{
	const char *path[] = { name, NULL };

	return yajl_tree_get(obj, path, yajl_t_any);
}

int egoi_webhook_from_json(struct egoi_webhook *w, yajl_val obj)
{
	yajl_val id, list, url;

	if (!YAJL_IS_OBJECT(obj))
		return -1;
	id = egoi_member(obj, "webhook_id");
	list = egoi_member(obj, "list_id");
	url = egoi_member(obj, "url");
	if (!id || !YAJL_IS_INTEGER(id) || !list || !url || !YAJL_IS_STRING(url))
		return -1;
	w->id = YAJL_GET_INTEGER(id);
	/* An integer in this API; a string tolerated, as events carry it. */
	if (YAJL_IS_INTEGER(list))
		w->list_id = YAJL_GET_INTEGER(list);
	else if (YAJL_IS_STRING(list))
		w->list_id = strtoll((list)->u.string, NULL, 10);
	else
		return -1;
	w->url = strdup((url)->u.string);
	if (!w->url ||
	    egoi_strings_from_json(egoi_member(obj, "actions"), &w->actions, &w->nactions) < 0 ||
	    egoi_strings_from_json(egoi_member(obj, "fields"), &w->fields, &w->nfields) < 0) {
		egoi_webhook_clear(w);
		return -1;
	}
	return 0;
}

static yajl_gen_status egoi_gen_key(yajl_gen g, const char *key)
{
	return yajl_gen_string(g, (const unsigned char *)key, strlen(key));
}

static yajl_gen_status egoi_gen_strings(yajl_gen g, const char *key, char **v, size_t n)
{
	yajl_gen_status st = egoi_gen_key(g, key);

	if (st == yajl_gen_status_ok)
		st = yajl_gen_array_open(g);
	for (size_t i = 0; i < n && st == yajl_gen_status_ok; i++)
		st = json_out_string(g, v[i], strlen(v[i]));
	if (st == yajl_gen_status_ok)
		st = yajl_gen_array_close(g);
	return st;
}

/*
 * The members the API's body and the CLI's line share: list_id, url,
 * actions, fields. The body sends w->url as it is (a URL that is not UTF-8
 * fails the body rather than register something else) and fields only when
 * there are some; the CLI shows url (redacted) with '?' for bytes that are
 * not UTF-8 (json_out_string), and fields always.
 */
static yajl_gen_status egoi_webhook_gen_members(yajl_gen g, const struct egoi_webhook *w,
						 const char *url, int for_cli)
{
	yajl_gen_status st = egoi_gen_key(g, "list_id");

	if (st == yajl_gen_status_ok)
		st = yajl_gen_integer(g, w->list_id);
	if (st == yajl_gen_status_ok)
		st = egoi_gen_key(g, "url");
	if (st == yajl_gen_status_ok)
		st = for_cli ? json_out_string(g, url, strlen(url))
			     : yajl_gen_string(g, (const unsigned char *)url, strlen(url));
	if (st == yajl_gen_status_ok)
		st = egoi_gen_strings(g, "actions", w->actions, w->nactions);
	if (st == yajl_gen_status_ok && (for_cli || w->nfields > 0))
		st = egoi_gen_strings(g, "fields", w->fields, w->nfields);
	return st;
}

char *egoi_webhook_body(const struct egoi_webhook *w)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	yajl_gen_status st;
	char *out = NULL;
	size_t len;

	if (!g)
		return NULL;
	yajl_gen_config(g, yajl_gen_validate_utf8, 1);
	st = yajl_gen_map_open(g);
	if (st == yajl_gen_status_ok)
		st = egoi_webhook_gen_members(g, w, w->url, 0);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_map_close(g);
	if (st == yajl_gen_status_ok && yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok)
		out = strndup((const char *)buf, len);
	yajl_gen_free(g);
	return out;
}

yajl_gen_status egoi_webhook_gen(yajl_gen g, const struct egoi_webhook *w, int ours)
{
	char *url = egoi_url_redact(w->url);
	yajl_gen_status st = url ? yajl_gen_map_open(g) : yajl_gen_generation_complete;

	if (st == yajl_gen_status_ok)
		st = egoi_gen_key(g, "webhook_id");
	if (st == yajl_gen_status_ok)
		st = yajl_gen_integer(g, w->id);
	if (st == yajl_gen_status_ok)
		st = egoi_webhook_gen_members(g, w, url, 1);
	if (st == yajl_gen_status_ok)
		st = egoi_gen_key(g, "ours");
	if (st == yajl_gen_status_ok)
		st = yajl_gen_bool(g, ours);
	if (st == yajl_gen_status_ok)
		st = yajl_gen_map_close(g);
	free(url);
	return st;
}

/* Every name of a is in b. */
static int egoi_subset(char **a, size_t na, char **b, size_t nb)
{
	for (size_t i = 0; i < na; i++) {
		size_t j = 0;

		while (j < nb && strcmp(a[i], b[j]) != 0)
			j++;
		if (j == nb)
			return 0;
	}
	return 1;
}

int egoi_webhook_same(const struct egoi_webhook *a, const struct egoi_webhook *b)
{
	return a->list_id == b->list_id && a->url && b->url && strcmp(a->url, b->url) == 0 &&
	       egoi_subset(a->actions, a->nactions, b->actions, b->nactions) &&
	       egoi_subset(b->actions, b->nactions, a->actions, a->nactions) &&
	       egoi_subset(a->fields, a->nfields, b->fields, b->nfields) &&
	       egoi_subset(b->fields, b->nfields, a->fields, a->nfields);
}

int egoi_split_list(const char *text, char ***out, size_t *n)
{
	char **v = NULL, **nv;
	size_t cnt = 0, cap = 0;
	const char *p = text;

	*out = NULL;
	*n = 0;
	for (;;) {
		const char *end = p + strcspn(p, ",");
		const char *a = p, *b = end;

		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (a == b)
			goto fail;
		nv = util_array_grow(v, &cap, cnt, sizeof *nv, 8);
		if (!nv)
			goto fail;
		v = nv;
		v[cnt] = strndup(a, (size_t)(b - a));
		if (!v[cnt])
			goto fail;
		cnt++;
		if (!*end)
			break;
		p = end + 1;
	}
	*out = v;
	*n = cnt;
	return 0;
fail:
	egoi_free_strings(v, cnt);
	return -1;
}

/*
 * Rewrites url's query: each token=VALUE parameter is replaced by
 * token=REDACTED (redact) or left out (!redact). Only the query counts;
 * the fragment, if any, is kept as it is.
 */
static char *egoi_url_tokens(const char *url, int redact)
{
	const char *q, *frag, *p;
	size_t len;
	char *out, *o;
	int first = 1;

	if (!url)
		return strdup("");
	len = strlen(url);
	out = malloc(len + sizeof "token=REDACTED" * (len / 2 + 1) + 1);
	if (!out)
		return NULL;
	q = strchr(url, '?');
	frag = strchr(url, '#');
	if (!q || (frag && frag < q)) {
		memcpy(out, url, len + 1);
		return out;
	}
	if (!frag)
		frag = url + len;
	memcpy(out, url, (size_t)(q - url));
	o = out + (q - url);
	for (p = q + 1; p <= frag;) {
		const char *end = p;

		while (end < frag && *end != '&')
			end++;
		if (end > p) {
			int tok = (size_t)(end - p) >= 6 && strncmp(p, "token=", 6) == 0;

			if (!tok || redact) {
				*o++ = first ? '?' : '&';
				first = 0;
				if (tok) {
					memcpy(o, "token=REDACTED", 14);
					o += 14;
				} else {
					memcpy(o, p, (size_t)(end - p));
					o += end - p;
				}
			}
		}
		p = end + 1;
	}
	strcpy(o, frag);
	return out;
}

char *egoi_url_redact(const char *url)
{
	return egoi_url_tokens(url, 1);
}

char *egoi_text_redact(const char *text)
{
	size_t len = strlen(text), n = 0;
	char *out = malloc(len + 16 * (len / 7 + 1) + 1);

	if (!out)
		return NULL;
	for (const char *p = text; *p;) {
		if ((*p == '?' || *p == '&') && strncmp(p + 1, "token=", 6) == 0) {
			memcpy(out + n, p, 7);
			n += 7;
			p += 7;
			memcpy(out + n, "REDACTED", 8);
			n += 8;
			p += strcspn(p, "&# \t\r\n\"'<>()[]{},;");
			continue;
		}
		out[n++] = *p++;
	}
	out[n] = '\0';
	return out;
}

char *egoi_url_strip_token(const char *url)
{
	return egoi_url_tokens(url, 0);
}

int egoi_url_is(const char *url, const char *base)
{
	char *a = egoi_url_strip_token(url), *b = egoi_url_strip_token(base);
	int same = a && b && strcmp(a, b) == 0;

	free(a);
	free(b);
	return same;
}

char *egoi_url_with_token(const char *url, const char *token)
{
	char *enc = NULL, *out = NULL;
	size_t n;

	/* A URL with a fragment would carry the token after it, unsent. */
	if (!token || strstr(url, "?token=") || strstr(url, "&token=") || strchr(url, '#'))
		return strdup(url);
	enc = curl_easy_escape(NULL, token, 0);
	if (!enc)
		return NULL;
	n = strlen(url) + strlen(enc) + sizeof "&token=";
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s%stoken=%s", url,
			 !strchr(url, '?') ? "?" : url[strlen(url) - 1] == '?' ? "" : "&", enc);
	explicit_bzero(enc, strlen(enc));  /* a copy of the secret */
	curl_free(enc);
	return out;
}
