/*
 * deliver_outcome.c — what one finished attempt means and how it reaches
 * the outbox (see deliver_internal.h). deliver_finish decides once: policy,
 * metrics, the destination's pause and circuit, the log line. The decision
 * waits in d->finished until deliver_record_pending writes a whole pass of
 * them in one transaction, and is kept for another try when that fails.
 *
 * Threads: the delivery thread only.
 */
#include "deliver_internal.h"
#include "deliver_status.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Uniform in [0,1); jitter needs spread, not secrecy. */
double deliver_random(struct deliver *d)
{
	return (double)(util_xorshift64s(&d->rng) >> 11) * 0x1.0p-53;
}

/* Logs a change of t's circuit; on closing, makes its backlog due now. */
static void deliver_outcome_circuit_changed(struct deliver *d, struct deliver_dest *t,
			    enum deliver_transition what, const char *detail, double now)
{
	int moved;

	switch (what) {
	case DELIVER_STAYED:
		return;
	case DELIVER_OPENED:
		log_msg(LOG_WARN, NULL, "destination %s: circuit open after %d consecutive failures "
					"(last: %s); one probe in %.1f s", t->key, t->circuit.failures,
			detail, t->circuit.until - now);
		return;
	case DELIVER_REOPENED: {
		/* A dead destination fails a probe every backoff: one line per
		 * LOG_REPEAT_S with a count is enough. */
		struct log_field f[] = { LOG_FS("destination", t->key), LOG_FS("error", detail) };
		char key[160];

		snprintf(key, sizeof key, "probe failed %s", t->key);
		log_limited(LOG_WARN, key, f, 2, "destination %s: probe failed (%s); circuit stays "
			    "open, next probe in %.1f s", t->key, detail, t->circuit.until - now);
		return;
	}
	case DELIVER_CLOSED_AGAIN:
		moved = outbox_dest_due_now(d->ob, t->key, now);
		if (moved < 0)
			log_msg(LOG_ERROR, NULL, "destination %s: rescheduling its backlog failed: %s",
				t->key, outbox_error(d->ob));
		log_msg(LOG_INFO, NULL, "destination %s: recovered, circuit closed; %d waiting "
					"entr%s due now", t->key, moved > 0 ? moved : 0,
			moved == 1 ? "y is" : "ies are");
		t->due_at = now;
		return;
	}
}

/*
 * One line per outcome, with fields: debug for a delivery done, warn for a
 * retry (when it is due), error for a dead letter. The destination is the
 * scheme://host:port key (destination.h), never the URL, which may carry
 * credentials or a token in its query.
 */
static void deliver_outcome_log(const struct deliver_request *x, const char *dest,
				const char *label, long attempt, const char *detail, double delay,
				double seconds)
{
	const struct outbox_delivery *e = x->e;
	struct log_field f[] = {
		LOG_FS("delivery_id", e->delivery_id),
		LOG_FS("destination", dest),
		LOG_FS("name", label),
		LOG_FI("attempt", attempt),
		LOG_FI("status", x->status),
		LOG_FD("duration_ms", seconds >= 0 ? seconds * 1000.0 : 0),
		LOG_FS("error", detail),
		LOG_FD("retry_in_s", delay),
		LOG_FD("next_attempt_at", x->next_at),
	};

	switch (x->outcome) {
	case DELIVER_DONE:
		log_fields(LOG_DEBUG, e->request_id, f, 6, "delivery %s to %s done (attempt %ld)",
			   e->delivery_id, label, attempt);
		return;
	case DELIVER_RETRY:
		log_fields(LOG_WARN, e->request_id, f, 9,
			   "delivery %s to %s failed (attempt %ld): %s; retry in %.1f s",
			   e->delivery_id, label, attempt, detail, delay);
		return;
	case DELIVER_DEAD:
		log_fields(LOG_ERROR, e->request_id, f, 7,
			   "delivery %s to %s dead-lettered after %ld attempt%s: %s",
			   e->delivery_id, label, attempt, attempt == 1 ? "" : "s", detail);
		return;
	}
}

/*
 * Decides what one attempt means and queues the decision for the outbox
 * (record_pending writes it). status: HTTP status, 0 for a network error;
 * detail: short reason for the log and the database; permanent: never worth
 * retrying (the request cannot even be made); seconds: how long the
 * transfer took, < 0 when none was made (then the destination's circuit
 * learns nothing from it). Logs, metrics and the circuit see each attempt
 * once, however often writing its outcome must be tried. Takes x.
 */
void deliver_finish(struct deliver *d, struct deliver_request *x, int status, const char *detail,
		   int permanent, double seconds)
{
	const struct outbox_delivery *e = x->e;
	struct deliver_dest *t = x->dest;
	const char *label = e->name && *e->name ? e->name : x->host ? x->host : "?";
	double now = clock_wall(), delay = 0;
	double retry_after = x->retry_after[0] ?
		deliver_parse_retry_after(x->retry_after, now) : -1;
	long attempt = e->attempts + 1;

	x->outcome = deliver_policy(status, attempt, (now - e->created_at) * 1000.0, retry_after,
				    deliver_random(d), &d->limits, &delay);
	if (permanent)
		x->outcome = DELIVER_DEAD;
	x->status = status;
	x->next_at = now + delay;
	metrics_delivery(label, x->outcome == DELIVER_DONE ? METRICS_DONE
				: x->outcome == DELIVER_RETRY ? METRICS_RETRY : METRICS_DEAD, seconds);
	deliver_status_attempt(t ? t->key : x->host, label, x->outcome == DELIVER_DONE, status,
			       detail, now);
	if (t && seconds >= 0) {
		double pause = deliver_pause(retry_after);
		enum deliver_transition changed;

		if (pause > 0 && now + pause > t->paused_until)
			t->paused_until = now + pause;
		changed = deliver_circuit_record(&t->circuit, deliver_retryable(status), now, pause,
						 d->limits.backoff_max_s);
		deliver_outcome_circuit_changed(d, t, changed, detail, now);
	}
	if (x->outcome != DELIVER_DONE &&
	    asprintf(&x->error, "%s%s%s", detail, x->snippet_len ? ": " : "",
		     deliver_request_snippet(x)) < 0)
		x->error = NULL;
	deliver_outcome_log(x, t ? t->key : x->host, label, attempt, detail, delay, seconds);
	if (!x->error && x->outcome != DELIVER_DONE)
		x->error = strdup(detail);
	TAILQ_INSERT_HEAD(&d->finished, x, link);
	d->nfinished++;
}

/* Writes x's decided outcome into the open transaction; 0 or -1. */
static int deliver_outcome_persist(struct deliver *d, const struct deliver_request *x)
{
	const char *why = x->error ? x->error : "delivery failed";

	switch (x->outcome) {
	case DELIVER_DONE:
		return outbox_complete(d->ob, x->e->id);
	case DELIVER_RETRY:
		return outbox_retry(d->ob, x->e->id, x->next_at, x->status, why);
	case DELIVER_DEAD:
		return outbox_bury(d->ob, x->e->id, x->status, why);
	}
	return -1;
}

void deliver_finished_free(struct deliver *d)
{
	while (!TAILQ_EMPTY(&d->finished)) {
		struct deliver_request *x = TAILQ_FIRST(&d->finished);

		TAILQ_REMOVE(&d->finished, x, link);
		deliver_request_free(x);
	}
	d->nfinished = 0;
}

/*
 * Writes every decided outcome in one transaction (one fsync, not one
 * each). When that fails — a full disk (outbox_space.h releases the reserve
 * for exactly this), a lock held too long — the decisions are kept and
 * written again DELIVER_RECORD_RETRY_S later: until then their entries stay
 * leased, so nobody sends them meanwhile, and nothing is forgotten. After
 * DELIVER_RECORD_ROUNDS failed rounds each entry is tried on its own, so
 * one entry that cannot be written (it vanished) cannot hold the others.
 */
void deliver_record_pending(struct deliver *d, double now)
{
	struct deliver_request *x;
	int ok = 1;

	if (TAILQ_EMPTY(&d->finished) || now < d->record_retry_at)
		return;
	if (d->record_failures >= DELIVER_RECORD_ROUNDS) {
		TAILQ_FOREACH(x, &d->finished, link)
			if (deliver_outcome_persist(d, x) != 0)
				log_msg(LOG_ERROR, x->e->request_id,
					"delivery %s: outcome not recorded (%s); the entry is "
					"sent again after a restart", x->e->delivery_id,
					outbox_error(d->ob));
		d->record_failures = 0;
		deliver_finished_free(d);
		return;
	}
	if (outbox_begin(d->ob) != 0)
		ok = 0;
	for (x = TAILQ_FIRST(&d->finished); ok && x; x = TAILQ_NEXT(x, link))
		ok = deliver_outcome_persist(d, x) == 0;
	if (ok)
		ok = outbox_commit(d->ob) == 0;
	else
		outbox_rollback(d->ob);
	if (ok) {
		if (d->record_failures)
			log_msg(LOG_INFO, NULL, "delivery: outcomes recorded again");
		d->record_failures = 0;
		deliver_finished_free(d);
		return;
	}
	if (d->record_failures++ == 0)
		log_msg(LOG_ERROR, NULL, "delivery: recording %ld outcome%s failed (%s); trying "
					 "again every %.1f s", d->nfinished,
			d->nfinished == 1 ? "" : "s", outbox_error(d->ob),
			DELIVER_RECORD_RETRY_S);
	d->record_retry_at = now + DELIVER_RECORD_RETRY_S;
}

