/*
 * deliver_dest.c — what the delivery thread knows of each destination (see
 * deliver_internal.h): finding and forgetting them, what each may send now
 * (Retry-After pause, then its circuit), when it can next act, and the scan
 * of the outbox that tells which destinations have due entries.
 *
 * Threads: the delivery thread only, like every struct deliver_dest.
 */
#include "deliver_internal.h"

#include "clock.h"
#include "log.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct deliver_dest *deliver_dest_find(struct deliver *d, const char *key)
{
	for (size_t i = 0; i < d->ndests; i++)
		if (strcmp(d->dests[i]->key, key) == 0)
			return d->dests[i];
	return NULL;
}

/* Finds or adds the state of destination key; NULL when out of memory. */
struct deliver_dest *deliver_dest_get(struct deliver *d, const char *key)
{
	struct deliver_dest *t = deliver_dest_find(d, key);
	struct deliver_dest **list;

	if (t)
		return t;
	list = util_array_grow(d->dests, &d->capdests, d->ndests, sizeof *list, 16);
	if (!list)
		return NULL;
	d->dests = list;
	t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->key = strdup(key);
	if (!t->key) {
		free(t);
		return NULL;
	}
	TAILQ_INIT(&t->waiting);
	t->due_at = INFINITY;
	d->dests[d->ndests++] = t;
	return t;
}

/* A destination with nothing left to remember is forgotten. */
static int deliver_dest_idle(const struct deliver_dest *t, double now)
{
	return !t->seen && t->inflight == 0 && t->nwaiting == 0 && t->backlog == 0 &&
	       t->circuit.state == DELIVER_CLOSED && t->circuit.failures == 0 &&
	       t->paused_until <= now;
}

void deliver_dests_forget_idle(struct deliver *d, double now)
{
	for (size_t i = 0; i < d->ndests;) {
		struct deliver_dest *t = d->dests[i];

		if (!deliver_dest_idle(t, now)) {
			i++;
			continue;
		}
		free(t->key);
		free(t);
		d->dests[i] = d->dests[--d->ndests];
	}
}

/* Requests t may have in flight now (Retry-After pause, then the circuit). */
long deliver_dest_allowance(struct deliver *d, struct deliver_dest *t, double now)
{
	if (now < t->paused_until)
		return 0;
	return deliver_circuit_allowance(&t->circuit, now, d->per_host);
}

/* Most requests t may have in flight in its circuit's state. */
static long deliver_dest_limit(const struct deliver *d, const struct deliver_dest *t)
{
	return t->circuit.state == DELIVER_CLOSED ? d->per_host : 1;
}

/* When t could next start or lease something; INFINITY when only a finished
 * transfer (a free slot, a probe's answer) can change that. */
double deliver_dest_ready_at(const struct deliver *d, const struct deliver_dest *t)
{
	double at = t->paused_until;

	if (t->circuit.state == DELIVER_OPEN && t->circuit.until > at)
		at = t->circuit.until;
	if (t->inflight >= deliver_dest_limit(d, t))
		return INFINITY;
	if (t->nwaiting > 0)
		return at;
	return t->due_at > at ? t->due_at : at;
}

struct scan_ctx {
	struct deliver *d;
	int failed;
};

static int deliver_dest_scan_one(const char *dest, double next_at, void *arg)
{
	struct scan_ctx *c = arg;
	struct deliver_dest *t = deliver_dest_get(c->d, dest);

	if (!t) {
		c->failed = 1;
		return 1;
	}
	t->due_at = next_at;
	t->seen = 1;
	return 0;
}

/* Refreshes every destination's due_at from the outbox; 0 or -1 (logged). */
int deliver_dests_scan(struct deliver *d)
{
	struct scan_ctx c = { .d = d };

	for (size_t i = 0; i < d->ndests; i++) {
		d->dests[i]->due_at = INFINITY;
		d->dests[i]->seen = 0;
	}
	if (outbox_scan_destinations(d->ob, deliver_dest_scan_one, &c) != 0) {
		log_msg(LOG_ERROR, NULL, "delivery: finding due entries failed: %s",
			c.failed ? "out of memory" : outbox_error(d->ob));
		return -1;
	}
	return 0;
}

