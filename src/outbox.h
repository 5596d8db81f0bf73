/*
 * outbox.h — the durable outbox, on one of two backends (config key
 * `outbox`, outbox_use): SQLite in WAL mode, data_dir/outbox.db (the
 * default: one node), or a PostgreSQL database that several routers share
 * (outbox_pg.h says what changes there: leases with an owner and an expiry,
 * claims with SELECT ... FOR UPDATE SKIP LOCKED).
 *
 * Tables (created on open, schema versioned):
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
 * records each outcome. Leases left from before are forgotten when the
 * delivery side opens (on PostgreSQL, another process's expire), so
 * everything undelivered resumes after a restart.
 *
 * This header is the connection and a batch's writes (the group-commit
 * writer, tests); the delivery thread's side is outbox_deliver.h, the dead
 * letters of `egoi-router dlq` are outbox_dlq.h.
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

/*
 * Chooses the backend every later outbox_open uses: target "sqlite" (or
 * NULL) is data_dir/outbox.db; a "postgresql://" or "postgres://" libpq
 * connection URI is that database. lease_ms is how long a claim holds an
 * entry on PostgreSQL before any node may claim it again (SQLite's leases
 * last until the outcome or a restart); <= 0 keeps the default. Returns 0,
 * or -1 with err set when target is neither.
 *
 * Threads: process-wide; call before any thread opens an outbox (main,
 * after reading the configuration; a test between its cases).
 */
int outbox_use(const char *target, long lease_ms, char *err, size_t errlen);

/*
 * The lease the daemon asks for: a claim is followed by one request of at
 * most forward_timeout, then its outcome is recorded (retried a few times
 * on failure); twice the timeout plus 30 s covers that with room, and is
 * also how long entries of a killed node wait before another node sends
 * them.
 */
#define OUTBOX_LEASE_MS(forward_timeout_ms) (2L * (forward_timeout_ms) + 30000L)

/*
 * For `egoi-router check`: reaches the chosen backend without changing
 * anything. SQLite: nothing to reach (the file is made on the first run).
 * PostgreSQL: connects and reads the schema version: current, or none yet
 * (the first run creates it). 0 with msg saying what was found, or -1
 * with msg saying why not (unreachable, a newer schema).
 */
int outbox_check(char *msg, size_t len);

/* The name of the backend outbox_use chose: "sqlite" or "postgresql". */
const char *outbox_backend_name(void);

/*
 * Copies target into buf with the password of a connection URI replaced
 * by "***", for messages and logs: no message of the outbox shows it.
 */
void outbox_target_redact(const char *target, char *buf, size_t len);

/* Opens (SQLite: creating data_dir and the database if needed; PostgreSQL:
 * creating or migrating the schema). NULL with err set. */
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

#endif
