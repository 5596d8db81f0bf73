/*
 * pipeline_engines.c — the bounded set of rules engines that workers borrow
 * (see pipeline_engines.h). The set is small (a few per core), so a linear
 * scan under the mutex picks a slot.
 */
#include "pipeline_engines.h"

#include <pthread.h>
#include <stdlib.h>

#include "clock.h"
#include "rules.h"

struct pipeline_engines_slot {
	struct pipeline_engine engine;  /* first: a borrowed pointer is the slot's */
	int busy;                       /* borrowed, or being shrunk by pipeline_engines_idle */
	int used;                       /* borrowed since its last rules_idle */
	int built;                      /* had a state when last returned (read by _built) */
	unsigned long returned;         /* stamp of its last return: the newest is warmest */
	double returned_at;             /* clock_mono() of its last return */
};

/*
 * A borrower that found every slot busy. It sleeps on its own condition
 * variable, and the thread that frees a slot hands it over (got) and wakes
 * that borrower only. Waking every waiter on each return (one condition
 * variable, broadcast) made up to connections - 1 threads run to find it
 * was not their turn: at batch 1 on 2 cores with 4 slots and 32
 * connections that cut requests/s to a fifth.
 */
struct pipeline_engines_waiter {
	pthread_cond_t wake;
	struct pipeline_engines_slot *got;    /* set, busy, by the thread that freed it */
	struct pipeline_engines_waiter *next;
};

struct pipeline_engines {
	pthread_mutex_t mu;
	unsigned long stamp;
	struct pipeline_engines_waiter *head, *tail;   /* first come, first served */
	size_t max;
	struct pipeline_engines_slot slots[];
};

struct pipeline_engines *pipeline_engines_new(size_t max)
{
	struct pipeline_engines *e;

	if (max < 1)
		max = 1;
	e = calloc(1, sizeof *e + max * sizeof e->slots[0]);
	if (!e)
		return NULL;
	pthread_mutex_init(&e->mu, NULL);
	e->max = max;
	return e;
}

void pipeline_engines_free(struct pipeline_engines *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->max; i++)
		rules_free(e->slots[i].engine.rules);   /* rules_free may run on any thread */
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* The free slot to hand out: the warmest built one, else an empty one; NULL if none. Under mu. */
static struct pipeline_engines_slot *pipeline_engines_pick(struct pipeline_engines *e)
{
	struct pipeline_engines_slot *built = NULL, *empty = NULL;

	for (size_t i = 0; i < e->max; i++) {
		struct pipeline_engines_slot *s = &e->slots[i];

		if (s->busy)
			continue;
		if (!s->engine.rules) {
			if (!empty)
				empty = s;
		} else if (!built || s->returned > built->returned) {
			built = s;
		}
	}
	return built ? built : empty;
}

struct pipeline_engine *pipeline_engines_borrow(struct pipeline_engines *e, double *waited_s)
{
	struct pipeline_engines_slot *s;
	double waited = 0;

	pthread_mutex_lock(&e->mu);
	s = e->head ? NULL : pipeline_engines_pick(e);
	if (s) {
		s->busy = 1;
	} else {
		/* First come, first served: when a returned slot went to whichever
		 * waiter woke first, at batch 1000 some batches waited for several
		 * others (p99 three times the mean). */
		struct pipeline_engines_waiter w = { .got = NULL, .next = NULL };
		double since = clock_mono();

		pthread_cond_init(&w.wake, NULL);
		if (e->tail)
			e->tail->next = &w;
		else
			e->head = &w;
		e->tail = &w;
		while (!w.got)
			pthread_cond_wait(&w.wake, &e->mu);
		pthread_cond_destroy(&w.wake);
		s = w.got;
		waited = clock_mono() - since;
	}
	s->used = 1;
	pthread_mutex_unlock(&e->mu);
	if (waited_s)
		*waited_s = waited;
	if (s->engine.rules)
		rules_adopt(s->engine.rules);
	return &s->engine;
}

/* s is free again: the oldest waiter gets it, still busy, else it is marked free. Under mu. */
static void pipeline_engines_release(struct pipeline_engines *e, struct pipeline_engines_slot *s)
{
	struct pipeline_engines_waiter *w = e->head;

	if (!w) {
		s->busy = 0;
		return;
	}
	e->head = w->next;
	if (!e->head)
		e->tail = NULL;
	w->got = s;
	pthread_cond_signal(&w->wake);
}

void pipeline_engines_return(struct pipeline_engines *e, struct pipeline_engine *slot)
{
	struct pipeline_engines_slot *s = (struct pipeline_engines_slot *)slot;

	pthread_mutex_lock(&e->mu);
	s->built = s->engine.rules != NULL;
	s->returned = ++e->stamp;
	s->returned_at = clock_mono();
	pipeline_engines_release(e, s);
	pthread_mutex_unlock(&e->mu);
}

size_t pipeline_engines_idle(struct pipeline_engines *e, double quiet_s)
{
	double now = clock_mono();
	size_t shrunk = 0;

	for (size_t i = 0; i < e->max; i++) {
		struct pipeline_engines_slot *s = &e->slots[i];
		int take;

		pthread_mutex_lock(&e->mu);
		take = !s->busy && s->used && s->engine.rules && now - s->returned_at >= quiet_s;
		if (take) {
			s->busy = 1;
			s->used = 0;
		}
		pthread_mutex_unlock(&e->mu);
		if (!take)
			continue;
		rules_adopt(s->engine.rules);
		rules_idle(s->engine.rules);
		shrunk++;
		pthread_mutex_lock(&e->mu);
		pipeline_engines_release(e, s);   /* its return stamp stays: shrinking does not make it warmer */
		pthread_mutex_unlock(&e->mu);
	}
	return shrunk;
}

size_t pipeline_engines_built(struct pipeline_engines *e)
{
	size_t n = 0;

	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->max; i++)
		n += e->slots[i].built;   /* a busy slot's pointer is its borrower's */
	pthread_mutex_unlock(&e->mu);
	return n;
}

size_t pipeline_engines_waiting(struct pipeline_engines *e)
{
	size_t n = 0;

	pthread_mutex_lock(&e->mu);
	for (const struct pipeline_engines_waiter *w = e->head; w; w = w->next)
		n++;
	pthread_mutex_unlock(&e->mu);
	return n;
}

size_t pipeline_engines_max(const struct pipeline_engines *e)
{
	return e->max;
}
