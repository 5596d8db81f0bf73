/*
 * metrics_labels.h — the labelled counter families of metrics.c
 * (decisions by kind and name, deliveries by outcome and destination):
 * a fixed table of (kind, name) pairs with a lock-free lookup and one
 * counter per pair, plus one "other" counter per kind once the table is
 * full. Names come from rules, so each is cleaned (metrics_label_clean)
 * before it is stored or exported. Internal to the metrics module.
 *
 * Threads: lookups and counting from any thread (a mutex only to add a
 * pair); metrics_family_reset only while no other thread uses the family.
 */
#ifndef EGOI_METRICS_LABELS_H
#define EGOI_METRICS_LABELS_H

#include <pthread.h>
#include <stdatomic.h>

#include "metrics.h"

#define METRICS_LABEL_MAX 128              /* bytes of a label value, see metrics_label_clean */
#define METRICS_HASH (METRICS_LABELS * 2)   /* index slots: at most half full */
#define METRICS_MAX_KINDS 4
#define METRICS_OTHER(kind) (METRICS_LABELS + (kind))

_Static_assert(METRICS_KINDS <= METRICS_MAX_KINDS && METRICS_OUTCOMES <= METRICS_MAX_KINDS,
	       "one \"other\" counter per kind");

struct metrics_label {
	int kind;
	char *name;
};

struct metrics_family {
	pthread_mutex_t lock;                   /* only to add a pair */
	atomic_int used;                        /* entries published */
	struct metrics_label items[METRICS_LABELS];
	atomic_int index[METRICS_HASH];         /* 0 = empty, else entry + 1 */
	atomic_ulong value[METRICS_LABELS + METRICS_MAX_KINDS]; /* then "other" per kind */
};

/* in (NUL-terminated) → out (METRICS_LABEL_MAX + 1 bytes), see the .c. */
void metrics_label_clean(const char *in, char *out);

/* The counter index of (kind, name) in f->value, adding the pair if there
 * is room, else METRICS_OTHER(kind). raw NULL counts as "?". */
int metrics_family_slot(struct metrics_family *f, int kind, const char *raw);

/* The counter index of (kind, name) when that pair is registered, else -1. */
int metrics_family_find(struct metrics_family *f, int kind, const char *raw);

/* Forgets every pair and zeroes every counter (tests). */
void metrics_family_reset(struct metrics_family *f);

#endif
