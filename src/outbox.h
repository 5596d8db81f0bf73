/*
 * outbox.h — the durable outbox: SQLite in WAL mode, data_dir/outbox.db.
 *
 * Tables (created on open, schema versioned with PRAGMA user_version):
 *   deliveries    forwards waiting to be delivered (deleted when done)
 *   dead_letters  events or forwards that need an operator: rule errors,
 *                 rejected events, refused writes, forwards that failed for
 *                 good; kept with the reason and the payload for
 *                 `dlq list|replay|purge`
 *
 * A batch is added in one transaction: outbox_begin, outbox_add_forward /
 * outbox_add_dead..., outbox_commit (in the daemon through the group
 * committer, a savepoint per batch, see outbox_writer.h). The delivery thread
 * claims due entries (a lease, so one entry is never sent twice at once) and
 * records each outcome. Leases are forgotten when the delivery side opens, so
 * everything undelivered resumes after a restart.
 *
 * Threads: a struct outbox (one sqlite3 connection) belongs to ONE thread.
 * In the daemon, the group-commit writer's (outbox_writer.h) adds every
 * batch the HTTP workers hand it and the delivery thread's claims and
 * records; main's own, opened first to create data_dir and the schema,
 * stays idle. A `dlq` command beside the daemon opens one in its own
 * process. SQLite's WAL and busy timeout serialise writers across them.
 */
#ifndef EGOI_OUTBOX_H
#define EGOI_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

struct outbox;

/* Opens (creating data_dir and the database if needed). NULL with err set. */
struct outbox *outbox_open(const char *data_dir, char *err, size_t errlen);

/*
 * The connection belongs to the thread that opened it. A thread it is handed
 * to (opened by a start function, used by the thread it starts) calls this
 * first, before any other call on ob; the previous owner must no longer use
 * it. Every entry point but outbox_close / outbox_error asserts the owner.
 */
void outbox_adopt(struct outbox *ob);

/* Closes; ob may be NULL. Rolls back an open transaction. */
void outbox_close(struct outbox *ob);

/* Last error message of this connection (valid until the next call). */
const char *outbox_error(const struct outbox *ob);

/* --- writing a batch (HTTP workers) --- */

struct outbox_forward {
	const char *name;          /* label; NULL = url host */
	const char *url;
	const char *method;        /* "POST" or "PUT" */
	const char *content_type;  /* NULL = application/json */
	const char *headers;       /* "Name: value\n" lines, or NULL */
	const char *body;
	size_t body_len;
	const char *request_id;    /* of the batch that created it */
	long hop;                  /* X-Router-Hop it is sent with (incoming hop + 1) */
};

enum outbox_dead_kind {
	OUTBOX_DEAD_RULE_ERROR,    /* payload = the event's original JSON */
	OUTBOX_DEAD_REJECTED,      /* payload = the element's original JSON */
	OUTBOX_DEAD_WRITE,         /* payload = the line that could not be written */
	OUTBOX_DEAD_FORWARD,       /* payload = the request body (via outbox_bury) */
	OUTBOX_DEAD_KINDS
};

/*
 * The kinds' names, as stored in dead_letters.kind, listed by `dlq list` and
 * taken by `dlq --kind`: the one list in the program. The schema's CHECK on
 * dead_letters.kind (outbox_schema.c) is written out in its migration, which
 * existing databases already ran; test_outbox checks that it names exactly
 * these. A new kind therefore needs a migration that rebuilds dead_letters.
 */
extern const char *const outbox_dead_kind_names[OUTBOX_DEAD_KINDS];

/* The kind named name, or -1 when it is none (NULL included). */
int outbox_dead_kind_parse(const char *name);

struct outbox_dead {
	enum outbox_dead_kind kind;
	const char *reason;        /* one line */
	const char *payload;
	size_t payload_len;
	const char *request_id;
	long event_index;          /* 1-based index in its batch, 0 if none */
	const char *target;        /* write path, or NULL */
};

int outbox_begin(struct outbox *ob);
/* Adds one delivery; its delivery id (a random UUID string) is written to
 * id_out (37 bytes) when id_out is not NULL. */
int outbox_add_forward(struct outbox *ob, const struct outbox_forward *f, char *id_out);
int outbox_add_dead(struct outbox *ob, const struct outbox_dead *d);
int outbox_commit(struct outbox *ob);
void outbox_rollback(struct outbox *ob);

/* Inside a transaction: mark, keep, or undo back to the mark (and drop it). */
int outbox_savepoint(struct outbox *ob);
int outbox_savepoint_release(struct outbox *ob);
int outbox_savepoint_rollback(struct outbox *ob);

/* --- delivering (the delivery thread) --- */

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

/* Forgets every lease (call once when the delivery side starts). */
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

/* --- dead letters (`egoi-router dlq`, outbox_dlq.c) --- */

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
