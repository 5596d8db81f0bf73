/*
 * egoi_standin.c — the stand-in E-goi webhooks API (see egoi_standin.h).
 * civetweb serves, yajl_tree checks request bodies, yajl_gen writes the
 * stored webhooks. Webhooks and requests live in arrays under one mutex;
 * a request record is never moved (an array of pointers).
 */
#include "e2e/egoi_standin.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <civetweb.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "egoi_actions.h"
#include "util_buf.h"

#define STANDIN_SCRIPT_MAX 16

struct standin_hook {
	long long id, list_id;
	char *url;
	char *json;
	int deleted;
};

struct standin_answer {
	int status;
	char header[128];
	char *body;
	long delay_ms;
};

struct standin {
	struct mg_context *ctx;
	int port;
	char key[128];
	pthread_mutex_t lock;
	struct standin_hook *hooks;
	size_t nhooks, caphooks;
	long long next_id;
	struct standin_req **reqs;
	size_t nreqs, capreqs;
	struct standin_answer script[STANDIN_SCRIPT_MAX];
	size_t script_head, script_len;
	struct util_buf violations;
};

static void standin_violation(struct standin *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void standin_violation(struct standin *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	util_buf_printf(&s->violations, "%s\n", line);
}

static void standin_gen_strings(yajl_gen g, const char *key, char **v, size_t n)
{
	yajl_gen_string(g, (const unsigned char *)key, strlen(key));
	yajl_gen_array_open(g);
	for (size_t i = 0; i < n; i++)
		yajl_gen_string(g, (const unsigned char *)v[i], strlen(v[i]));
	yajl_gen_array_close(g);
}

/* Stores one webhook (lock held); returns its id. */
static long long standin_store(struct standin *s, long long list_id, const char *url, char **actions,
			       size_t na, char **fields, size_t nf)
{
	yajl_gen g = yajl_gen_alloc(NULL);
	const unsigned char *buf;
	size_t len;
	struct standin_hook *h;

	if (!g)
		return 0;
	if (s->nhooks == s->caphooks) {
		size_t ncap = s->caphooks ? s->caphooks * 2 : 64;
		struct standin_hook *n = realloc(s->hooks, ncap * sizeof *n);

		if (!n) {
			yajl_gen_free(g);
			return 0;
		}
		s->hooks = n;
		s->caphooks = ncap;
	}
	h = &s->hooks[s->nhooks];
	memset(h, 0, sizeof *h);
	h->id = s->next_id++;
	h->list_id = list_id;
	yajl_gen_map_open(g);
	yajl_gen_string(g, (const unsigned char *)"webhook_id", 10);
	yajl_gen_integer(g, h->id);
	yajl_gen_string(g, (const unsigned char *)"list_id", 7);
	yajl_gen_integer(g, list_id);
	yajl_gen_string(g, (const unsigned char *)"url", 3);
	yajl_gen_string(g, (const unsigned char *)url, strlen(url));
	standin_gen_strings(g, "actions", actions, na);
	standin_gen_strings(g, "fields", fields, nf);
	yajl_gen_map_close(g);
	yajl_gen_get_buf(g, &buf, &len);
	h->json = strndup((const char *)buf, len);
	h->url = strdup(url);
	yajl_gen_free(g);
	if (!h->json || !h->url) {
		free(h->json);
		free(h->url);
		return 0;
	}
	s->nhooks++;
	return h->id;
}

/* "a,b" → array of strings (malloc'd); NULL text = none. */
static char **standin_split(const char *text, size_t *n)
{
	char **v, *copy, *save = NULL;
	size_t cap = 1;

	*n = 0;
	if (!text)
		return NULL;
	for (const char *p = text; *p; p++)
		cap += *p == ',';
	v = calloc(cap, sizeof *v);
	copy = strdup(text);
	if (!v || !copy) {
		free(v);
		free(copy);
		return NULL;
	}
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
		v[(*n)++] = strdup(t);
	free(copy);
	return v;
}

static void standin_free_strings(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

long long standin_add(struct standin *s, long long list_id, const char *url, const char *actions,
		      const char *fields)
{
	size_t na, nf;
	char **a = standin_split(actions, &na), **f = standin_split(fields, &nf);
	long long id;

	pthread_mutex_lock(&s->lock);
	id = standin_store(s, list_id, url, a, na, f, nf);
	pthread_mutex_unlock(&s->lock);
	standin_free_strings(a, na);
	standin_free_strings(f, nf);
	return id;
}

/* Writes an answer; body NULL = a problem object for status. */
static void standin_answer(struct mg_connection *conn, int status, const char *header,
			   const char *body)
{
	char problem[512];
	const char *text = mg_get_response_code_text(conn, status);

	if (!body && status != 204) {
		snprintf(problem, sizeof problem,
			 "{\"type\":\"about:blank\",\"title\":\"%s\",\"status\":%d,"
			 "\"detail\":\"stand-in answer %d\"}", text, status, status);
		body = problem;
	}
	mg_printf(conn, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n%s%s"
		  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, text,
		  header ? header : "", header ? "\r\n" : "", body ? strlen(body) : 0,
		  body ? body : "");
}

/* Checks a create body (lock held); 0 when it is what the API wants. */
static int standin_check_create(struct standin *s, const char *body, long long *list_id,
				char **url, char ***actions, size_t *na, char ***fields, size_t *nf)
{
	char perr[256];
	yajl_val root = yajl_tree_parse(body, perr, sizeof perr);
	int bad = 0;

	*url = NULL;
	*actions = *fields = NULL;
	*na = *nf = 0;
	if (!root || !YAJL_IS_OBJECT(root)) {
		standin_violation(s, "POST /webhooks: body is not a JSON object: %.200s", body);
		yajl_tree_free(root);
		return -1;
	}
	for (size_t i = 0; i < YAJL_GET_OBJECT(root)->len; i++) {
		const char *k = YAJL_GET_OBJECT(root)->keys[i];
		yajl_val v = YAJL_GET_OBJECT(root)->values[i];
		int strings = strcmp(k, "actions") == 0 || strcmp(k, "fields") == 0;

		if (strcmp(k, "list_id") == 0) {
			if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 1)
				bad = 1, standin_violation(s, "list_id is not an integer >= 1");
			else
				*list_id = YAJL_GET_INTEGER(v);
		} else if (strcmp(k, "url") == 0) {
			if (!YAJL_IS_STRING(v))
				bad = 1, standin_violation(s, "url is not a string");
			else
				*url = strdup(v->u.string);
		} else if (strings) {
			size_t n = YAJL_IS_ARRAY(v) ? YAJL_GET_ARRAY(v)->len : 0;
			char **arr = n ? calloc(n, sizeof *arr) : NULL;

			if (!YAJL_IS_ARRAY(v) || (strcmp(k, "actions") == 0 && n == 0))
				bad = 1, standin_violation(s, "%s is not a non-empty array", k);
			for (size_t j = 0; arr && j < n; j++) {
				yajl_val e = YAJL_GET_ARRAY(v)->values[j];

				if (!YAJL_IS_STRING(e)) {
					bad = 1, standin_violation(s, "%s[%zu] is not a string", k, j);
					continue;
				}
				if (strcmp(k, "actions") == 0 && egoi_action_index(e->u.string) < 0)
					bad = 1, standin_violation(s, "actions[%zu] '%s' is not an "
								   "action", j, e->u.string);
				arr[j] = strdup(e->u.string ? e->u.string : "");
			}
			if (strcmp(k, "actions") == 0)
				*actions = arr, *na = n;
			else
				*fields = arr, *nf = n;
		} else {
			bad = 1, standin_violation(s, "POST /webhooks: unknown member '%s'", k);
		}
	}
	if (!*url || !*actions || *list_id < 1)
		bad = 1, standin_violation(s, "POST /webhooks: list_id, url or actions missing");
	yajl_tree_free(root);
	return bad ? -1 : 0;
}

/* The normal answer to one request (lock held). */
static void standin_serve(struct standin *s, struct mg_connection *conn,
			  const struct mg_request_info *ri, const char *body, int *status,
			  struct util_buf *out)
{
	const char *ctype = mg_get_header(conn, "Content-Type");
	const char *q = ri->query_string ? ri->query_string : "";
	char v[32];

	*status = 200;
	if (strcmp(ri->request_method, "POST") == 0 && strcmp(ri->local_uri, "/webhooks") == 0) {
		long long list_id = 0, id;
		char *url = NULL, **actions = NULL, **fields = NULL;
		size_t na = 0, nf = 0;

		if (!ctype || strncasecmp(ctype, "application/json", 16) != 0) {
			standin_violation(s, "POST /webhooks: Content-Type is '%s'", ctype ? ctype : "");
			*status = 400;
		} else if (standin_check_create(s, body, &list_id, &url, &actions, &na, &fields,
						&nf) < 0) {
			*status = 400;
		} else if ((id = standin_store(s, list_id, url, actions, na, fields, nf)) > 0) {
			util_buf_printf(out, "%s", s->hooks[s->nhooks - 1].json);
		} else {
			*status = 500;
		}
		free(url);
		standin_free_strings(actions, na);
		standin_free_strings(fields, nf);
		return;
	}
	if (strcmp(ri->request_method, "GET") == 0 && strcmp(ri->local_uri, "/webhooks") == 0) {
		long offset = -1, limit = -1;
		size_t live = 0, shown = 0;

		if (mg_get_var(q, strlen(q), "offset", v, sizeof v) > 0)
			offset = strtol(v, NULL, 10);
		if (mg_get_var(q, strlen(q), "limit", v, sizeof v) > 0)
			limit = strtol(v, NULL, 10);
		if (offset < 0 || limit < 1 || limit > 1000 || *body) {
			standin_violation(s, "GET /webhooks?%s: offset >= 0 and limit 1..1000 wanted, "
					  "no body", q);
			*status = 400;
			return;
		}
		for (size_t i = 0; i < s->nhooks; i++)
			live += !s->hooks[i].deleted;
		util_buf_printf(out, "{\"total_items\":%zu,\"items\":[", live);
		for (size_t i = 0, k = 0; i < s->nhooks; i++) {
			if (s->hooks[i].deleted)
				continue;
			if (k >= (size_t)offset && shown < (size_t)limit)
				util_buf_printf(out, "%s%s", shown++ ? "," : "", s->hooks[i].json);
			k++;
		}
		util_buf_printf(out, "]}");
		return;
	}
	if (strcmp(ri->request_method, "DELETE") == 0 &&
	    strncmp(ri->local_uri, "/webhooks/", 10) == 0) {
		long long id = strtoll(ri->local_uri + 10, NULL, 10);

		*status = 404;
		for (size_t i = 0; i < s->nhooks; i++)
			if (!s->hooks[i].deleted && s->hooks[i].id == id) {
				s->hooks[i].deleted = 1;
				*status = 204;
			}
		return;
	}
	standin_violation(s, "%s %s: no such operation", ri->request_method, ri->local_uri);
	*status = 405;
}

static int standin_handler(struct mg_connection *conn, void *cbdata)
{
	struct standin *s = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *key = mg_get_header(conn, "Apikey");
	struct util_buf body = { .max = 16 * 1024 * 1024 }, out = { .max = 0 };
	struct standin_answer a = { 0 };
	struct standin_req *r = calloc(1, sizeof *r);
	char chunk[8192];
	int got, status;

	while ((got = mg_read(conn, chunk, sizeof chunk)) > 0)
		util_buf_add(&body, chunk, (size_t)got);
	util_buf_add(&body, "", 0);
	pthread_mutex_lock(&s->lock);
	if (s->script_len > 0) {
		a = s->script[s->script_head];
		s->script_head = (s->script_head + 1) % STANDIN_SCRIPT_MAX;
		s->script_len--;
	}
	if (a.status == 0) {
		if (!key || strcmp(key, s->key) != 0)
			status = 401;
		else
			standin_serve(s, conn, ri, body.p ? body.p : "", &status, &out);
	} else {
		status = a.status;
	}
	if (r) {
		snprintf(r->method, sizeof r->method, "%s", ri->request_method);
		snprintf(r->uri, sizeof r->uri, "%s%s%s", ri->local_uri, ri->query_string ? "?" : "",
			 ri->query_string ? ri->query_string : "");
		snprintf(r->apikey, sizeof r->apikey, "%s", key ? key : "");
		r->body = strdup(body.p ? body.p : "");
		r->status = status;
		if (s->nreqs == s->capreqs) {
			size_t ncap = s->capreqs ? s->capreqs * 2 : 16;
			struct standin_req **n = realloc(s->reqs, ncap * sizeof *n);

			if (n) {
				s->reqs = n;
				s->capreqs = ncap;
			}
		}
		if (s->nreqs < s->capreqs)
			s->reqs[s->nreqs++] = r;
		else
			free(r->body), free(r);
	}
	pthread_mutex_unlock(&s->lock);
	if (a.delay_ms > 0) {
		struct timespec ts = { a.delay_ms / 1000, (a.delay_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	if (a.status != 0)
		standin_answer(conn, status, a.header[0] ? a.header : NULL, a.body);
	else
		standin_answer(conn, status, NULL, status == 204 ? NULL : out.p);
	free(a.body);
	util_buf_free(&body);
	util_buf_free(&out);
	return status;
}

struct standin *standin_start(const char *key)
{
	struct standin *s = calloc(1, sizeof *s);
	struct mg_server_port ports[2];
	struct mg_callbacks cb;
	const char *opts[] = {
		"listening_ports", "127.0.0.1:0",
		"num_threads", "4",
		"request_timeout_ms", "10000",
		NULL,
	};

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->key, sizeof s->key, "%s", key);
	s->next_id = 1;
	memset(&cb, 0, sizeof cb);
	s->ctx = mg_start(&cb, NULL, opts);
	if (!s->ctx) {
		fprintf(stderr, "standin: mg_start failed\n");
		goto fail;
	}
	mg_set_request_handler(s->ctx, "/", standin_handler, s);
	if (mg_get_server_ports(s->ctx, 2, ports) < 1 || ports[0].port <= 0) {
		fprintf(stderr, "standin: no listening port\n");
		goto fail;
	}
	s->port = ports[0].port;
	return s;
fail:
	standin_stop(s);
	return NULL;
}

void standin_stop(struct standin *s)
{
	if (!s)
		return;
	if (s->ctx)
		mg_stop(s->ctx);
	for (size_t i = 0; i < s->nhooks; i++) {
		free(s->hooks[i].url);
		free(s->hooks[i].json);
	}
	free(s->hooks);
	for (size_t i = 0; i < s->nreqs; i++) {
		free(s->reqs[i]->body);
		free(s->reqs[i]);
	}
	free(s->reqs);
	for (size_t i = 0; i < s->script_len; i++)
		free(s->script[(s->script_head + i) % STANDIN_SCRIPT_MAX].body);
	util_buf_free(&s->violations);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void standin_url(const struct standin *s, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%d", s->port);
}

void standin_script(struct standin *s, int status, const char *header, const char *body,
		    long delay_ms)
{
	pthread_mutex_lock(&s->lock);
	if (s->script_len < STANDIN_SCRIPT_MAX) {
		struct standin_answer *a =
			&s->script[(s->script_head + s->script_len) % STANDIN_SCRIPT_MAX];

		a->status = status;
		snprintf(a->header, sizeof a->header, "%s", header ? header : "");
		a->body = body ? strdup(body) : NULL;
		a->delay_ms = delay_ms;
		s->script_len++;
	}
	pthread_mutex_unlock(&s->lock);
}

size_t standin_count(struct standin *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nreqs;
	pthread_mutex_unlock(&s->lock);
	return n;
}

const struct standin_req *standin_get(struct standin *s, size_t i)
{
	const struct standin_req *r = NULL;

	pthread_mutex_lock(&s->lock);
	if (i < s->nreqs)
		r = s->reqs[i];
	pthread_mutex_unlock(&s->lock);
	return r;
}

size_t standin_webhooks(struct standin *s)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nhooks; i++)
		n += !s->hooks[i].deleted;
	pthread_mutex_unlock(&s->lock);
	return n;
}

const char *standin_webhook_json(struct standin *s, long long id)
{
	const char *j = NULL;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nhooks; i++)
		if (!s->hooks[i].deleted && s->hooks[i].id == id)
			j = s->hooks[i].json;
	pthread_mutex_unlock(&s->lock);
	return j;
}

long long standin_find(struct standin *s, long long list_id, const char *url)
{
	long long id = 0;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nhooks && !id; i++)
		if (!s->hooks[i].deleted && s->hooks[i].list_id == list_id &&
		    strcmp(s->hooks[i].url, url) == 0)
			id = s->hooks[i].id;
	pthread_mutex_unlock(&s->lock);
	return id;
}

char *standin_violations(struct standin *s)
{
	char *v = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->violations.len > 0)
		v = strdup(s->violations.p);
	pthread_mutex_unlock(&s->lock);
	return v;
}
