/*
 * outbox_sqlite.c — the SQLite backend of the outbox (see outbox.h; outbox.c
 * dispatches to it): opening and closing a connection, transactions and
 * savepoints, and the writes of a batch.
 *
 * The backend is split by aspect, sharing outbox_internal.h:
 *   outbox_sqlite.c          connection, prepared statements, transactions, writes
 *   outbox_sqlite_sql.c      errors, one statement stepped, one script run
 *   outbox_sqlite_schema.c   WAL and busy handler, schema migrations
 *   outbox_sqlite_deliver.c  claim, complete, retry, bury, counts
 *   outbox_sqlite_dlq.c      dead letters for `egoi-router dlq`
 *
 * Design:
 * - One SQLite file, data_dir/outbox.db, in WAL mode with synchronous=FULL
 *   (outbox_sqlite_schema.c): a batch is answered 200 only after its transaction
 *   committed, and FULL makes that commit survive a power cut, not only a
 *   crash of the process.
 * - Every write transaction starts with BEGIN IMMEDIATE, so the write lock is
 *   taken up front where the busy timeout applies; a deferred transaction that
 *   reads first could instead fail at its first write with SQLITE_BUSY.
 * - Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT),
 *   reset and unbound after every use. Strings and blobs are bound
 *   SQLITE_STATIC: the caller's memory outlives the step, and the bindings
 *   are cleared before we return.
 *
 * Threads: a struct outbox is one connection (opened SQLITE_OPEN_NOMUTEX)
 * and must only be used by the thread that owns it.
 */
#include "outbox_internal.h"
#include "log.h"
#include "outbox_space.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

static const char *const ob_sql[OB_NSTMT] = {
	[OB_BEGIN] = "BEGIN IMMEDIATE",
	[OB_COMMIT] = "COMMIT",
	[OB_ROLLBACK] = "ROLLBACK",
	[OB_ADD_FORWARD] =
		"INSERT INTO deliveries(delivery_id, name, url, method, content_type, headers,"
		" body, request_id, created_at, next_attempt_at, dest, hop)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, router_dest(?3), ?10)",
	[OB_ADD_DEAD] =
		"INSERT INTO dead_letters(kind, reason, payload, request_id, event_index, target,"
		" created_at, died_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
	[OB_CLAIM_SELECT] =
		"SELECT id, delivery_id, name, url, method, content_type, headers, body,"
		" attempts, created_at, request_id, hop FROM deliveries"
		" WHERE leased = 0 AND dest = ?3 AND next_attempt_at <= ?1"
		" ORDER BY next_attempt_at, id LIMIT ?2",
	/* Same selection as OB_CLAIM_SELECT; inside one IMMEDIATE transaction
	 * nobody else can change it between the two statements. */
	[OB_CLAIM_LEASE] =
		"UPDATE deliveries SET leased = 1 WHERE id IN (SELECT id FROM deliveries"
		" WHERE leased = 0 AND dest = ?3 AND next_attempt_at <= ?1"
		" ORDER BY next_attempt_at, id LIMIT ?2)",
	[OB_RELEASE] = "UPDATE deliveries SET leased = 0 WHERE leased <> 0",
	/* A skip scan over deliveries_dest: one index seek per destination,
	 * not a read of every waiting row. */
	[OB_DEST_SCAN] =
		"WITH RECURSIVE d(dest) AS ("
		" SELECT (SELECT min(dest) FROM deliveries WHERE leased = 0)"
		" UNION ALL"
		" SELECT (SELECT min(dest) FROM deliveries WHERE leased = 0 AND dest > d.dest)"
		" FROM d WHERE d.dest IS NOT NULL)"
		" SELECT dest, (SELECT min(next_attempt_at) FROM deliveries"
		" WHERE leased = 0 AND dest = d.dest) FROM d WHERE dest IS NOT NULL",
	[OB_DEST_DUE_NOW] =
		"UPDATE deliveries SET next_attempt_at = ?2"
		" WHERE leased = 0 AND dest = ?1 AND next_attempt_at > ?2",
	[OB_DEST_COUNT] =
		"SELECT count(*) FROM deliveries WHERE leased IN (0, 1) AND dest = ?1",
	[OB_DELETE] = "DELETE FROM deliveries WHERE id = ?1",
	[OB_RETRY] =
		"UPDATE deliveries SET attempts = attempts + 1, leased = 0,"
		" next_attempt_at = ?2, last_status = ?3, last_error = ?4 WHERE id = ?1",
	[OB_BURY_COPY] =
		"INSERT INTO dead_letters(kind, reason, payload, request_id, delivery_id, name,"
		" url, method, content_type, headers, attempts, last_status, created_at, died_at)"
		" SELECT 'forward', ?2, body, request_id, delivery_id, name, url, method,"
		" content_type, headers, attempts + 1, ?3, created_at, ?4"
		" FROM deliveries WHERE id = ?1",
	[OB_COUNT_PENDING] = "SELECT count(*) FROM deliveries",
	[OB_COUNT_DEAD] = "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL",
};

static int outbox_sqlite_prepare(struct outbox *ob)
{
	for (int i = 0; i < OB_NSTMT; i++)
		if (sqlite3_prepare_v3(ob->db, ob_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &ob->st[i], NULL) != SQLITE_OK)
			return ob_fail(ob, "prepare");
	return 0;
}

int ob_sqlite_open(struct outbox *ob, const char *target, const char *data_dir, char *err,
		   size_t errlen)
{
	char *path = NULL;
	int rc, ret = -1;

	(void)target;   /* "sqlite": the file is data_dir's */
	if (!data_dir || !*data_dir) {
		snprintf(err, errlen, "outbox: no data directory");
		goto out;
	}
	if (util_mkdir_p(data_dir, 0, NULL, NULL, err, errlen) != 0)
		goto out;
	if (asprintf(&path, "%s/outbox.db", data_dir) < 0) {
		path = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = sqlite3_open_v2(path, &ob->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
			 ob->db ? sqlite3_errmsg(ob->db) : sqlite3_errstr(rc));
		goto out;
	}
	if (ob_configure(ob) != 0 || ob_migrate(ob) != 0 || outbox_sqlite_prepare(ob) != 0) {
		snprintf(err, errlen, "%s: %s", path, ob->err);
		goto out;
	}
	ret = 0;
out:
	free(path);
	return ret;
}

/* Releases what ob_sqlite_open made (of it, whatever it got to); outbox.c frees ob. */
void ob_sqlite_close(struct outbox *ob)
{
	if (!ob->db)
		return;
	if (ob->db && !sqlite3_get_autocommit(ob->db) &&
	    sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		log_msg(LOG_WARN, NULL, "outbox: rollback on close failed: %s",
			sqlite3_errmsg(ob->db));
	/* finalize returns the last step's error, already reported by its user. */
	for (int i = 0; i < OB_NSTMT; i++)
		(void)sqlite3_finalize(ob->st[i]);
	if (sqlite3_close(ob->db) != SQLITE_OK)
		log_msg(LOG_ERROR, NULL, "outbox: close failed: %s", sqlite3_errmsg(ob->db));
	ob->db = NULL;
}

/* --- transactions --- */

int ob_sqlite_begin(struct outbox *ob)
{
	OB_OWNED(ob);
	if (!sqlite3_get_autocommit(ob->db))
		return ob_failf(ob, "begin: a transaction is already open");
	return ob_run(ob, OB_BEGIN, "begin", 0);
}

/* On failure the transaction is rolled back: nothing of it is durable. */
int ob_sqlite_commit(struct outbox *ob)
{
	OB_OWNED(ob);
	if (sqlite3_get_autocommit(ob->db))
		return ob_failf(ob, "commit: no transaction is open");
	if (ob_run(ob, OB_COMMIT, "commit", 0) != 0) {
		ob_sqlite_rollback(ob);
		return -1;
	}
	return 0;
}

void ob_sqlite_rollback(struct outbox *ob)
{
	OB_OWNED(ob);
	/* SQLite may already have rolled back by itself (disk full, I/O error). */
	if (sqlite3_get_autocommit(ob->db))
		return;
	if (sqlite3_step(ob->st[OB_ROLLBACK]) != SQLITE_DONE)
		log_msg(LOG_WARN, NULL, "outbox: rollback failed: %s", sqlite3_errmsg(ob->db));
	ob_reset(ob->st[OB_ROLLBACK]);
}

/*
 * Savepoints let the group committer (outbox_writer.c) undo one batch's rows
 * inside a transaction shared by many batches. They are rare next to the
 * row inserts, so sqlite3_exec is fine here.
 */
int ob_sqlite_savepoint(struct outbox *ob)
{
	OB_OWNED(ob);
	return ob_exec(ob, "SAVEPOINT batch", "savepoint");
}

int ob_sqlite_savepoint_release(struct outbox *ob)
{
	OB_OWNED(ob);
	return ob_exec(ob, "RELEASE batch", "release savepoint");
}

int ob_sqlite_savepoint_rollback(struct outbox *ob)
{
	OB_OWNED(ob);
	if (ob_exec(ob, "ROLLBACK TO batch", "rollback to savepoint") != 0)
		return -1;
	return ob_sqlite_savepoint_release(ob);
}

int ob_sqlite_relax_sync(struct outbox *ob)
{
	OB_OWNED(ob);
	return ob_exec(ob, "PRAGMA synchronous = NORMAL", "synchronous");
}

int ob_sqlite_release_space(struct outbox *ob)
{
	OB_OWNED(ob);
	/* Freed pages leave the database file at the checkpoint, which then
	 * empties the WAL: both need only the space the full state released
	 * (outbox_space.h), and give the rest back to the file system. */
	if (ob_exec(ob, "PRAGMA incremental_vacuum", "incremental vacuum") != 0 ||
	    ob_exec(ob, "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint") != 0)
		return -1;
	return 0;
}

int ob_tx_enter(struct outbox *ob, int *own)
{
	*own = sqlite3_get_autocommit(ob->db) != 0;
	return *own ? ob_run(ob, OB_BEGIN, "begin", 0) : 0;
}

int ob_tx_leave(struct outbox *ob, int own, int ok)
{
	if (!own)
		return ok ? 0 : -1;
	if (ok)
		return ob_sqlite_commit(ob);
	ob_sqlite_rollback(ob);
	return -1;
}

/* --- writing a batch --- */

int ob_sqlite_add_forward(struct outbox *ob, const struct outbox_forward *f, char *id_out)
{
	sqlite3_stmt *st = ob->st[OB_ADD_FORWARD];
	char id[37];

	OB_OWNED(ob);
	if (!f->url || !f->method)
		return ob_failf(ob, "add forward: url and method are required");
	ob_uuid(id);
	if (ob_run(ob, OB_ADD_FORWARD, "add forward",
		   sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) ||
		   ob_bind_text(st, 2, f->name) || ob_bind_text(st, 3, f->url) ||
		   ob_bind_text(st, 4, f->method) || ob_bind_text(st, 5, f->content_type) ||
		   ob_bind_text(st, 6, f->headers) ||
		   ob_bind_blob(st, 7, f->body, f->body_len) ||
		   ob_bind_text(st, 8, f->request_id) ||
		   sqlite3_bind_double(st, 9, ob_now()) ||
		   sqlite3_bind_int64(st, 10, f->hop)) != 0)
		return -1;
	if (id_out)
		memcpy(id_out, id, sizeof id);
	return 0;
}

int ob_sqlite_add_dead(struct outbox *ob, const struct outbox_dead *d)
{
	sqlite3_stmt *st = ob->st[OB_ADD_DEAD];

	OB_OWNED(ob);
	if ((unsigned)d->kind >= OUTBOX_DEAD_KINDS)
		return ob_failf(ob, "add dead letter: unknown kind %d", (int)d->kind);
	return ob_run(ob, OB_ADD_DEAD, "add dead letter",
		      sqlite3_bind_text(st, 1, outbox_dead_kind_names[d->kind], -1, SQLITE_STATIC) ||
		      sqlite3_bind_text(st, 2, d->reason ? d->reason : "", -1, SQLITE_STATIC) ||
		      (d->payload ? ob_bind_blob(st, 3, d->payload, d->payload_len)
				  : sqlite3_bind_null(st, 3)) ||
		      ob_bind_text(st, 4, d->request_id) ||
		      (d->event_index > 0 ? sqlite3_bind_int64(st, 5, d->event_index)
					  : sqlite3_bind_null(st, 5)) ||
		      ob_bind_text(st, 6, d->target) ||
		      sqlite3_bind_double(st, 7, ob_now()));
}

/* One router per file: the writer wakes delivery in-process (deliver_notify). */
static int outbox_sqlite_wake_fd(struct outbox *ob)
{
	(void)ob;
	return -1;
}

static int outbox_sqlite_wake_drain(struct outbox *ob)
{
	(void)ob;
	return 0;
}

static int outbox_sqlite_check(const char *target, char *msg, size_t len)
{
	(void)target;
	snprintf(msg, len, "sqlite (data_dir/outbox.db)");
	return 0;
}

const struct ob_backend ob_sqlite_backend = {
	.name = "sqlite",
	.open = ob_sqlite_open,
	.close = ob_sqlite_close,
	.check = outbox_sqlite_check,
	.begin = ob_sqlite_begin,
	.add_forward = ob_sqlite_add_forward,
	.add_dead = ob_sqlite_add_dead,
	.commit = ob_sqlite_commit,
	.rollback = ob_sqlite_rollback,
	.savepoint = ob_sqlite_savepoint,
	.savepoint_release = ob_sqlite_savepoint_release,
	.savepoint_rollback = ob_sqlite_savepoint_rollback,
	.relax_sync = ob_sqlite_relax_sync,
	.release_leases = ob_sqlite_release_leases,
	.wake_fd = outbox_sqlite_wake_fd,
	.wake_drain = outbox_sqlite_wake_drain,
	.claim_due = ob_sqlite_claim_due,
	.scan_destinations = ob_sqlite_scan_destinations,
	.dest_due_now = ob_sqlite_dest_due_now,
	.complete = ob_sqlite_complete,
	.retry = ob_sqlite_retry,
	.bury = ob_sqlite_bury,
	.release_space = ob_sqlite_release_space,
	.count_pending = ob_sqlite_count_pending,
	.count_dead = ob_sqlite_count_dead,
	.count_dest = ob_sqlite_count_dest,
	.dlq_list = ob_sqlite_dlq_list,
	.dlq_requeue_forward = ob_sqlite_dlq_requeue_forward,
	.dlq_mark_replayed = ob_sqlite_dlq_mark_replayed,
	.dlq_purge = ob_sqlite_dlq_purge,
};
