/*
 * outbox_deliver.h — the delivery thread's side of the outbox (see outbox.h):
 * claim due entries under a lease, record each outcome (delivered, retry at
 * a time, dead letter), and the counts the metrics page shows.
 *
 * Threads: the calls take a connection owned by the calling thread (in the
 * daemon, the delivery thread's own; outbox_adopt).
 */
#ifndef EGOI_OUTBOX_DELIVER_H
#define EGOI_OUTBOX_DELIVER_H

#include "outbox.h"

struct outbox_delivery {
	int64_t id;
	char delivery_id[40];
	char *name, *url, *method, *content_type, *headers;
	char *body;
	size_t body_len;
	long attempts;             /* attempts made before this one */
	double created_at;         /* unix seconds */
	char *request_id;
	long hop;                  /* X-Router-Hop to send; 0 = stored before hops existed */
};

/*
 * For the delivery thread's connection: commits without an fsync of their
 * own (PRAGMA synchronous = NORMAL). Safe for what delivery writes — a
 * lease, an outcome or a dead letter lost to a power cut means the entry
 * is sent again (at-least-once), never lost — and the intake's commits keep
 * synchronous = FULL on their own connection, which also flushes whatever
 * delivery wrote before them. 0 or -1.
 */
int outbox_relax_sync(struct outbox *ob);

/*
 * Wake-ups from other routers (PostgreSQL: LISTEN/NOTIFY; every commit that
 * added forwards notifies). outbox_wake_fd returns a descriptor to poll for
 * reading (listening from the first call on, again after a re-connection),
 * or -1 when the backend has none (SQLite: one router, deliver_notify
 * wakes it) or the connection is down. outbox_wake_drain reads what
 * arrived without blocking: the number of wake-ups (0 = none), -1 when the
 * connection failed (the next outbox call re-connects).
 */
int outbox_wake_fd(struct outbox *ob);
int outbox_wake_drain(struct outbox *ob);

/* Forgets the leases left from before: every lease on SQLite, this
 * process's only on PostgreSQL (outbox_pg.h). Call once when the delivery
 * side starts. */
int outbox_release_leases(struct outbox *ob);

/*
 * Leases up to max due entries (next attempt <= now, not leased) of
 * destination dest (destination.h; "" holds URLs without one) in order of
 * due time, id. *out is a new array the caller frees with
 * outbox_deliveries_free. Returns the count, or -1.
 */
int outbox_claim_due(struct outbox *ob, const char *dest, double now, size_t max,
		     struct outbox_delivery **out);

void outbox_deliveries_free(struct outbox_delivery *d, size_t n);

/*
 * Calls fn once per destination that has unleased entries, with its earliest
 * next attempt (unix seconds), in destination order; dest is valid during
 * the call only and fn must not use ob. Returns 0, fn's non-zero value when
 * it stopped, or -1 on a database error.
 */
int outbox_scan_destinations(struct outbox *ob,
			     int (*fn)(const char *dest, double next_at, void *arg), void *arg);

/* Makes every unleased entry of dest due at now (a recovered destination's
 * backlog goes at once instead of at its backed-off times). Returns how many
 * moved, or -1. */
int outbox_dest_due_now(struct outbox *ob, const char *dest, double now);

/* Delivered: the entry is removed. */
int outbox_complete(struct outbox *ob, int64_t id);

/* Failed, to be retried at next_at: attempts+1, lease released, status/error kept. */
int outbox_retry(struct outbox *ob, int64_t id, double next_at, int status, const char *error);

/* Failed for good: moved to dead_letters (kind forward) with status/error. */
int outbox_bury(struct outbox *ob, int64_t id, int status, const char *error);

/* Gives pages freed by deleted entries back to the file system and empties
 * the WAL (used by delivery while data_dir is full). 0 or -1. */
int outbox_release_space(struct outbox *ob);

/* Counts for metrics and tests; -1 on error. */
long outbox_count_pending(struct outbox *ob);
long outbox_count_dead(struct outbox *ob);
/* Entries waiting for dest, leased or not. */
long outbox_count_dest(struct outbox *ob, const char *dest);

#endif
