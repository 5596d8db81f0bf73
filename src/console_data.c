/*
 * console_data.c — what the console shows and what its buttons do (see
 * console_internal.h).
 *
 * Numbers come from the metrics module (metrics_read, the very counters
 * /metrics exports) and the delivery thread's snapshot (deliver_status.h);
 * the dead letters from the outbox (outbox_dlq_list), through one
 * connection the console keeps. Replay and purge are dlq.h's functions,
 * the ones `egoi-router dlq` runs.
 */
#include "console_internal.h"
#include "console_html.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "config_reload.h"
#include "dlq.h"
#include "outbox.h"
#include "outbox_dlq.h"
#include "pipeline.h"
#include "version.h"

/* The console's outbox connection, opened on first use; call with ob_mu held. */
static struct outbox *console_data_outbox_locked(struct console *c, char *err, size_t errlen)
{
	if (!c->ob)
		c->ob = outbox_open(c->sh->cfg->data_dir, err, errlen);
	else
		outbox_adopt(c->ob);   /* last used by another worker */
	return c->ob;
}

/* Requests and events per minute, from the samples kept across views: over
 * the newest one at least a minute old, else since start; over a minute at
 * least. */
static void console_data_rates(struct console *c, struct console_view *v)
{
	double now = clock_mono(), window;
	const struct console_sample *base = NULL;
	struct console_sample cur = { .at = now, .requests = v->m.requests_total,
				      .events = v->m.events_total };
	struct console_sample start = { .at = c->started_mono };

	pthread_mutex_lock(&c->rate_mu);
	for (size_t i = 0; i < c->nsamples; i++) {
		const struct console_sample *s = &c->samples[i];

		if (now - s->at >= 60 && (!base || s->at > base->at))
			base = s;
	}
	if (c->nsamples == 0 || now - c->samples[(c->next_sample + CONSOLE_RATE_SAMPLES - 1) %
						 CONSOLE_RATE_SAMPLES].at >= CONSOLE_RATE_EVERY_S) {
		c->samples[c->next_sample] = cur;
		c->next_sample = (c->next_sample + 1) % CONSOLE_RATE_SAMPLES;
		if (c->nsamples < CONSOLE_RATE_SAMPLES)
			c->nsamples++;
	}
	/* no view a minute ago: since start (the counters started at 0) */
	if (!base || base->requests > cur.requests || base->events > cur.events)
		base = &start;
	/* per minute of at least a minute: a young process's few requests are
	 * not extrapolated to a rate it never had */
	window = now - base->at > 60 ? now - base->at : 60;
	v->requests_per_min = (double)(cur.requests - base->requests) * 60.0 / window;
	v->events_per_min = (double)(cur.events - base->events) * 60.0 / window;
	v->rate_window_s = window;
	pthread_mutex_unlock(&c->rate_mu);
}

/* text[0..n) with e-mails masked, cut to cap bytes (on a UTF-8 boundary). */
static void console_data_masked(const char *text, size_t n, char *out, size_t cap)
{
	size_t len = 0;
	char *m = text ? console_mask_emails(text, n, &len) : NULL;

	out[0] = '\0';
	if (!m)
		return;
	if (len >= cap) {
		len = cap - 1;
		while (len > 0 && ((unsigned char)m[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(out, m, len);
	out[len] = '\0';
	free(m);
}

/* A dead letter's line in the console: the list and the detail page alike. */
static void console_data_summary(const struct outbox_dlq_entry *e, int kind,
				 struct console_dead *d)
{
	d->id = e->id;
	d->died_at = e->died_at;
	d->kind = kind;
	d->attempts = kind == OUTBOX_DEAD_FORWARD ? e->attempts : -1;
	dlq_dest_name(e, d->dest, sizeof d->dest);
	console_data_masked(e->reason, e->reason ? strlen(e->reason) : 0, d->reason,
			    sizeof d->reason);
}

struct console_data_scan {
	struct console_snapshot *s;
	struct console_dead ring[CONSOLE_NEWEST];
	size_t n;                        /* rows seen (the ring holds the last 50) */
};

static int console_data_scan_one(const struct outbox_dlq_entry *e, void *arg)
{
	struct console_data_scan *sc = arg;
	struct console_dead *d;
	int kind;

	if (e->malformed)
		return 0;
	kind = outbox_dead_kind_parse(e->kind);
	if (kind < 0)
		return 0;
	sc->s->v.dead_by_kind[kind]++;
	sc->s->v.dead_open++;
	d = &sc->ring[sc->n++ % CONSOLE_NEWEST];
	console_data_summary(e, kind, d);
	return 0;
}

/* The open dead letters: counts by kind and the newest CONSOLE_NEWEST. */
static void console_data_dead_letters(struct console *c, struct console_snapshot *s)
{
	struct outbox_dlq_filter f = { .state = OUTBOX_DLQ_OPEN };
	struct console_data_scan *sc = calloc(1, sizeof *sc);
	struct outbox *ob;
	size_t keep;

	if (!sc) {
		snprintf(s->dlq_error, sizeof s->dlq_error, "out of memory");
		goto out;
	}
	sc->s = s;
	pthread_mutex_lock(&c->ob_mu);
	ob = console_data_outbox_locked(c, s->dlq_error, sizeof s->dlq_error);
	if (ob && outbox_dlq_list(ob, &f, console_data_scan_one, sc) < 0)
		snprintf(s->dlq_error, sizeof s->dlq_error, "%s", outbox_error(ob));
	pthread_mutex_unlock(&c->ob_mu);
	keep = sc->n < CONSOLE_NEWEST ? sc->n : CONSOLE_NEWEST;
	for (size_t i = 0; i < keep; i++)   /* newest first */
		s->newest[i] = sc->ring[(sc->n - 1 - i) % CONSOLE_NEWEST];
	s->v.newest = s->newest;
	s->v.nnewest = keep;
out:
	if (s->dlq_error[0])
		s->v.dlq_error = s->dlq_error;
	free(sc);
}

int console_data_view(struct console *c, struct console_snapshot *s)
{
	struct deliver_status_row rows[DELIVER_STATUS_MAX];
	size_t n = deliver_status_snapshot(rows, DELIVER_STATUS_MAX);
	struct console_view *v = &s->v;

	v->version = EGOI_ROUTER_VERSION;
	v->now = clock_wall();
	v->started = c->started;
	s->snap = config_snap_acquire();
	v->rules_path = s->snap ? s->snap->cfg.rules_path : c->sh->cfg->rules_path;
	v->generation = atomic_load(&c->sh->published.generation);
	metrics_read(&v->m);
	console_data_rates(c, v);
	for (size_t i = 0; i < n; i++) {
		const char *label = rows[i].label[0] ? rows[i].label : rows[i].key;

		s->dests[i].st = rows[i];
		s->dests[i].delivered = metrics_delivery_count(label, METRICS_DONE);
		s->dests[i].retried = metrics_delivery_count(label, METRICS_RETRY);
		s->dests[i].dead = metrics_delivery_count(label, METRICS_DEAD);
	}
	v->dests = s->dests;
	v->ndests = n;
	console_data_dead_letters(c, s);
	return 0;
}

void console_data_free(struct console_snapshot *s)
{
	config_snap_release(s->snap);
	s->snap = NULL;
}

static int console_data_fetch(const struct outbox_dlq_entry *e, void *arg)
{
	struct console_dead_detail *d = arg;
	size_t len = 0;

	if (e->malformed)
		return 0;
	console_data_summary(e, outbox_dead_kind_parse(e->kind), &d->d);
	d->created_at = e->created_at;
	d->last_status = e->last_status;
	d->replayed = e->replayed_at > 0;
	d->request_id = e->request_id ? strdup(e->request_id) : NULL;
	d->method = e->method ? strdup(e->method) : NULL;
	d->delivery_id = e->delivery_id ? strdup(e->delivery_id) : NULL;
	if (e->payload) {
		d->payload = console_mask_emails(e->payload, e->payload_len, &len);
		d->payload_len = len;
		if (!d->payload)
			return 1;
	}
	return 0;
}

int console_data_dead(struct console *c, int64_t id, struct console_dead_detail *d)
{
	const int64_t one[1] = { id };
	struct outbox_dlq_filter f = { .ids = one, .nids = 1, .with_payload = 1 };
	struct outbox *ob;
	char err[256];
	int rc = -1;

	memset(d, 0, sizeof *d);
	pthread_mutex_lock(&c->ob_mu);
	ob = console_data_outbox_locked(c, err, sizeof err);
	if (ob)
		rc = outbox_dlq_list(ob, &f, console_data_fetch, d);
	pthread_mutex_unlock(&c->ob_mu);
	if (rc != 0)
		return -1;
	return d->d.id == id ? 1 : 0;
}

void console_data_dead_free(struct console_dead_detail *d)
{
	free((char *)d->request_id);
	free((char *)d->method);
	free((char *)d->delivery_id);
	free((char *)d->payload);
	memset(d, 0, sizeof *d);
}

int console_data_act(struct console *c, const struct console_action *a, char *msg,
		     size_t msglen)
{
	struct dlq_selection sel = { .kind = a->kind, .dest = a->dest };
	struct dlq_counts n;
	struct outbox *ob;
	struct config_snap *snap = config_snap_acquire();   /* the rules file in force */
	const struct config *cfg = snap ? &snap->cfg : c->sh->cfg;
	char err[256];
	long purged;
	int rc = -1;

	if (a->id > 0) {
		sel.ids = &a->id;
		sel.nids = 1;
	}
	pthread_mutex_lock(&c->ob_mu);
	ob = console_data_outbox_locked(c, err, sizeof err);
	if (!a->id && !a->kind && !a->dest && !a->all) {
		snprintf(msg, msglen, "nothing selected");
	} else if (!ob) {
		snprintf(msg, msglen, "outbox: %s", err);
	} else if (strcmp(a->op, "replay") == 0) {
		if (dlq_replay_selection(&sel, cfg, ob, &n) < 0) {
			snprintf(msg, msglen, "replay could not run (another replay running, or "
					      "a database error: see the log)");
		} else {
			snprintf(msg, msglen, "replayed %ld, skipped %ld, failed %ld", n.replayed,
				 n.skipped, n.failed);
			rc = 0;
		}
	} else if (strcmp(a->op, "purge") == 0 && !a->dest) {
		purged = dlq_purge_selection(ob, &sel, 0, 0);
		if (purged < 0) {
			snprintf(msg, msglen, "purge failed: %s", outbox_error(ob));
		} else {
			snprintf(msg, msglen, "purged %ld", purged);
			rc = 0;
		}
	} else {
		snprintf(msg, msglen, "unknown action");
	}
	pthread_mutex_unlock(&c->ob_mu);
	config_snap_release(snap);
	return rc;
}
