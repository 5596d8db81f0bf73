/*
 * console_internal.h — shared by the parts of the status console, not a
 * public interface: console.c serves HTTP (routes, access, forms),
 * console_data.c gathers what a page shows and runs the buttons' actions.
 *
 * Threads: the handlers run on the admin listener's workers; the outbox
 * connection is used under ob_mu (outbox_adopt by whichever worker holds
 * it), the rate samples under rate_mu, the sessions under auth's mutex.
 */
#ifndef EGOI_CONSOLE_INTERNAL_H
#define EGOI_CONSOLE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "console.h"
#include "console_auth.h"
#include "console_page.h"

struct config_snap;
struct outbox;
struct pipeline_shared;

#define CONSOLE_RATE_SAMPLES 64      /* one per CONSOLE_RATE_EVERY_S at most: 5 min */
#define CONSOLE_RATE_EVERY_S 5.0

struct console_sample {
	double at;                       /* monotonic seconds */
	unsigned long requests, events;
};

struct console {
	struct pipeline_shared *sh;      /* borrowed */
	const char *token;               /* admin_token, borrowed */
	double started;                  /* unix seconds */
	double started_mono;
	struct console_auth auth;
	pthread_mutex_t ob_mu;
	struct outbox *ob;               /* under ob_mu; opened on first use */
	pthread_mutex_t rate_mu;
	struct console_sample samples[CONSOLE_RATE_SAMPLES];
	size_t nsamples, next_sample;
	int ready;                       /* the mutexes are initialised */
};

/* Everything one overview shows, with the storage its view points into. */
struct console_snapshot {
	struct console_view v;
	struct console_dest dests[DELIVER_STATUS_MAX];
	struct console_dead newest[CONSOLE_NEWEST];
	char dlq_error[256];
	struct config_snap *snap;        /* for rules_path; released by console_data_free */
};

/* Fills s (zeroed by the caller) from the live process. 0, or -1 out of memory. */
int console_data_view(struct console *c, struct console_snapshot *s);

/* Releases what s holds. */
void console_data_free(struct console_snapshot *s);

/* Dead letter id in full, its payload masked, into *d (strings malloc'd,
 * freed with console_data_dead_free). 1 found, 0 not found, -1 error. */
int console_data_dead(struct console *c, int64_t id, struct console_dead_detail *d);
void console_data_dead_free(struct console_dead_detail *d);

/* A button: op "replay" or "purge", one selector (id, kind, dest or all).
 * Writes what happened into msg; 0 done, -1 refused or failed. */
struct console_action {
	const char *op;
	int64_t id;                      /* 0 = none */
	const char *kind, *dest;         /* NULL = none */
	int all;
};
int console_data_act(struct console *c, const struct console_action *a, char *msg,
		     size_t msglen);

#endif
