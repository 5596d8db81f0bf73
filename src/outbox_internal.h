/*
 * outbox_internal.h — shared by the parts of the outbox module, not a public
 * interface. outbox.c is the public face (outbox.h, outbox_deliver.h,
 * outbox_dlq.h): it checks the owner thread and calls the connection's
 * backend through its struct ob_backend table. Two backends fill one:
 *
 * SQLite (ob_sqlite_backend): outbox_sqlite_sql.c records errors and steps
 * statements; outbox_sqlite.c opens and closes a connection, prepares its
 * statements and runs transactions and the batch writes;
 * outbox_sqlite_schema.c sets up the database file (WAL, busy handler,
 * schema migrations); outbox_sqlite_deliver.c is the delivery thread's side
 * (claim, complete, retry, bury, counts); outbox_sqlite_dlq.c serves
 * `egoi-router dlq` (list, re-queue, mark replayed, purge dead letters).
 *
 * PostgreSQL (ob_pg_backend): outbox_pg*.c, sharing outbox_pg.h.
 *
 * The ob_ prefix marks helpers shared between those files only; callers
 * outside the module use outbox.h.
 *
 * Threads: a struct outbox is one connection (SQLite: opened
 * SQLITE_OPEN_NOMUTEX; PostgreSQL: one PGconn) and must only be used by the
 * thread that owns it.
 */
#ifndef EGOI_OUTBOX_INTERNAL_H
#define EGOI_OUTBOX_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stddef.h>
#include <time.h>

#include <sqlite3.h>

#include "outbox.h"
#include "outbox_deliver.h"
#include "outbox_dlq.h"
#include "clock.h"

/* The prepared statements of an SQLite connection; their SQL is ob_sql in
 * outbox_sqlite.c. */
enum ob_stmt {
	OB_BEGIN,
	OB_COMMIT,
	OB_ROLLBACK,
	OB_ADD_FORWARD,
	OB_ADD_DEAD,
	OB_CLAIM_SELECT,
	OB_CLAIM_LEASE,
	OB_RELEASE,
	OB_DEST_SCAN,
	OB_DEST_DUE_NOW,
	OB_DEST_COUNT,
	OB_DELETE,
	OB_RETRY,
	OB_BURY_COPY,
	OB_COUNT_PENDING,
	OB_COUNT_DEAD,
	OB_NSTMT
};

struct ob_backend;
struct ob_pg;

struct outbox {
	pthread_t owner;             /* the only thread that may use it (outbox_adopt) */
	const struct ob_backend *ops;
	char err[256];
	/* SQLite */
	sqlite3 *db;
	sqlite3_stmt *st[OB_NSTMT];
	/* PostgreSQL (outbox_pg.h) */
	struct ob_pg *pg;
};

/*
 * One backend: the operations of outbox.h, outbox_deliver.h and
 * outbox_dlq.h with the same contracts. outbox.c has checked the owner
 * thread before calling, and a dead-letter filter (never NULL: every
 * dead letter when the caller gave none; its kind known; for a list, its
 * limit >= 0). open fills a zeroed ob (owner set) from target
 * and data_dir and returns 0, or -1 with err set; close releases whatever
 * open got to (outbox.c frees ob itself).
 */
struct ob_backend {
	const char *name;
	int (*open)(struct outbox *ob, const char *target, const char *data_dir, char *err,
		    size_t errlen);
	void (*close)(struct outbox *ob);
	int (*check)(const char *target, char *msg, size_t len);   /* outbox_check */
	int (*begin)(struct outbox *ob);
	int (*add_forward)(struct outbox *ob, const struct outbox_forward *f, char *id_out);
	int (*add_dead)(struct outbox *ob, const struct outbox_dead *d);
	int (*commit)(struct outbox *ob);
	void (*rollback)(struct outbox *ob);
	int (*savepoint)(struct outbox *ob);
	int (*savepoint_release)(struct outbox *ob);
	int (*savepoint_rollback)(struct outbox *ob);
	int (*relax_sync)(struct outbox *ob);
	int (*release_leases)(struct outbox *ob);
	int (*wake_fd)(struct outbox *ob);
	int (*wake_drain)(struct outbox *ob);
	int (*claim_due)(struct outbox *ob, const char *dest, double now, size_t max,
			 struct outbox_delivery **out);
	int (*scan_destinations)(struct outbox *ob,
				 int (*fn)(const char *dest, double next_at, void *arg), void *arg);
	int (*dest_due_now)(struct outbox *ob, const char *dest, double now);
	int (*complete)(struct outbox *ob, int64_t id);
	int (*retry)(struct outbox *ob, int64_t id, double next_at, int status, const char *error);
	int (*bury)(struct outbox *ob, int64_t id, int status, const char *error);
	int (*release_space)(struct outbox *ob);
	long (*count_pending)(struct outbox *ob);
	long (*count_dead)(struct outbox *ob);
	long (*count_dest)(struct outbox *ob, const char *dest);
	int (*dlq_list)(struct outbox *ob, const struct outbox_dlq_filter *f,
			int (*fn)(const struct outbox_dlq_entry *e, void *arg), void *arg);
	enum outbox_dlq_result (*dlq_requeue_forward)(struct outbox *ob, int64_t id);
	enum outbox_dlq_result (*dlq_mark_replayed)(struct outbox *ob, int64_t id);
	long (*dlq_purge)(struct outbox *ob, const struct outbox_dlq_filter *f);
};

extern const struct ob_backend ob_sqlite_backend;
extern const struct ob_backend ob_pg_backend;

/* --- outbox.c: shared by both backends --- */

/* How long a claim leases an entry on PostgreSQL, in ms (outbox_use). */
long ob_lease_ms(void);

/* A random (version 4) UUID in lowercase hex, 36 characters plus NUL. */
void ob_uuid(char out[37]);

/* Formats an error into ob->err; returns -1. */
__attribute__((format(printf, 2, 3)))
int ob_failf(struct outbox *ob, const char *fmt, ...);

/*
 * The columns a dead-letter list reads, in the order of the D_* indexes
 * (both backends; a list with payloads adds D_PAYLOAD). length(payload)
 * counts bytes: SQLite stores payloads as blobs (ob_bind_blob, and bury
 * copies a blob), PostgreSQL as bytea.
 */
#define OB_DLQ_COLUMNS \
	"id, kind, reason, request_id, event_index, created_at, died_at, replayed_at," \
	" target, delivery_id, name, url, method, content_type, headers, attempts," \
	" last_status, length(payload)"
enum ob_dlq_column { D_ID, D_KIND, D_REASON, D_REQID, D_INDEX, D_CREATED, D_DIED, D_REPLAYED, D_TARGET,
       D_DID, D_NAME, D_URL, D_METHOD, D_CTYPE, D_HEADERS, D_ATTEMPTS, D_STATUS, D_PLEN,
       D_PAYLOAD };

/* The reason a dead letter keeps when bury got no error text: "HTTP
 * status", or "delivery failed" without one. Returns error otherwise. */
const char *ob_bury_reason(const char *error, int status, char buf[64]);

/* Why e, as a backend read it from a dead_letters row, is not a usable dead
 * letter (kind_is_text 0: the database holds the kind as another type), or
 * NULL. Both backends check these; SQLite, whose columns take any type,
 * checks its numbers' types as well. */
const char *ob_dlq_malformed(const struct outbox_dlq_entry *e, int kind_is_text);

/* --- the SQLite backend's operations (outbox_sqlite*.c), in ob_sqlite_backend --- */

int ob_sqlite_open(struct outbox *ob, const char *target, const char *data_dir, char *err,
		   size_t errlen);
void ob_sqlite_close(struct outbox *ob);
int ob_sqlite_begin(struct outbox *ob);
int ob_sqlite_add_forward(struct outbox *ob, const struct outbox_forward *f, char *id_out);
int ob_sqlite_add_dead(struct outbox *ob, const struct outbox_dead *d);
int ob_sqlite_commit(struct outbox *ob);
void ob_sqlite_rollback(struct outbox *ob);
int ob_sqlite_savepoint(struct outbox *ob);
int ob_sqlite_savepoint_release(struct outbox *ob);
int ob_sqlite_savepoint_rollback(struct outbox *ob);
int ob_sqlite_relax_sync(struct outbox *ob);
int ob_sqlite_release_leases(struct outbox *ob);
int ob_sqlite_claim_due(struct outbox *ob, const char *dest, double now, size_t max,
			struct outbox_delivery **out);
int ob_sqlite_scan_destinations(struct outbox *ob,
				int (*fn)(const char *dest, double next_at, void *arg), void *arg);
int ob_sqlite_dest_due_now(struct outbox *ob, const char *dest, double now);
int ob_sqlite_complete(struct outbox *ob, int64_t id);
int ob_sqlite_retry(struct outbox *ob, int64_t id, double next_at, int status,
		    const char *error);
int ob_sqlite_bury(struct outbox *ob, int64_t id, int status, const char *error);
int ob_sqlite_release_space(struct outbox *ob);
long ob_sqlite_count_pending(struct outbox *ob);
long ob_sqlite_count_dead(struct outbox *ob);
long ob_sqlite_count_dest(struct outbox *ob, const char *dest);
int ob_sqlite_dlq_list(struct outbox *ob, const struct outbox_dlq_filter *f,
		       int (*fn)(const struct outbox_dlq_entry *e, void *arg), void *arg);
enum outbox_dlq_result ob_sqlite_dlq_requeue_forward(struct outbox *ob, int64_t id);
enum outbox_dlq_result ob_sqlite_dlq_mark_replayed(struct outbox *ob, int64_t id);
long ob_sqlite_dlq_purge(struct outbox *ob, const struct outbox_dlq_filter *f);

/* --- outbox_sqlite_sql.c --- */

/*
 * Every entry point that touches the connection starts with this: a use from
 * another thread than the owner is a bug (the connection is NOMUTEX), never
 * something input can cause. outbox_close and outbox_error are exempt (a
 * connection may be closed by whoever joined its thread).
 */
#define OB_OWNED(ob) assert(pthread_equal((ob)->owner, pthread_self()))

/* Records the connection's current SQLite error, prefixed with what failed. */
int ob_fail(struct outbox *ob, const char *what);

/*
 * Steps a statement that returns no rows, unless binding its parameters
 * failed (bind_failed: any sqlite3_bind_* did not return SQLITE_OK; SQLite
 * keeps that error for sqlite3_errmsg). Resets it either way.
 */
int ob_run(struct outbox *ob, enum ob_stmt s, const char *what, int bind_failed);

/* sqlite3_exec with the error recorded in ob->err; 0 or -1. */
int ob_exec(struct outbox *ob, const char *sql, const char *what);

/* --- outbox_sqlite.c --- */

/*
 * Internal transactions (claim, bury) join a transaction the caller already
 * opened instead of failing; *own says whether ob_tx_enter opened it, and
 * ob_tx_leave commits (ok) or rolls back only a transaction it owns.
 */
int ob_tx_enter(struct outbox *ob, int *own);
int ob_tx_leave(struct outbox *ob, int own, int ok);

/* --- outbox_sqlite_schema.c (each 0, or -1 with the reason in err / ob->err) --- */

/* Busy handler, WAL journal mode, synchronous=FULL, foreign keys. */
int ob_configure(struct outbox *ob);

/* Brings the schema to the current version in one transaction. */
int ob_migrate(struct outbox *ob);

/* --- small helpers, inline so they stay private to the module --- */

/* Makes st ready for its next use. sqlite3_reset only repeats the error of
 * the last step, which the caller has already handled. */
static inline void ob_reset(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

static inline int ob_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* A NULL pointer with length 0 is bound as an empty blob, not NULL. */
static inline int ob_bind_blob(sqlite3_stmt *st, int i, const char *p, size_t len)
{
	return sqlite3_bind_blob64(st, i, p ? p : "", (sqlite3_uint64)len, SQLITE_STATIC);
}

/* 0 or less means "no HTTP status" (a network error) and is stored as NULL. */
static inline int ob_bind_status(sqlite3_stmt *st, int i, int status)
{
	return status > 0 ? sqlite3_bind_int(st, i, status) : sqlite3_bind_null(st, i);
}

/* Wall-clock seconds, as stored in created_at / next_attempt_at / died_at. */
static inline double ob_now(void)
{
	return clock_wall();
}

#endif
