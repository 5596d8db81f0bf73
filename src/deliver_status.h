/*
 * deliver_status.h — what the delivery thread knows of each destination,
 * as a snapshot other threads can read (the status console): circuit
 * state, backlog, when it may send again, last success, last error.
 *
 * The delivery thread's own state (deliver_internal.h) is never shared: two
 * small hooks copy the facts here, one per finished attempt
 * (deliver_status_attempt, from deliver_finish) and one per gauge refresh,
 * about once a second (deliver_status_dest). Counts (delivered, retried,
 * dead-lettered) are not kept here: they are the metrics' counters.
 *
 * Bounded: at most DELIVER_STATUS_MAX destinations are remembered (later
 * ones are not shown); a destination forgotten by the delivery thread stays
 * here with its last facts, so a past error is still visible.
 *
 * Threads: every function is safe from any thread (one mutex, held only to
 * copy a few fields); deliver_status_reset only while no other thread uses it.
 */
#ifndef EGOI_DELIVER_STATUS_H
#define EGOI_DELIVER_STATUS_H

#include <stddef.h>

#define DELIVER_STATUS_MAX 64
#define DELIVER_STATUS_TEXT 160   /* bytes kept of a key, label or error */

struct deliver_status_row {
	char key[DELIVER_STATUS_TEXT];     /* scheme://host:port */
	char label[DELIVER_STATUS_TEXT];   /* forward name or host of the last attempt */
	int state;                         /* enum metrics_dest_state */
	long backlog;                      /* forwards in the outbox for it */
	double blocked_until;              /* unix s: circuit open or Retry-After; 0 = none */
	double next_due;                   /* unix s: earliest waiting entry; 0 = none */
	double last_success;               /* unix s; 0 = never */
	double last_error_at;              /* unix s; 0 = never */
	char last_error[DELIVER_STATUS_TEXT];
	int last_status;                   /* HTTP status of the last error, 0 = network */
};

/* One finished attempt for destination key (label: its name or host;
 * ok: delivered; status and detail: what failed). Delivery thread. */
void deliver_status_attempt(const char *key, const char *label, int ok, int status,
			    const char *detail, double now);

/* The delivery thread's view of key at a gauge refresh: state (enum
 * metrics_dest_state), backlog, its Retry-After pause, its circuit's
 * open-until (used when state is open) and its earliest due entry
 * (INFINITY or 0: none), all unix seconds. */
void deliver_status_dest(const char *key, int state, long backlog, double paused_until,
			 double open_until, double next_due);

/* Copies at most cap rows into out, in the order first seen; returns how many. */
size_t deliver_status_snapshot(struct deliver_status_row *out, size_t cap);

/* Forgets everything (tests). */
void deliver_status_reset(void);

#endif
