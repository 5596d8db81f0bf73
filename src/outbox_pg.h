/*
 * outbox_pg.h — the PostgreSQL backend of the outbox (ob_pg_backend, see
 * outbox_internal.h), shared by its files only:
 *   outbox_pg.c          connection (and re-connection), statements run,
 *                        transactions and savepoints, a batch's writes
 *   outbox_pg_schema.c   the versioned schema, created or migrated on open
 *   outbox_pg_deliver.c  claims under a lease, outcomes, counts
 *   outbox_pg_dlq.c      dead letters for `egoi-router dlq`
 *
 * What changes from SQLite, for several routers on one database:
 * - A lease is an owner (this process's id, ob_pg_owner) and an expiry
 *   (lease_until, unix seconds, outbox_use's lease_ms after the claim).
 *   A claim takes due rows that are unleased or whose lease expired, with
 *   SELECT ... FOR UPDATE SKIP LOCKED, so two nodes claiming at once get
 *   disjoint rows and neither waits for the other. A node killed with
 *   entries in flight leaves leases that simply expire; another node then
 *   sends them again (the same delivery id). outbox_release_leases frees
 *   only this process's leases, never another live node's.
 * - Wake-ups: a commit that added forwards sends NOTIFY on OB_PG_CHANNEL
 *   (delivered only if it commits); the delivery thread LISTENs and polls
 *   the connection's socket with its transfers (outbox_wake_fd), so another
 *   node's forward is claimed at once, not at the next tick.
 * - Times are the nodes' wall clocks (as on SQLite): their clocks must
 *   agree (NTP) to well under a lease.
 * - Connection loss makes the call fail with a message naming the server;
 *   the next call outside a transaction re-connects (PQreset), so intake
 *   answers 503 while the server is away and resumes by itself.
 * - A commit is answered only once PostgreSQL returned from COMMIT, which
 *   with the server's synchronous_commit (on by default) means the WAL
 *   record is on its disk.
 *
 * Threads: a struct outbox (one PGconn) belongs to one thread (outbox.h).
 */
#ifndef EGOI_OUTBOX_PG_H
#define EGOI_OUTBOX_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "outbox_internal.h"

struct ob_pg {
	PGconn *conn;
	char where[300];     /* "postgresql at HOST:PORT/DB", for messages (no password) */
	int relaxed;         /* outbox_relax_sync: re-applied after a re-connection */
	int in_tx;           /* outbox_begin succeeded, no commit or rollback yet */
	int claimed;         /* this connection claimed (the delivery thread's) */
	int listening;       /* outbox_wake_fd: LISTEN, again after a re-connection */
	int notify;          /* the open transaction added forwards: NOTIFY at commit */
	double retry_at;     /* clock_mono: no re-connection attempt before this */
};

/* The channel every commit that added forwards notifies (outbox_wake_fd). */
#define OB_PG_CHANNEL "egoi_router_outbox"

/* This process's lease owner id ("host/pid/random"): the same for all its
 * connections, so outbox_release_leases at start frees nothing of others. */
const char *ob_pg_owner(void);

/*
 * Runs sql with n text parameters (vals[i] NULL = SQL NULL; a parameter
 * whose lens[i] is >= 0 when lens is not NULL is sent as binary bytes of
 * that length, for bytea). Returns the result (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK; the caller PQclear()s it), or NULL with ob->err set to
 * "what: reason". Re-connects first when the connection was lost and no
 * transaction is open.
 */
PGresult *ob_pg_exec(struct outbox *ob, const char *what, const char *sql, int n,
		     const char *const *vals, const int *lens);

/* ob_pg_exec of a statement without a result set; 0 or -1. */
int ob_pg_run(struct outbox *ob, const char *what, const char *sql, int n,
	      const char *const *vals, const int *lens);

/* As ob_pg_run, and the number of rows it changed (PQcmdTuples), or -1. */
long ob_pg_changed(struct outbox *ob, const char *what, const char *sql, int n,
		   const char *const *vals, const int *lens);

/* A one-number query (count(*)); the number or -1. */
long ob_pg_count(struct outbox *ob, const char *what, const char *sql, int n,
		 const char *const *vals);

/* Text forms of numbers for parameters (the buffer is the caller's). */
const char *ob_pg_num(char buf[32], double v);
const char *ob_pg_int(char buf[32], long long v);

/* A result value: NULL when SQL NULL. */
static inline const char *ob_pg_val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* The destination key of url (destination.h), "" when it has none, as
 * SQLite's router_dest() stores it; malloc'ed, NULL when out of memory. */
char *ob_pg_dest(const char *url);

/* Creates or migrates the schema under an advisory lock (outbox_pg_schema.c). */
int ob_pg_migrate(struct outbox *ob);

/* Reads the schema version without changing anything: 0 with msg "...
 * schema version N" (or "no schema yet"), -1 with msg why not. */
int ob_pg_schema_check(struct outbox *ob, char *msg, size_t len);

/* The operations of outbox_pg_deliver.c and outbox_pg_dlq.c (ob_pg_backend). */
int ob_pg_release_leases(struct outbox *ob);
int ob_pg_claim_due(struct outbox *ob, const char *dest, double now, size_t max,
		    struct outbox_delivery **out);
int ob_pg_scan_destinations(struct outbox *ob,
			    int (*fn)(const char *dest, double next_at, void *arg), void *arg);
int ob_pg_dest_due_now(struct outbox *ob, const char *dest, double now);
int ob_pg_complete(struct outbox *ob, int64_t id);
int ob_pg_retry(struct outbox *ob, int64_t id, double next_at, int status, const char *error);
int ob_pg_bury(struct outbox *ob, int64_t id, int status, const char *error);
long ob_pg_count_pending(struct outbox *ob);
long ob_pg_count_dead(struct outbox *ob);
long ob_pg_count_dest(struct outbox *ob, const char *dest);
int ob_pg_dlq_list(struct outbox *ob, const struct outbox_dlq_filter *f,
		   int (*fn)(const struct outbox_dlq_entry *e, void *arg), void *arg);
enum outbox_dlq_result ob_pg_dlq_requeue_forward(struct outbox *ob, int64_t id);
enum outbox_dlq_result ob_pg_dlq_mark_replayed(struct outbox *ob, int64_t id);
long ob_pg_dlq_purge(struct outbox *ob, const struct outbox_dlq_filter *f);

#endif
