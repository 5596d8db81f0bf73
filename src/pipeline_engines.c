/*
 * pipeline_engines.c — the bounded set of rules engines that workers borrow
 * (see pipeline_engines.h). The set is small (a few per core), so a linear
 * scan under the mutex picks a slot.
 */
#include "pipeline_engines.h"

#include <pthread.h>
#include <stdlib.h>

#include "rules.h"

struct pipeline_engines_slot {
	struct pipeline_engine engine;  /* first: a borrowed pointer is the slot's */
	int busy;                       /* borrowed, or being shrunk by pipeline_engines_idle */
	int used;                       /* borrowed since its last rules_idle */
	int built;                      /* had a state when last returned (read by _built) */
	unsigned long returned;         /* stamp of its last return: the newest is warmest */
};

struct pipeline_engines {
	pthread_mutex_t mu;
	pthread_cond_t freed;           /* broadcast when a slot is returned */
	unsigned long stamp;
	unsigned long next_ticket;      /* borrowers that found every slot busy queue */
	unsigned long serving;          /* by ticket: the oldest is served first */
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
	pthread_cond_init(&e->freed, NULL);
	e->max = max;
	return e;
}

void pipeline_engines_free(struct pipeline_engines *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->max; i++)
		rules_free(e->slots[i].engine.rules);   /* rules_free may run on any thread */
	pthread_cond_destroy(&e->freed);
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

struct pipeline_engine *pipeline_engines_borrow(struct pipeline_engines *e)
{
	struct pipeline_engines_slot *s;

	pthread_mutex_lock(&e->mu);
	s = e->serving == e->next_ticket ? pipeline_engines_pick(e) : NULL;
	if (!s) {
		/* First come, first served: without the queue a returned slot went to
		 * whichever waiter woke first, and at batch 1000 some batches waited
		 * for several others (p99 three times the mean). */
		unsigned long ticket = e->next_ticket++;

		while (e->serving != ticket || !(s = pipeline_engines_pick(e)))
			pthread_cond_wait(&e->freed, &e->mu);
		e->serving++;
		pthread_cond_broadcast(&e->freed);   /* the next ticket may find a slot too */
	}
	s->busy = 1;
	s->used = 1;
	pthread_mutex_unlock(&e->mu);
	if (s->engine.rules)
		rules_adopt(s->engine.rules);
	return &s->engine;
}

void pipeline_engines_return(struct pipeline_engines *e, struct pipeline_engine *slot)
{
	struct pipeline_engines_slot *s = (struct pipeline_engines_slot *)slot;

	pthread_mutex_lock(&e->mu);
	s->busy = 0;
	s->built = s->engine.rules != NULL;
	s->returned = ++e->stamp;
	pthread_cond_broadcast(&e->freed);   /* the waiter whose turn it is */
	pthread_mutex_unlock(&e->mu);
}

void pipeline_engines_idle(struct pipeline_engines *e)
{
	for (size_t i = 0; i < e->max; i++) {
		struct pipeline_engines_slot *s = &e->slots[i];
		int take;

		pthread_mutex_lock(&e->mu);
		take = !s->busy && s->used && s->engine.rules;
		if (take) {
			s->busy = 1;
			s->used = 0;
		}
		pthread_mutex_unlock(&e->mu);
		if (!take)
			continue;
		rules_adopt(s->engine.rules);
		rules_idle(s->engine.rules);
		pthread_mutex_lock(&e->mu);
		s->busy = 0;   /* its return stamp stays: shrinking does not make it warmer */
		pthread_cond_broadcast(&e->freed);
		pthread_mutex_unlock(&e->mu);
	}
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

size_t pipeline_engines_max(const struct pipeline_engines *e)
{
	return e->max;
}
