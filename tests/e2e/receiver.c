/*
 * receiver.c — the recording webhook receiver of the end-to-end tests.
 *
 * A civetweb context in plain HTTP with one catch-all handler. The handler
 * reads the whole body (civetweb handles Content-Length and chunked), copies
 * the request into a record, picks the status (script queue first, then the
 * default) and answers with a complete response in one mg_write.
 *
 * Threads: see receiver.h; one mutex guards the record list and the script.
 */
#include "e2e/receiver.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RECV_SCRIPT_MAX 32

struct receiver {
	struct mg_context *ctx;
	int port;
	pthread_mutex_t lock;
	struct recv_request **reqs;
	size_t count, cap;
	int script[RECV_SCRIPT_MAX];
	size_t script_head, script_len;
	int default_status;
};

static char *recv_strdup(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static void recv_request_free(struct recv_request *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->nheaders; i++) {
		free(q->headers[i].name);
		free(q->headers[i].value);
	}
	free(q->headers);
	free(q->method);
	free(q->uri);
	free(q->body);
	free(q);
}

/* Reads the whole request body into a NUL-terminated heap buffer. */
static char *recv_read_body(struct mg_connection *conn, size_t *len_out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1);

	if (buf == NULL)
		return NULL;
	for (;;) {
		if (cap - len < 4096) {
			char *n = realloc(buf, cap * 2 + 1);
			if (n == NULL) {
				free(buf);
				return NULL;
			}
			buf = n;
			cap *= 2;
		}
		int got = mg_read(conn, buf + len, cap - len);
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

/* Copies what the tests look at out of civetweb's request info. */
static struct recv_request *recv_record(const struct mg_request_info *ri, char *body,
					size_t body_len)
{
	struct recv_request *q = calloc(1, sizeof(*q));

	if (q == NULL)
		return NULL;
	q->body = body;
	q->body_len = body_len;
	q->method = recv_strdup(ri->request_method);
	if (ri->query_string != NULL) {
		size_t n = strlen(ri->local_uri) + strlen(ri->query_string) + 2;
		q->uri = malloc(n);
		if (q->uri != NULL)
			snprintf(q->uri, n, "%s?%s", ri->local_uri, ri->query_string);
	} else {
		q->uri = recv_strdup(ri->local_uri);
	}
	q->headers = calloc((size_t)ri->num_headers + 1, sizeof(*q->headers));
	if (q->method == NULL || q->uri == NULL || q->headers == NULL)
		goto fail;
	for (int i = 0; i < ri->num_headers; i++) {
		q->headers[i].name = recv_strdup(ri->http_headers[i].name);
		q->headers[i].value = recv_strdup(ri->http_headers[i].value);
		q->nheaders++;
		if (q->headers[i].name == NULL || q->headers[i].value == NULL)
			goto fail;
	}
	return q;
fail:
	recv_request_free(q);
	return NULL;
}

static int recv_next_status(struct receiver *r)
{
	int status = r->default_status;

	if (r->script_len > 0) {
		status = r->script[r->script_head];
		r->script_head = (r->script_head + 1) % RECV_SCRIPT_MAX;
		r->script_len--;
	}
	return status;
}

static int recv_handler(struct mg_connection *conn, void *cbdata)
{
	struct receiver *r = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	size_t body_len = 0;
	char *body = recv_read_body(conn, &body_len);
	struct recv_request *q = NULL;
	int status = 500;
	char resp[256];

	if (body != NULL)
		q = recv_record(ri, body, body_len);
	else
		fprintf(stderr, "receiver: out of memory reading a body\n");

	pthread_mutex_lock(&r->lock);
	status = recv_next_status(r);
	if (q != NULL) {
		q->status = status;
		if (r->count == r->cap) {
			size_t ncap = r->cap ? r->cap * 2 : 16;
			struct recv_request **n = realloc(r->reqs, ncap * sizeof(*n));
			if (n != NULL) {
				r->reqs = n;
				r->cap = ncap;
			}
		}
		if (r->count < r->cap) {
			r->reqs[r->count++] = q;
			q = NULL;
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (q != NULL) {
		fprintf(stderr, "receiver: could not record a request\n");
		recv_request_free(q);
	}

	const char *text = status >= 200 && status < 300 ? "ok" : "try later";
	int n = snprintf(resp, sizeof(resp),
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\n\r\n%s",
			 status, mg_get_response_code_text(conn, status), strlen(text), text);
	mg_write(conn, resp, (size_t)n);
	return status;
}

struct receiver *receiver_start(void)
{
	struct receiver *r = calloc(1, sizeof(*r));
	struct mg_server_port ports[4];
	struct mg_callbacks cb;
	const char *opts[] = {
		"listening_ports", "127.0.0.1:0",
		"num_threads", "16",
		"enable_keep_alive", "yes",
		"keep_alive_timeout_ms", "500",
		"request_timeout_ms", "5000",
		NULL,
	};

	if (r == NULL)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	r->default_status = 200;
	memset(&cb, 0, sizeof(cb));
	r->ctx = mg_start(&cb, NULL, opts);
	if (r->ctx == NULL) {
		fprintf(stderr, "receiver: mg_start failed\n");
		goto fail;
	}
	mg_set_request_handler(r->ctx, "/", recv_handler, r);
	if (mg_get_server_ports(r->ctx, 4, ports) < 1 || ports[0].port <= 0) {
		fprintf(stderr, "receiver: no listening port\n");
		goto fail;
	}
	r->port = ports[0].port;
	return r;
fail:
	receiver_stop(r);
	return NULL;
}

struct recv_waker {
	int port;
	atomic_int done;
};

/* civetweb's listener polls with a 2 s quantum, so mg_stop alone takes up to
 * 2 s; a connection to the port wakes it to see the stop flag at once. */
static void *recv_wake(void *arg)
{
	struct recv_waker *w = arg;
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)w->port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while (!atomic_load(&w->done)) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd >= 0) {
			(void)connect(fd, (struct sockaddr *)&a, sizeof(a));
			close(fd);
		}
		nanosleep(&tick, NULL);
	}
	return NULL;
}

void receiver_stop(struct receiver *r)
{
	if (r == NULL)
		return;
	if (r->ctx != NULL) {
		struct recv_waker w = { r->port, 0 };
		pthread_t th;
		int woke = r->port > 0 && pthread_create(&th, NULL, recv_wake, &w) == 0;
		mg_stop(r->ctx);
		if (woke) {
			atomic_store(&w.done, 1);
			pthread_join(th, NULL);
		}
	}
	for (size_t i = 0; i < r->count; i++)
		recv_request_free(r->reqs[i]);
	free(r->reqs);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

int receiver_port(const struct receiver *r)
{
	return r->port;
}

void receiver_url(const struct receiver *r, char *buf, size_t len)
{
	snprintf(buf, len, "http://127.0.0.1:%d", r->port);
}

void receiver_script(struct receiver *r, const int *statuses, size_t n)
{
	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < n && r->script_len < RECV_SCRIPT_MAX; i++) {
		r->script[(r->script_head + r->script_len) % RECV_SCRIPT_MAX] = statuses[i];
		r->script_len++;
	}
	pthread_mutex_unlock(&r->lock);
}

void receiver_set_default(struct receiver *r, int status)
{
	pthread_mutex_lock(&r->lock);
	r->default_status = status;
	pthread_mutex_unlock(&r->lock);
}

size_t receiver_count(struct receiver *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}

int receiver_wait(struct receiver *r, size_t n, long timeout_ms)
{
	struct timespec tick = { 0, 50 * 1000 * 1000 };

	for (long waited = 0;; waited += 50) {
		if (receiver_count(r) >= n)
			return 0;
		if (waited >= timeout_ms)
			return -1;
		nanosleep(&tick, NULL);
	}
}

const struct recv_request *receiver_get(struct receiver *r, size_t i)
{
	const struct recv_request *q = NULL;

	pthread_mutex_lock(&r->lock);
	if (i < r->count)
		q = r->reqs[i];
	pthread_mutex_unlock(&r->lock);
	return q;
}

const struct recv_request *receiver_find(struct receiver *r, const char *uri)
{
	const struct recv_request *q = NULL;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->count && q == NULL; i++)
		if (strcmp(r->reqs[i]->uri, uri) == 0)
			q = r->reqs[i];
	pthread_mutex_unlock(&r->lock);
	return q;
}

const char *recv_header(const struct recv_request *q, const char *name)
{
	for (size_t i = 0; i < q->nheaders; i++)
		if (strcasecmp(q->headers[i].name, name) == 0)
			return q->headers[i].value;
	return NULL;
}
