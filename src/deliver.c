/*
 * deliver.c — the delivery thread (see deliver.h).
 *
 * Design: one thread runs a libcurl multi loop. Each turn it records the
 * outcome of finished transfers, asks the outbox which destinations have
 * unleased entries and when their next one is due (a skip scan, one index
 * seek per destination), and for each destination that may send now leases
 * its due entries into its own queue and starts them while it has slots.
 * Then it sleeps in curl_multi_poll until socket activity, deliver_notify
 * or the next moment some destination can act, but never longer than a
 * second, so entries committed by other processes (dlq replay) are seen
 * promptly.
 *
 * Isolation: everything that limits sending is per destination — at most
 * concurrency requests in flight, at most as many again leased and waiting
 * in its queue, its Retry-After pause and its circuit (deliver_policy.c).
 * There is no global queue or cap, so a destination that is slow, black-
 * holed or failing holds only its own slots, and its backlog is never in
 * front of another destination's entries.
 *
 * The circuit: DELIVER_CIRCUIT_FAILURES consecutive failed attempts open it;
 * while open nothing is sent (entries already leased wait in its queue,
 * still leased); after the open period one probe goes; if it fails the
 * circuit opens again for twice as long (at most min(60 s,
 * forward_backoff_max)), if it gets through the circuit closes and every
 * waiting entry of the destination is made due now: a destination that
 * comes back after an outage gets its backlog at once, not spread over the
 * backed-off retry times. An open circuit therefore holds one connection.
 *
 * Keep-alive: every transfer goes through the one CURLM, whose connection
 * cache keeps connections per host open for the next request.
 *
 * Shutdown: deliver_stop raises a flag; the loop stops leasing, forgets the
 * waiting queues and lets running transfers finish until the grace expires.
 * Whatever is still leased then resumes later: on SQLite the next
 * deliver_start forgets all leases (outbox_release_leases); on PostgreSQL
 * closing the connection gives this process's leases back (deliver.h).
 *
 * Threads: the struct outbox, the CURLM, every CURL easy handle and every
 * struct deliver_dest are used only by the delivery thread (deliver_start
 * creates them before the thread starts, deliver_stop frees them after it
 * is joined). deliver_notify may be called from any thread: it sets an
 * atomic flag and calls curl_multi_wakeup, which libcurl documents as
 * callable from other threads.
 *
 * Never logged: URLs (they may carry tokens), headers and bodies; the
 * destination key (scheme://host:port) is.
 *
 * Metrics: each attempt's outcome and duration is counted where it is
 * decided (finish). The outbox gauges and each destination's state
 * and backlog are refreshed here, at most once a second, with this thread's
 * own connection: a scrape then costs no database access at all.
 *
 * Also part of this module: deliver_dest.c (each destination's state, the
 * due scan), deliver_outcome.c (deciding and recording an attempt's
 * outcome), deliver_request.c (one request as a curl easy handle) and
 * deliver_policy.c (retry decision, circuit, Retry-After) and
 * deliver_settings.c (the forward_* settings, swapped on SIGHUP).
 */
#include "deliver.h"
#include "clock.h"

#include "deliver_internal.h"
#include "deliver_status.h"
#include "destination.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "outbox_space.h"

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
#define DELIVER_RELEASE_S 1.0   /* on a full disk, give space back at most this often */

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

/* --- transfers --- */

static void deliver_running_unlink(struct deliver *d, struct deliver_request *x)
{
	TAILQ_REMOVE(&d->running, x, link);
	d->nrunning--;
	x->dest->inflight--;
}

/* Puts x in flight. On failure the attempt is recorded as failed and x freed. */
static void deliver_start_request(struct deliver *d, struct deliver_request *x)
{
	if (deliver_request_setup(x, d->timeout_ms) < 0 ||
	    deliver_request_sign(x, &d->signer) < 0) {
		deliver_finish(d, x, 0, "could not set up the request", 0, -1);
		return;
	}
	if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK) {
		deliver_finish(d, x, 0, "could not start the request", 0, -1);
		return;
	}
	TAILQ_INSERT_HEAD(&d->running, x, link);
	d->nrunning++;
	x->dest->inflight++;
}

/* Decides every finished transfer; returns how many finished. */
static int deliver_collect_done(struct deliver *d)
{
	struct CURLMsg *msg;
	int left, done = 0;

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
		deliver_running_unlink(d, x);
		if (rc == CURLE_OK &&
		    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
			code = 0;
		if (curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &us) != CURLE_OK || us < 0)
			us = 0;
		if (rc != CURLE_OK) {
			snprintf(detail, sizeof detail, "%s",
				 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
			permanent = rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT;
			x->snippet_len = 0;
		} else {
			snprintf(detail, sizeof detail, "HTTP %ld", code);
		}
		/* the connection is not needed any more; the entry stays until recorded */
		curl_easy_cleanup(x->easy);
		x->easy = NULL;
		deliver_finish(d, x, (int)code, detail, permanent, (double)us / 1e6);
		done++;
	}
	return done;
}

static void deliver_enqueue(struct deliver_dest *t, struct deliver_request *x)
{
	TAILQ_INSERT_TAIL(&t->waiting, x, link);
	t->nwaiting++;
}

/* Starts t's waiting entries, oldest first, while it may send more. */
static void deliver_run_waiting(struct deliver *d, struct deliver_dest *t, double now)
{
	long allowed = deliver_dest_allowance(d, t, now);

	while (!TAILQ_EMPTY(&t->waiting) && t->inflight < allowed) {
		struct deliver_request *x = TAILQ_FIRST(&t->waiting);

		TAILQ_REMOVE(&t->waiting, x, link);
		t->nwaiting--;
		deliver_start_request(d, x);
	}
}

/*
 * Leases up to room due entries of t into its queue. Returns how many were
 * leased, or -1 when the outbox failed (logged).
 */
static int deliver_claim_dest(struct deliver *d, struct deliver_dest *t, double now, long room)
{
	struct outbox_delivery *items = NULL;
	struct deliver_claim *claim = NULL;
	int n;

	n = outbox_claim_due(d->ob, t->key, now, (size_t)room, &items);
	if (n < 0) {
		/* the caller waits before trying again; one line per 100 failures */
		if (d->claim_failures++ % 100 == 0)
			log_msg(LOG_ERROR, NULL, "delivery: claiming due entries of %s failed "
						 "(%ld time%s in a row): %s",
				*t->key ? t->key : "(no destination)", d->claim_failures,
				d->claim_failures == 1 ? "" : "s", outbox_error(d->ob));
		return -1;
	}
	if (d->claim_failures) {
		log_msg(LOG_INFO, NULL, "delivery: claiming works again after %ld failure%s",
			d->claim_failures, d->claim_failures == 1 ? "" : "s");
		d->claim_failures = 0;
	}
	if (n == 0) {
		outbox_deliveries_free(items, 0);
		return 0;
	}
	claim = calloc(1, sizeof *claim);
	if (!claim) {
		/* Stay leased until restart rather than be sent twice. */
		log_msg(LOG_ERROR, NULL, "delivery: out of memory, %d entries wait for a restart", n);
		outbox_deliveries_free(items, (size_t)n);
		return n;
	}
	claim->items = items;
	claim->count = claim->live = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct deliver_request *x = calloc(1, sizeof *x);
		char *key = NULL;

		if (!x) {
			log_msg(LOG_ERROR, items[i].request_id,
				"delivery %s: out of memory, waits for a restart",
				items[i].delivery_id);
			deliver_claim_release(claim);
			continue;
		}
		x->claim = claim;
		x->e = &items[i];
		x->dest = t;
		if (destination_key(x->e->url, &key, &x->host) < 0 || strcmp(key, t->key) != 0) {
			free(key);
			deliver_finish(d, x, 0, "invalid or unsupported URL", 1, -1);
			continue;
		}
		free(key);
		deliver_enqueue(t, x);
	}
	return n;
}

/*
 * One round over the destinations: lease what is due where there is room,
 * start what may start. Returns when to look again (unix seconds); a
 * finished transfer also makes the loop look.
 */
static double deliver_claim_more(struct deliver *d, double now)
{
	double next = now + DELIVER_TICK_MS / 1000.0;
	int leased = 0, failed = 0;

	if (deliver_dests_scan(d) < 0)
		return next;
	for (size_t i = 0; i < d->ndests; i++) {
		struct deliver_dest *t = d->dests[i];
		long allowed = deliver_dest_allowance(d, t, now);
		/* room to lease: what may be in flight plus as many waiting */
		long room = 2 * allowed - t->inflight - t->nwaiting;
		int n = room > 0 && t->due_at <= now ? deliver_claim_dest(d, t, now, room) : 0;

		leased |= n > 0;
		failed |= n < 0;
		deliver_run_waiting(d, t, now);
	}
	if (failed)
		return now + DELIVER_RECORD_RETRY_S;   /* the outbox failed: not in a loop */
	/* What was leased is no longer what the scan saw: look again for the
	 * next due times (and for more, when a claim was full). */
	if (leased && deliver_dests_scan(d) < 0)
		return next;
	for (size_t i = 0; i < d->ndests; i++) {
		double at = deliver_dest_ready_at(d, d->dests[i]);

		if (at < next)
			next = at;
	}
	deliver_dests_forget_idle(d, now);
	return next < now + 0.01 && !leased ? now + 0.01 : next;   /* never spin */
}

static void deliver_drop_waiting(struct deliver *d)
{
	for (size_t i = 0; i < d->ndests; i++) {
		struct deliver_dest *t = d->dests[i];

		while (!TAILQ_EMPTY(&t->waiting)) {
			struct deliver_request *x = TAILQ_FIRST(&t->waiting);

			TAILQ_REMOVE(&t->waiting, x, link);
			deliver_request_free(x);
		}
		t->nwaiting = 0;
	}
}

static void deliver_abort_running(struct deliver *d)
{
	if (d->nrunning > 0)
		log_msg(LOG_WARN, NULL,
			"delivery: aborting %ld request%s at shutdown; they resume after restart",
			d->nrunning, d->nrunning == 1 ? "" : "s");
	while (!TAILQ_EMPTY(&d->running)) {
		struct deliver_request *x = TAILQ_FIRST(&d->running);

		curl_multi_remove_handle(d->multi, x->easy);
		deliver_running_unlink(d, x);
		deliver_request_free(x);
	}
}

/* Refreshes the outbox gauges and each destination's; a failed count keeps
 * the previous value. */
static void deliver_refresh_gauges(struct deliver *d)
{
	long pending = outbox_count_pending(d->ob), dead = outbox_count_dead(d->ob);
	struct metrics_destination *list = NULL;
	size_t n = 0;

	if (pending < 0 || dead < 0)
		log_msg(LOG_WARN, NULL, "delivery: counting the outbox for metrics failed: %s",
			outbox_error(d->ob));
	metrics_set_outbox(pending, dead);
	if (d->ndests > 0)
		list = calloc(d->ndests, sizeof *list);
	for (size_t i = 0; list && i < d->ndests; i++) {
		struct deliver_dest *t = d->dests[i];
		long backlog = outbox_count_dest(d->ob, t->key);

		if (backlog >= 0)
			t->backlog = backlog;
		if (!*t->key)
			continue;
		list[n].name = t->key;
		list[n].state = t->circuit.state == DELIVER_CLOSED ? METRICS_DEST_CLOSED
				: t->circuit.state == DELIVER_OPEN ? METRICS_DEST_OPEN
				: METRICS_DEST_HALF_OPEN;
		list[n].backlog = t->backlog;
		deliver_status_dest(t->key, (int)list[n].state, t->backlog, t->paused_until,
				    t->circuit.until, t->due_at);
		n++;
	}
	if (list || d->ndests == 0)
		metrics_set_destinations(list, n);
	free(list);
}

/*
 * Sleeps in curl_multi_poll until a transfer needs us, deliver_notify, the
 * timeout, or a wake-up from another router through the outbox (a shared
 * PostgreSQL outbox: a forward committed on another node), which counts as
 * deliver_notify: that node's work is claimed now, not at the next tick.
 */
static void deliver_sleep(struct deliver *d, long timeout_ms)
{
	struct curl_waitfd wake = { .fd = outbox_wake_fd(d->ob), .events = CURL_WAIT_POLLIN };
	unsigned int nfds = wake.fd >= 0;

	if (nfds && outbox_wake_drain(d->ob) > 0) {   /* queued with an earlier answer */
		atomic_store(&d->notified, 1);
		return;
	}
	if (curl_multi_poll(d->multi, nfds ? &wake : NULL, nfds, (int)timeout_ms, NULL) != CURLM_OK) {
		log_msg(LOG_ERROR, NULL, "delivery: curl_multi_poll failed");
		usleep(100 * 1000);   /* do not spin on a persistent failure */
		return;
	}
	if (nfds && (wake.revents & CURL_WAIT_POLLIN) && outbox_wake_drain(d->ob) > 0)
		atomic_store(&d->notified, 1);
}

static void *deliver_main(void *arg)
{
	struct deliver *d = arg;
	double next_check = 0, stop_at = 0, next_gauges = 0;
	int stopping = 0;
	/* shown by top -H, ps -L and gdb; a failure only loses the name */
	(void)pthread_setname_np(pthread_self(), "egoi-deliver");
	outbox_adopt(d->ob);   /* opened (and its leases released) by deliver_start */

	for (;;) {
		double now;
		long timeout_ms;
		int still;

		atomic_store(&d->beat_ns, clock_mono_ns());
		deliver_settings_take(d);   /* a reload's forward_* settings */
		if (!stopping && atomic_load(&d->stop)) {
			stopping = 1;
			stop_at = clock_mono() + (double)atomic_load(&d->grace_ms) / 1000.0;
			deliver_drop_waiting(d);
		}
		if (stopping && ((d->nrunning == 0 && TAILQ_EMPTY(&d->finished)) || clock_mono() >= stop_at))
			break;
		if (curl_multi_perform(d->multi, &still) != CURLM_OK)
			log_msg(LOG_ERROR, NULL, "delivery: curl_multi_perform failed");
		if (deliver_collect_done(d) > 0)
			next_check = 0;   /* a slot freed: more may be claimable now */
		now = clock_wall();
		deliver_record_pending(d, now);
		if (outbox_space_full() && clock_mono() - d->released_at >= DELIVER_RELEASE_S) {
			d->released_at = clock_mono();
			if (outbox_release_space(d->ob) != 0)
				log_msg(LOG_WARN, NULL, "delivery: giving space back failed: %s",
					outbox_error(d->ob));
		}
		if (!stopping && clock_mono() >= next_gauges) {
			deliver_refresh_gauges(d);
			next_gauges = clock_mono() + DELIVER_GAUGE_S;
		}
		if (!stopping) {
			if (atomic_exchange(&d->notified, 0) || now >= next_check)
				next_check = deliver_claim_more(d, now);
			timeout_ms = (long)ceil((next_check - now) * 1000.0);
		} else {
			timeout_ms = (long)ceil((stop_at - clock_mono()) * 1000.0);
		}
		if (timeout_ms < 0)
			timeout_ms = 0;
		if (timeout_ms > DELIVER_TICK_MS)
			timeout_ms = DELIVER_TICK_MS;
		if (!TAILQ_EMPTY(&d->finished) && timeout_ms > (long)(DELIVER_RECORD_RETRY_S * 1000))
			timeout_ms = (long)(DELIVER_RECORD_RETRY_S * 1000);
		deliver_sleep(d, timeout_ms);
	}
	deliver_abort_running(d);
	deliver_record_pending(d, INFINITY);   /* last try: what is left resumes after restart */
	deliver_finished_free(d);
	atomic_store(&d->exited, 1);
	return NULL;
}

static void deliver_free(struct deliver *d)
{
	if (!d)
		return;
	if (d->multi)
		curl_multi_cleanup(d->multi);
	outbox_close(d->ob);
	for (size_t i = 0; i < d->ndests; i++) {
		free(d->dests[i]->key);
		free(d->dests[i]);
	}
	free(d->dests);
	explicit_bzero(&d->signer, sizeof d->signer);  /* the signing key */
	deliver_settings_free(atomic_exchange(&d->pending, NULL));
	free(d);
}

struct deliver *deliver_start(const struct deliver_options *opt, char *err, size_t errlen)
{
	struct deliver *d = NULL;
	struct deliver_settings *set;
	int rc;

	if (!opt || !opt->data_dir) {
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
	TAILQ_INIT(&d->running);
	TAILQ_INIT(&d->finished);
	set = deliver_settings_new(opt, err, errlen);
	if (!set)
		goto fail;
	deliver_settings_apply(d, set);   /* no multi handle yet: curl's limit is set below */
	deliver_settings_free(set);
	if (getrandom(&d->rng, sizeof d->rng, 0) != (ssize_t)sizeof d->rng)
		d->rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	d->rng |= 1;   /* xorshift must not start at 0 */

	d->ob = outbox_open(opt->data_dir, err, errlen);
	if (!d->ob)
		goto fail;
	if (outbox_relax_sync(d->ob) < 0 || outbox_release_leases(d->ob) < 0) {
		snprintf(err, errlen, "outbox: releasing leases: %s", outbox_error(d->ob));
		goto fail;
	}
	d->multi = curl_multi_init();
	if (!d->multi) {
		snprintf(err, errlen, "curl_multi_init failed");
		goto fail;
	}
	if (curl_multi_setopt(d->multi, CURLMOPT_MAX_HOST_CONNECTIONS, d->per_host) != CURLM_OK) {
		snprintf(err, errlen, "curl_multi_setopt failed");
		goto fail;
	}
	atomic_store(&d->beat_ns, clock_mono_ns());
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

double deliver_heartbeat(struct deliver *d)
{
	if (!d || atomic_load(&d->exited))
		return -1;
	return (double)atomic_load(&d->beat_ns) / 1e9;
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
