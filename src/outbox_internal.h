/*
 * outbox_internal.h — shared by the parts of the outbox module, not a public
 * interface: outbox_sql.c records errors and steps statements; outbox.c opens and closes a connection, prepares its statements
 * and runs transactions and the batch writes; outbox_schema.c sets up the
 * database file (WAL, busy handler, schema migrations);
 * outbox_deliver.c is the delivery thread's side (claim, complete, retry,
 * bury, counts); outbox_dlq.c serves `egoi-router dlq` (list, re-queue,
 * mark replayed, purge dead letters).
 *
 * The ob_ prefix marks helpers shared between those files only; callers
 * outside the module use outbox.h.
 *
 * Threads: a struct outbox is one connection (opened SQLITE_OPEN_NOMUTEX)
 * and must only be used by the thread that owns it.
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

/* The prepared statements of a connection; their SQL is ob_sql in outbox.c. */
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

struct outbox {
	pthread_t owner;             /* the only thread that may use it (outbox_adopt) */
	sqlite3 *db;
	sqlite3_stmt *st[OB_NSTMT];
	char err[256];
};

/* --- outbox_sql.c --- */

/*
 * Every entry point that touches the connection starts with this: a use from
 * another thread than the owner is a bug (the connection is NOMUTEX), never
 * something input can cause. outbox_close and outbox_error are exempt (a
 * connection may be closed by whoever joined its thread).
 */
#define OB_OWNED(ob) assert(pthread_equal((ob)->owner, pthread_self()))

/* Formats an error into ob->err; returns -1. */
__attribute__((format(printf, 2, 3)))
int ob_failf(struct outbox *ob, const char *fmt, ...);

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

/* --- outbox.c --- */

/*
 * Internal transactions (claim, bury) join a transaction the caller already
 * opened instead of failing; *own says whether ob_tx_enter opened it, and
 * ob_tx_leave commits (ok) or rolls back only a transaction it owns.
 */
int ob_tx_enter(struct outbox *ob, int *own);
int ob_tx_leave(struct outbox *ob, int own, int ok);

/* --- outbox_schema.c (each 0, or -1 with the reason in err / ob->err) --- */

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
