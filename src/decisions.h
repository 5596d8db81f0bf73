/*
 * decisions.h — the decisions rules take for one batch, and their commit.
 *
 * Rules append decisions while a batch is routed (rules_api.c); when every
 * event is routed, decisions_commit makes them durable in one step: lines are
 * appended to files (sink_file.c), then every forward and dead letter of the
 * batch goes into the outbox in ONE transaction (outbox.c). Only after
 * decisions_commit returns 0 may the batch be answered 200.
 *
 * Default forwards (no opts.body) to the same destination (url, method,
 * content type, headers and name all equal) are merged into one request whose
 * body is {"events":[...]} holding each event's original bytes, in batch order.
 *
 * A struct decisions belongs to one worker thread; nothing here is shared.
 */
#ifndef EGOI_DECISIONS_H
#define EGOI_DECISIONS_H

#include <stddef.h>

struct batch;
struct outbox_writer;
struct sink_file;

enum decision_kind {
	DECISION_FORWARD,
	DECISION_WRITE,
	DECISION_DROP,
	DECISION_ERROR,    /* rule error: the event becomes a dead letter */
	DECISION_REJECT,   /* malformed element of "events": dead letter */
};

/*
 * One decision. Every string is owned by the struct decisions it lives in
 * (freed by decisions_clear/decisions_free). Unused fields are NULL/0.
 */
struct decision {
	enum decision_kind kind;
	size_t event;          /* 0-based index of the event in the batch */
	char *target;          /* FORWARD: url; WRITE: path relative to output_dir */
	union {                /* one string, named for the kind (NULL = none) */
		char *body;    /* FORWARD: opts.body (NULL = default batch body) */
		char *line;    /* WRITE: opts.line (NULL = the event's original JSON) */
		char *reason;  /* DROP: its reason */
		char *error;   /* ERROR/REJECT: the message */
	};
	size_t len;            /* bytes of that string */
	int is_json;           /* FORWARD body / WRITE line came from a table (JSON-encoded) */
	char *method;          /* FORWARD: "POST" or "PUT" */
	char *content_type;    /* FORWARD: NULL = application/json */
	char *headers;         /* FORWARD: "Name: value\n" lines, or NULL */
	char *name;            /* FORWARD: label for metrics and logs, or NULL (= url host) */
};

struct decisions {
	struct decision *items;
	size_t count, cap;
};

void decisions_init(struct decisions *a);

/* Frees every decision's strings; keeps the array for the next batch. */
void decisions_clear(struct decisions *a);

/* Frees everything; a may be zeroed. */
void decisions_free(struct decisions *a);

/* Frees and removes decisions from index count on (undoes a failed rule). */
void decisions_truncate(struct decisions *a, size_t count);

/* Appends a zeroed decision of kind for event; NULL when out of memory. */
struct decision *decisions_push(struct decisions *a, enum decision_kind kind, size_t event);

/* Copies len bytes into a new NUL-terminated heap string (NULL on OOM). */
char *decisions_strndup(const char *s, size_t len);

struct decisions_summary {
	size_t forwards;       /* outbox entries created (after merging) */
	size_t writes;         /* lines appended */
	size_t drops;          /* events with only drops or no decision */
	size_t dead_letters;   /* rule errors + rejected events + refused writes */
};

struct decisions_commit_env {
	const char *body;             /* the batch body the spans point into */
	const struct batch *batch;
	struct outbox_writer *writer; /* NULL: forwards are not allowed (dry run) */
	struct sink_file *sink;       /* NULL: writes are not allowed */
	const char *request_id;
	int write_sync;               /* write_sync = batch: lines fdatasync'ed before success */
	long hop;                     /* X-Router-Hop of the batch (0 = none): forwards get hop + 1 */
};

/*
 * Makes the batch's decisions durable: appends write lines (one write per
 * file, whole lines only, see sink_file.h), then enqueues forwards and dead
 * letters in one outbox transaction (group-committed with other workers'
 * batches, see outbox_writer.h). With env->write_sync the files written are
 * fdatasync'ed first, in the same group (or here when there is no writer).
 * A write refused by the output_dir policy (symlink escape) turns into a
 * dead letter for that event. Returns 0 on success; -1 on a storage failure (disk, database),
 * with err set: the batch must not be answered 200.
 */
int decisions_commit(const struct decisions *a, const struct decisions_commit_env *env,
		   struct decisions_summary *sum, char *err, size_t errlen);

#endif
