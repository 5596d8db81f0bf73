/*
 * harness_load.c — background load for the end-to-end scenarios: client
 * threads that POST batches to the daemon without pause until stopped, and
 * record the status of every request (see harness.h).
 *
 * Each thread has its own libcurl handle, so nothing is shared but the
 * stop flag and the 200 counter (atomics). Even-numbered threads keep one
 * connection alive across requests, odd ones open a fresh connection per
 * request: shutdown must be right for both. libcurl resends a request by
 * itself when a reused connection turns out closed before any answer; that
 * resend is recorded as the request's outcome, which is what a sender sees.
 *
 * Threads: harness_load_start/stop/free on the test thread; the client
 * threads touch only their own struct harness_load_thread until joined.
 */
#include "e2e/harness.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_MAX_THREADS 16
#define LOAD_MAX_REQUESTS 4096

struct harness_load_thread {
	struct harness_load *load;
	pthread_t thread;
	int index;
	int started;
	long count;                        /* requests made */
	long status[LOAD_MAX_REQUESTS];    /* HTTP status of each, 0 = no answer */
};

struct harness_load {
	const struct harness *h;
	int events;
	int nthreads;
	atomic_int stop;
	atomic_long ok;
	struct harness_load_thread threads[LOAD_MAX_THREADS];
};

static size_t load_discard(char *data, size_t size, size_t nmemb, void *userp)
{
	(void)data;
	(void)userp;
	return size * nmemb;
}

/* {"events":[{"action":"email_open","bid":"K-N"}, ...]} with `events` copies. */
static char *load_body(int events, int k, long n, size_t *len)
{
	size_t cap = 32 + (size_t)events * 64, off;
	char *b = malloc(cap);

	if (b == NULL)
		return NULL;
	off = (size_t)snprintf(b, cap, "{\"events\":[");
	for (int i = 0; i < events; i++)
		off += (size_t)snprintf(b + off, cap - off,
					"%s{\"action\":\"email_open\",\"bid\":\"%d-%ld\"}",
					i ? "," : "", k, n);
	off += (size_t)snprintf(b + off, cap - off, "]}");
	*len = off;
	return b;
}

static void *load_main(void *arg)
{
	struct harness_load_thread *th = arg;
	struct harness_load *l = th->load;
	struct curl_slist *hl = NULL, *tmp;
	char url[128], token[128];
	CURL *c = curl_easy_init();

	if (c == NULL)
		return NULL;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/hooks/egoi", l->h->port);
	snprintf(token, sizeof(token), "X-Router-Token: %s", l->h->token);
	const char *lines[] = { "Expect:", "Content-Type: application/json", token, NULL };
	for (size_t i = 0; lines[i] != NULL; i++)
		if ((tmp = curl_slist_append(hl, lines[i])) != NULL)
			hl = tmp;
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_CAINFO, harness_cert()) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, load_discard) != CURLE_OK ||
	    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, (long)(th->index % 2)) != CURLE_OK)
		goto out;
	while (!atomic_load(&l->stop) && th->count < LOAD_MAX_REQUESTS) {
		size_t len = 0;
		char *body = load_body(l->events, th->index, th->count, &len);
		long status = 0;

		if (body == NULL)
			break;
		if (curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) == CURLE_OK &&
		    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) == CURLE_OK &&
		    curl_easy_perform(c) == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		free(body);
		th->status[th->count++] = status;
		if (status == 200)
			atomic_fetch_add(&l->ok, 1);
		else
			harness_sleep_ms(10); /* refused or 503: do not hammer */
	}
out:
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	return NULL;
}

struct harness_load *harness_load_start(const struct harness *h, int nthreads, int events)
{
	struct harness_load *l;

	if (nthreads < 1 || nthreads > LOAD_MAX_THREADS || events < 1)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->h = h;
	l->events = events;
	l->nthreads = nthreads;
	for (int k = 0; k < nthreads; k++) {
		struct harness_load_thread *th = &l->threads[k];

		th->load = l;
		th->index = k;
		th->started = pthread_create(&th->thread, NULL, load_main, th) == 0;
		if (!th->started) {
			harness_load_stop(l);
			free(l);
			return NULL;
		}
	}
	return l;
}

long harness_load_ok(const struct harness_load *l)
{
	return atomic_load(&l->ok);
}

void harness_load_stop(struct harness_load *l)
{
	if (l == NULL)
		return;
	atomic_store(&l->stop, 1);
	for (int k = 0; k < l->nthreads; k++)
		if (l->threads[k].started) {
			pthread_join(l->threads[k].thread, NULL);
			l->threads[k].started = 0;
		}
}

int harness_load_threads(const struct harness_load *l)
{
	return l->nthreads;
}

long harness_load_count(const struct harness_load *l, int k)
{
	return k >= 0 && k < l->nthreads ? l->threads[k].count : 0;
}

long harness_load_status(const struct harness_load *l, int k, long n)
{
	if (k < 0 || k >= l->nthreads || n < 0 || n >= l->threads[k].count)
		return -1;
	return l->threads[k].status[n];
}

long harness_load_not_200(const struct harness_load *l, long *total)
{
	long made = 0, bad = 0;

	for (int k = 0; k < l->nthreads; k++)
		for (long n = 0; n < l->threads[k].count; n++, made++)
			bad += l->threads[k].status[n] != 200;
	if (total)
		*total = made;
	return bad;
}

void harness_load_free(struct harness_load *l)
{
	harness_load_stop(l);
	free(l);
}
