/*
 * outbox_dlq.h — dead letters for `egoi-router dlq` (see outbox.h): list
 * with a filter, re-queue a dead forward, mark a replayed event, purge.
 *
 * Threads: the calls take a connection owned by the calling thread (the
 * dlq command's main thread).
 */
#ifndef EGOI_OUTBOX_DLQ_H
#define EGOI_OUTBOX_DLQ_H

#include "outbox.h"

/* Which dead letters a dlq call looks at; a zeroed filter means all of them. */
enum outbox_dlq_state {
	OUTBOX_DLQ_ANY = 0,
	OUTBOX_DLQ_OPEN,           /* not replayed yet */
	OUTBOX_DLQ_REPLAYED,       /* replayed_at set */
};

struct outbox_dlq_filter {
	const char *kind;          /* one of outbox_dead_kind_names; NULL = any */
	const int64_t *ids;        /* only these ids (nids of them); NULL = any id */
	size_t nids;
	enum outbox_dlq_state state;
	double died_before;        /* only died_at < died_before (unix seconds); 0 = any */
	long limit;                /* at most this many, oldest first; 0 = no limit (list only) */
	int with_payload;          /* list: read the payload too (else only its length) */
};

/*
 * One dead letter as outbox_dlq_list shows it. Every pointer points into
 * SQLite's row buffer: valid only during the callback, copy what you keep.
 * Absent values are NULL / 0; attempts is -1 when not a forward. A row
 * that does not hold a dead letter (written by another tool, or damaged:
 * a NULL, blob or unknown kind, a NULL reason, times that are not numbers)
 * has malformed set to why; only its id and what could be read are then
 * filled in, and the caller should report and skip it.
 */
struct outbox_dlq_entry {
	int64_t id;
	const char *kind;
	const char *reason;
	const char *request_id;
	long event_index;          /* 1-based, 0 if none */
	double created_at, died_at;
	double replayed_at;        /* 0 = not replayed */
	const char *target;        /* write path */
	const char *delivery_id, *name, *url, *method, *content_type, *headers;  /* forwards */
	long attempts;
	int last_status;           /* 0 = none (network error, or not a forward) */
	const char *payload;       /* NULL unless with_payload (or no payload) */
	size_t payload_len;        /* always set */
	const char *malformed;     /* NULL, or why this row is not a usable dead letter
				    * (static text: may be kept after the callback) */
};

/*
 * Calls fn for each dead letter matching f, oldest (lowest id) first, in one
 * read snapshot; fn must not use ob. Malformed rows are given to fn too
 * (e->malformed set), so one bad row does not hide the others. fn returns 0
 * to go on, anything else to stop. Returns 0 when every match was visited, fn's value when it stopped,
 * -1 on a database error (outbox_error) or an invalid filter.
 */
int outbox_dlq_list(struct outbox *ob, const struct outbox_dlq_filter *f,
		    int (*fn)(const struct outbox_dlq_entry *e, void *arg), void *arg);

/*
 * Puts forward dead letter id back into deliveries and marks it replayed,
 * in one transaction: same delivery id (receivers can drop repeats), url,
 * method, headers, content type, name and body byte for byte; attempts 0,
 * created_at and next attempt now (a fresh forward_max_age budget).
 * Returns OUTBOX_DLQ_DONE when re-queued, OUTBOX_DLQ_NOT_OPEN when there is
 * no such open forward dead letter (unknown id, another kind, already
 * replayed), OUTBOX_DLQ_FAILED on error (nothing changed).
 */
enum outbox_dlq_result {
	OUTBOX_DLQ_FAILED = -1,    /* database error (outbox_error); nothing changed */
	OUTBOX_DLQ_DONE = 0,       /* the dead letter was re-queued / marked replayed */
	OUTBOX_DLQ_NOT_OPEN = 1,   /* no open dead letter of that id (and kind): nothing to do */
};
enum outbox_dlq_result outbox_dlq_requeue_forward(struct outbox *ob, int64_t id);

/* Sets replayed_at = now on dead letter id: OUTBOX_DLQ_DONE, OUTBOX_DLQ_NOT_OPEN
 * when it is unknown or was already replayed, OUTBOX_DLQ_FAILED on error. */
enum outbox_dlq_result outbox_dlq_mark_replayed(struct outbox *ob, int64_t id);

/* Deletes the dead letters matching f (limit and with_payload ignored) in
 * one transaction. Returns how many, or -1. */
long outbox_dlq_purge(struct outbox *ob, const struct outbox_dlq_filter *f);

#endif
