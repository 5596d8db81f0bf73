/*
 * deliver.c — the delivery thread (see deliver.h).
 *
 * Design: one thread runs a libcurl multi loop. Each turn it records the
 * outcome of finished transfers, leases due outbox entries while it has
 * room, starts those whose destination (scheme://host:port) has a free slot
 * and then sleeps in curl_multi_poll until socket activity, deliver_notify
 * or the next due entry, but never longer than a second, so retries and
 * entries committed by other processes (dlq replay) are seen promptly.
 *
 * Limits: at most concurrency requests per destination are in flight, and at
 * most concurrency * 4 in all. An entry leased for a saturated destination
 * waits in a local FIFO (still leased, so nobody else sends it) until a slot
 * frees; at most as many entries wait as may be in flight. One slow
 * destination can therefore fill the queue and delay others until its own
 * requests finish (bounded by forward_timeout): simple head-of-line blocking,
 * accepted to keep claiming a plain "oldest due first".
 *
 * Keep-alive: every transfer goes through the one CURLM, whose connection
 * cache keeps connections per host open for the next request.
 *
 * Shutdown: deliver_stop raises a flag; the loop stops leasing, forgets the
 * waiting queue and lets running transfers finish until the grace expires.
 * Whatever is still leased then stays leased in the database: the next
 * deliver_start forgets all leases (outbox_release_leases), so it resumes.
 *
 * Threads: the struct outbox, the CURLM and every CURL easy handle are used
 * only by the delivery thread (deliver_start creates them before the thread
 * starts, deliver_stop frees them after it is joined). deliver_notify may be
 * called from any thread: it sets an atomic flag and calls curl_multi_wakeup,
 * which libcurl documents as callable from other threads.
 *
 * Never logged: URLs (they may carry tokens), headers and bodies.
 *
 * Metrics: each attempt's outcome and duration is counted where it is
 * decided (record_attempt). The outbox gauges are refreshed here, at most
 * once a second, with this thread's own connection: a scrape then costs no
 * database access at all.
 *
 * Also part of this module: deliver_request.c (one request as a curl easy
 * handle) and deliver_policy.c (retry decision, Retry-After).
 */
#include "deliver.h"
#include "clock.h"

#include "deliver_internal.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"

#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DELIVER_TICK_MS 1000L   /* longest sleep without a wake-up */
#define DELIVER_GAUGE_S 1.0     /* outbox gauges are at most this old */

struct deliver_host {
	char *key;
	long inflight;
};

struct deliver {
	long timeout_ms, max_attempts, max_age_ms, per_host, cap;
	struct outbox *ob;
	CURLM *multi;
	pthread_t thread;
	atomic_int stop;
	atomic_int notified;
	atomic_long grace_ms;
	uint64_t rng;                  /* xorshift64* state, delivery thread only */
	struct deliver_signer signer;  /* Standard Webhooks key, key_len 0 = unsigned */

	struct deliver_request *running;  /* doubly linked */
	long nrunning;
	struct deliver_request *wait_head, *wait_tail;
	long nwaiting;
	struct deliver_host *hosts;    /* only destinations with requests in flight */
	size_t nhosts, caphosts;
};

static pthread_once_t deliver_curl_once = PTHREAD_ONCE_INIT;
static CURLcode deliver_curl_rc = CURLE_FAILED_INIT;

/*
 * curl_global_init is not thread-safe and must run once per process. main
 * calls deliver_start before the intake starts any thread; pthread_once
 * keeps a second deliver_start (tests) from calling it again. It is never
 * cleaned up: the process exits instead.
 */
static void deliver_curl_init(void)
{
	deliver_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Uniform in [0,1); jitter needs spread, not secrecy. */
static double deliver_random(struct deliver *d)
{
	uint64_t x = d->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	d->rng = x;
	return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
}

/* --- per-destination slots --- */

static struct deliver_host *host_find(struct deliver *d, const char *key)
{
	for (size_t i = 0; i < d->nhosts; i++)
		if (strcmp(d->hosts[i].key, key) == 0)
			return &d->hosts[i];
	return NULL;
}

static int host_has_slot(struct deliver *d, const char *key)
{
	struct deliver_host *h = host_find(d, key);

	return !h || h->inflight < d->per_host;
}

static int host_acquire(struct deliver *d, const char *key)
{
	struct deliver_host *h = host_find(d, key);

	if (!h) {
		if (d->nhosts == d->caphosts) {
			size_t cap = d->caphosts ? d->caphosts * 2 : 16;
			struct deliver_host *hosts = realloc(d->hosts, cap * sizeof *hosts);

			if (!hosts)
				return -1;
			d->hosts = hosts;
			d->caphosts = cap;
		}
		h = &d->hosts[d->nhosts];
		h->key = strdup(key);
		if (!h->key)
			return -1;
		h->inflight = 0;
		d->nhosts++;
	}
	h->inflight++;
	return 0;
}

static void host_release(struct deliver *d, const char *key)
{
	struct deliver_host *h = host_find(d, key);

	if (!h || --h->inflight > 0)
		return;
	free(h->key);
	*h = d->hosts[--d->nhosts];
}

/* --- transfers --- */

/*
 * Records the outcome of one attempt. status: HTTP status, 0 for a network
 * error; detail: short reason for the log and the database; permanent:
 * never worth retrying (the request cannot even be made); seconds: how long
 * the transfer took, < 0 when none was made.
 */
static void record_attempt(struct deliver *d, struct deliver_request *x, int status,
			   const char *detail, int permanent, double seconds)
{
	const struct outbox_delivery *e = x->e;
	const char *label = e->name && *e->name ? e->name : x->host ? x->host : "?";
	double now = clock_wall(), delay = 0;
	double retry_after = x->retry_after[0] ?
		deliver_parse_retry_after(x->retry_after, now) : -1;
	long attempt = e->attempts + 1;
	enum deliver_outcome outcome;
	char *error = NULL;
	int rc;

	outcome = deliver_policy(status, attempt, d->max_attempts, (now - e->created_at) * 1000.0,
				 d->max_age_ms, retry_after, deliver_random(d), &delay);
	if (permanent)
		outcome = DELIVER_DEAD;
	metrics_delivery(label, outcome == DELIVER_DONE ? METRICS_DONE
				: outcome == DELIVER_RETRY ? METRICS_RETRY : METRICS_DEAD, seconds);
	if (outcome == DELIVER_DONE) {
		rc = outbox_complete(d->ob, e->id);
		goto out;
	}
	if (asprintf(&error, "%s%s%s", detail, x->snippet_len ? ": " : "",
		     deliver_request_snippet(x)) < 0)
		error = NULL;
	if (outcome == DELIVER_RETRY) {
		log_msg(LOG_WARN, e->request_id,
			"delivery %s to %s failed (attempt %ld): %s; retry in %.1f s",
			e->delivery_id, label, attempt, detail, delay);
		rc = outbox_retry(d->ob, e->id, now + delay, status, error ? error : detail);
	} else {
		log_msg(LOG_ERROR, e->request_id,
			"delivery %s to %s dead-lettered after %ld attempt%s: %s",
			e->delivery_id, label, attempt, attempt == 1 ? "" : "s", detail);
		rc = outbox_bury(d->ob, e->id, status, error ? error : detail);
	}
out:
	if (rc < 0)
		log_msg(LOG_ERROR, e->request_id, "delivery %s: outbox update failed: %s",
			e->delivery_id, outbox_error(d->ob));
	free(error);
}

static void running_unlink(struct deliver *d, struct deliver_request *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		d->running = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	d->nrunning--;
	host_release(d, x->key);
}

/* Puts x in flight. On failure the attempt is recorded as failed and x freed. */
static void start_request(struct deliver *d, struct deliver_request *x)
{
	if (deliver_request_setup(x, d->timeout_ms) < 0 ||
	    deliver_request_sign(x, &d->signer) < 0 || host_acquire(d, x->key) < 0) {
		record_attempt(d, x, 0, "could not set up the request", 0, -1);
		deliver_request_free(x);
		return;
	}
	if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK) {
		host_release(d, x->key);
		record_attempt(d, x, 0, "could not start the request", 0, -1);
		deliver_request_free(x);
		return;
	}
	x->prev = NULL;
	x->next = d->running;
	if (d->running)
		d->running->prev = x;
	d->running = x;
	d->nrunning++;
}

/* Records every finished transfer; returns how many finished. */
static int collect_done(struct deliver *d)
{
	struct CURLMsg *msg;
	int left, done = 0, in_tx = 0;

	while ((msg = curl_multi_info_read(d->multi, &left))) {
		struct deliver_request *x;
		char *priv = NULL;
		CURLcode rc = msg->data.result;
		long code = 0;
		curl_off_t us = -1;
		char detail[CURL_ERROR_SIZE + 32];
		int permanent = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
		    !priv)
			continue;   /* not ours: every handle we add carries its transfer */
		x = (struct deliver_request *)(void *)priv;
		curl_multi_remove_handle(d->multi, msg->easy_handle);
		running_unlink(d, x);
		if (rc == CURLE_OK &&
		    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
			code = 0;
		if (curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &us) != CURLE_OK)
			us = -1;
		if (rc != CURLE_OK) {
			snprintf(detail, sizeof detail, "%s",
				 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
			permanent = rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT;
			x->snippet_len = 0;
		} else {
			snprintf(detail, sizeof detail, "HTTP %ld", code);
		}
		/* All outcomes of one pass share a transaction: one fsync, not one each. */
		if (!in_tx)
			in_tx = outbox_begin(d->ob) == 0;
		record_attempt(d, x, (int)code, detail, permanent,
			       us >= 0 ? (double)us / 1e6 : -1);
		deliver_request_free(x);
		done++;
	}
	if (in_tx && outbox_commit(d->ob) != 0)
		log_msg(LOG_ERROR, NULL,
			"delivery: recording %d outcome%s failed (%s); those entries are sent "
			"again after a restart", done, done == 1 ? "" : "s", outbox_error(d->ob));
	return done;
}

/* Starts waiting entries, oldest first, while their destination has room. */
static void run_waiting(struct deliver *d)
{
	struct deliver_request **link = &d->wait_head, *prev = NULL;

	while (*link && d->nrunning < d->cap) {
		struct deliver_request *x = *link;

		if (!host_has_slot(d, x->key)) {
			prev = x;
			link = &x->next;
			continue;
		}
		*link = x->next;
		if (d->wait_tail == x)
			d->wait_tail = prev;
		x->next = NULL;
		d->nwaiting--;
		start_request(d, x);
	}
}

static void enqueue(struct deliver *d, struct deliver_request *x)
{
	x->next = NULL;
	if (d->wait_tail)
		d->wait_tail->next = x;
	else
		d->wait_head = x;
	d->wait_tail = x;
	d->nwaiting++;
}

/*
 * Leases due entries while there is room and queues them. Returns when to
 * look again (unix seconds); a finished transfer also makes the loop look.
 */
static double claim_more(struct deliver *d, double now)
{
	struct outbox_delivery *items = NULL;
	struct deliver_claim *claim = NULL;
	long room = 2 * d->cap - d->nrunning - d->nwaiting;
	double when;
	int n, r;

	if (room <= 0)
		return now + DELIVER_TICK_MS / 1000.0;
	n = outbox_claim_due(d->ob, now, (size_t)room, &items);
	if (n < 0) {
		log_msg(LOG_ERROR, NULL, "delivery: claiming due entries failed: %s",
			outbox_error(d->ob));
		return now + DELIVER_TICK_MS / 1000.0;
	}
	if (n > 0) {
		claim = calloc(1, sizeof *claim);
		if (!claim) {
			/* Stay leased until restart rather than be sent twice. */
			log_msg(LOG_ERROR, NULL,
				"delivery: out of memory, %d entries wait for a restart", n);
			outbox_deliveries_free(items, (size_t)n);
			return now + DELIVER_TICK_MS / 1000.0;
		}
		claim->items = items;
		claim->count = claim->live = (size_t)n;
	} else {
		outbox_deliveries_free(items, 0);
	}
	for (int i = 0; i < n; i++) {
		struct deliver_request *x = calloc(1, sizeof *x);

		if (!x) {
			log_msg(LOG_ERROR, items[i].request_id,
				"delivery %s: out of memory, waits for a restart",
				items[i].delivery_id);
			deliver_claim_release(claim);
			continue;
		}
		x->claim = claim;
		x->e = &items[i];
		if (deliver_request_destination(x, x->e->url) < 0) {
			record_attempt(d, x, 0, "invalid or unsupported URL", 1, -1);
			deliver_request_free(x);
			continue;
		}
		enqueue(d, x);
	}
	run_waiting(d);
	if (n == room)
		return now + DELIVER_TICK_MS / 1000.0;
	r = outbox_next_due(d->ob, &when);
	if (r < 0)
		log_msg(LOG_ERROR, NULL, "delivery: reading the next due time failed: %s",
			outbox_error(d->ob));
	if (r == 1 && when < now + DELIVER_TICK_MS / 1000.0)
		return n == 0 && when < now + 0.01 ? now + 0.01 : when;   /* never spin */
	return now + DELIVER_TICK_MS / 1000.0;
}

static void drop_waiting(struct deliver *d)
{
	while (d->wait_head) {
		struct deliver_request *x = d->wait_head;

		d->wait_head = x->next;
		deliver_request_free(x);
	}
	d->wait_tail = NULL;
	d->nwaiting = 0;
}

static void abort_running(struct deliver *d)
{
	if (d->nrunning > 0)
		log_msg(LOG_WARN, NULL,
			"delivery: aborting %ld request%s at shutdown; they resume after restart",
			d->nrunning, d->nrunning == 1 ? "" : "s");
	while (d->running) {
		struct deliver_request *x = d->running;

		curl_multi_remove_handle(d->multi, x->easy);
		running_unlink(d, x);
		deliver_request_free(x);
	}
}

/* Refreshes the outbox gauges; a failed count keeps the previous value. */
static void refresh_gauges(struct deliver *d)
{
	long pending = outbox_count_pending(d->ob), dead = outbox_count_dead(d->ob);

	if (pending < 0 || dead < 0)
		log_msg(LOG_WARN, NULL, "delivery: counting the outbox for metrics failed: %s",
			outbox_error(d->ob));
	metrics_set_outbox(pending, dead);
}

static void *deliver_main(void *arg)
{
	struct deliver *d = arg;
	double next_check = 0, stop_at = 0, next_gauges = 0;
	int stopping = 0;

	for (;;) {
		double now;
		long timeout_ms;
		int still;

		if (!stopping && atomic_load(&d->stop)) {
			stopping = 1;
			stop_at = clock_mono() + (double)atomic_load(&d->grace_ms) / 1000.0;
			drop_waiting(d);
		}
		if (stopping && (d->nrunning == 0 || clock_mono() >= stop_at))
			break;
		if (curl_multi_perform(d->multi, &still) != CURLM_OK)
			log_msg(LOG_ERROR, NULL, "delivery: curl_multi_perform failed");
		if (collect_done(d) > 0)
			next_check = 0;   /* a slot freed: more may be claimable now */
		now = clock_wall();
		if (!stopping && clock_mono() >= next_gauges) {
			refresh_gauges(d);
			next_gauges = clock_mono() + DELIVER_GAUGE_S;
		}
		if (!stopping) {
			run_waiting(d);
			if (atomic_exchange(&d->notified, 0) || now >= next_check)
				next_check = claim_more(d, now);
			timeout_ms = (long)ceil((next_check - now) * 1000.0);
		} else {
			timeout_ms = (long)ceil((stop_at - clock_mono()) * 1000.0);
		}
		if (timeout_ms < 0)
			timeout_ms = 0;
		if (timeout_ms > DELIVER_TICK_MS)
			timeout_ms = DELIVER_TICK_MS;
		if (curl_multi_poll(d->multi, NULL, 0, (int)timeout_ms, NULL) != CURLM_OK) {
			log_msg(LOG_ERROR, NULL, "delivery: curl_multi_poll failed");
			usleep(100 * 1000);   /* do not spin on a persistent failure */
		}
	}
	abort_running(d);
	return NULL;
}

static void deliver_free(struct deliver *d)
{
	if (!d)
		return;
	if (d->multi)
		curl_multi_cleanup(d->multi);
	outbox_close(d->ob);
	for (size_t i = 0; i < d->nhosts; i++)
		free(d->hosts[i].key);
	free(d->hosts);
	free(d);
}

struct deliver *deliver_start(const struct deliver_options *opt, char *err, size_t errlen)
{
	struct deliver *d = NULL;
	int rc;

	if (!opt || !opt->data_dir || opt->concurrency < 1 || opt->timeout_ms < 1) {
		snprintf(err, errlen, "delivery: invalid options");
		goto fail;
	}
	pthread_once(&deliver_curl_once, deliver_curl_init);
	if (deliver_curl_rc != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(deliver_curl_rc));
		goto fail;
	}
	d = calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	d->timeout_ms = opt->timeout_ms;
	d->max_attempts = opt->max_attempts;
	d->max_age_ms = opt->max_age_ms;
	d->per_host = opt->concurrency;
	d->cap = opt->concurrency * 4;
	if (opt->signing_secret) {
		int n = deliver_signing_key(opt->signing_secret, d->signer.key, sizeof d->signer.key);

		if (n <= 0) {
			snprintf(err, errlen, "forward_signing_secret is not whsec_<base64>");
			goto fail;
		}
		d->signer.key_len = (size_t)n;
	}
	if (getrandom(&d->rng, sizeof d->rng, 0) != (ssize_t)sizeof d->rng)
		d->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	d->rng |= 1;   /* xorshift must not start at 0 */

	d->ob = outbox_open(opt->data_dir, err, errlen);
	if (!d->ob)
		goto fail;
	if (outbox_release_leases(d->ob) < 0) {
		snprintf(err, errlen, "outbox: releasing leases: %s", outbox_error(d->ob));
		goto fail;
	}
	d->multi = curl_multi_init();
	if (!d->multi) {
		snprintf(err, errlen, "curl_multi_init failed");
		goto fail;
	}
	if (curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, d->per_host) != CURLM_OK ||
	    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, d->cap) != CURLM_OK) {
		snprintf(err, errlen, "curl_multi_setopt failed");
		goto fail;
	}
	rc = pthread_create(&d->thread, NULL, deliver_main, d);
	if (rc != 0) {
		snprintf(err, errlen, "pthread_create: %s", strerror(rc));
		goto fail;
	}
	return d;
fail:
	deliver_free(d);
	return NULL;
}

void deliver_notify(struct deliver *d)
{
	if (!d)
		return;
	atomic_store(&d->notified, 1);
	curl_multi_wakeup(d->multi);
}

void deliver_stop(struct deliver *d, long grace_ms)
{
	if (!d)
		return;
	atomic_store(&d->grace_ms, grace_ms < 0 ? 0 : grace_ms);
	atomic_store(&d->stop, 1);
	curl_multi_wakeup(d->multi);
	pthread_join(d->thread, NULL);
	deliver_free(d);
}
