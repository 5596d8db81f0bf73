/*
 * outbox_sqlite_dlq.c — SQLite backend: the dead letters' side of the outbox (see outbox.h), for
 * `egoi-router dlq list|replay|purge`: walking them, re-queuing a failed
 * forward, marking one replayed, deleting them.
 *
 * Design:
 * - These run in a short-lived CLI process, usually while the daemon runs on
 *   the same file: WAL lets the reads go on beside the daemon's writers, and
 *   every write here is one BEGIN IMMEDIATE transaction (ob_tx_enter), so
 *   the busy handler waits for the daemon's lock instead of failing.
 * - The selection (kind, ids, replayed or not, age, limit) varies per call,
 *   so statements are built and prepared per call (sqlite3_prepare_v2), not
 *   kept with the connection's persistent ones; every value is bound.
 * - A forward is re-queued by copying its dead letter row back into
 *   deliveries and setting replayed_at in the same transaction: it is never
 *   both pending and open as a dead letter, and a second replay finds it
 *   already replayed. The delivery id is kept, so a receiver that saw an
 *   earlier attempt can drop the repeat.
 *
 * Threads: like every outbox call, only on the thread that owns the
 * connection.
 */
#include "outbox_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

/*
 * Prepares head + the WHERE clause for f (+ tail) and binds its values.
 * Returns the statement, or NULL with ob->err set.
 */
static sqlite3_stmt *outbox_sqlite_dlq_prepare(struct outbox *ob, const char *head,
				    const struct outbox_dlq_filter *f, const char *tail)
{
	sqlite3_stmt *st = NULL, *ret = NULL;
	char *sql = NULL;
	size_t cap, len;
	int n = 0, bad = 0;

	if (f->ids && f->nids >= (size_t)sqlite3_limit(ob->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1) - 4) {
		ob_failf(ob, "dead letters: too many ids (%zu)", f->nids);
		goto out;
	}
	cap = strlen(head) + strlen(tail) + 256 + (f->ids ? f->nids * 2 : 0);
	sql = malloc(cap);
	if (!sql) {
		ob_failf(ob, "dead letters: out of memory");
		goto out;
	}
	len = (size_t)snprintf(sql, cap, "%s WHERE 1", head);
	if (f->kind)
		len += (size_t)snprintf(sql + len, cap - len, " AND kind = ?");
	if (f->ids) {
		/* An empty id list selects nothing: "id IN ()" is not SQL. */
		len += (size_t)snprintf(sql + len, cap - len, f->nids ? " AND id IN (" : " AND 0");
		for (size_t i = 0; i < f->nids; i++)
			len += (size_t)snprintf(sql + len, cap - len, i ? ",?" : "?");
		if (f->nids)
			len += (size_t)snprintf(sql + len, cap - len, ")");
	}
	if (f->state == OUTBOX_DLQ_OPEN)
		len += (size_t)snprintf(sql + len, cap - len, " AND replayed_at IS NULL");
	else if (f->state == OUTBOX_DLQ_REPLAYED)
		len += (size_t)snprintf(sql + len, cap - len, " AND replayed_at IS NOT NULL");
	if (f->died_before > 0)
		len += (size_t)snprintf(sql + len, cap - len, " AND died_at < ?");
	snprintf(sql + len, cap - len, "%s", tail);

	if (sqlite3_prepare_v2(ob->db, sql, -1, &st, NULL) != SQLITE_OK) {
		ob_fail(ob, "dead letters: prepare");
		goto out;
	}
	if (f->kind)
		bad |= sqlite3_bind_text(st, ++n, f->kind, -1, SQLITE_STATIC);
	for (size_t i = 0; f->ids && i < f->nids; i++)
		bad |= sqlite3_bind_int64(st, ++n, f->ids[i]);
	if (f->died_before > 0)
		bad |= sqlite3_bind_double(st, ++n, f->died_before);
	if (bad) {
		ob_fail(ob, "dead letters: bind");
		goto out;
	}
	ret = st;
	st = NULL;
out:
	sqlite3_finalize(st);
	free(sql);
	return ret;
}

static const char *outbox_sqlite_dlq_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);   /* NULL for a NULL column */
}

static int outbox_sqlite_dlq_is_number(int type)
{
	return type == SQLITE_INTEGER || type == SQLITE_FLOAT;
}

/*
 * Fills e from the current row. Returns 0, 1 when the row is malformed
 * (e->malformed says how; e->id is set, other fields may be absent), or -1
 * when SQLite ran out of memory. A text getter's NULL is an allocation
 * failure only when the connection says SQLITE_NOMEM: otherwise the value
 * itself is NULL, which this schema's NOT NULL keeps out of rows it wrote
 * but not out of a table an operator or another tool rebuilt.
 */
static int outbox_sqlite_dlq_read(sqlite3_stmt *st, int with_payload, struct outbox_dlq_entry *e)
{
	sqlite3 *db = sqlite3_db_handle(st);
	/* types first: a column_text or column_double call may convert them */
	int kind_t = sqlite3_column_type(st, D_KIND), index_t = sqlite3_column_type(st, D_INDEX);
	int created_t = sqlite3_column_type(st, D_CREATED), died_t = sqlite3_column_type(st, D_DIED);
	int replayed_t = sqlite3_column_type(st, D_REPLAYED);

	memset(e, 0, sizeof *e);
	e->id = sqlite3_column_int64(st, D_ID);
	e->kind = outbox_sqlite_dlq_text(st, D_KIND);
	e->reason = outbox_sqlite_dlq_text(st, D_REASON);
	if ((!e->kind || !e->reason) && sqlite3_errcode(db) == SQLITE_NOMEM)
		return -1;
	e->request_id = outbox_sqlite_dlq_text(st, D_REQID);
	e->event_index = (long)sqlite3_column_int64(st, D_INDEX);
	e->created_at = sqlite3_column_double(st, D_CREATED);
	e->died_at = sqlite3_column_double(st, D_DIED);
	e->replayed_at = sqlite3_column_double(st, D_REPLAYED);
	e->target = outbox_sqlite_dlq_text(st, D_TARGET);
	e->delivery_id = outbox_sqlite_dlq_text(st, D_DID);
	e->name = outbox_sqlite_dlq_text(st, D_NAME);
	e->url = outbox_sqlite_dlq_text(st, D_URL);
	e->method = outbox_sqlite_dlq_text(st, D_METHOD);
	e->content_type = outbox_sqlite_dlq_text(st, D_CTYPE);
	e->headers = outbox_sqlite_dlq_text(st, D_HEADERS);
	e->attempts = sqlite3_column_type(st, D_ATTEMPTS) == SQLITE_NULL
			      ? -1 : (long)sqlite3_column_int64(st, D_ATTEMPTS);
	e->last_status = sqlite3_column_int(st, D_STATUS);
	e->payload_len = (size_t)sqlite3_column_int64(st, D_PLEN);
	if (with_payload && sqlite3_column_type(st, D_PAYLOAD) != SQLITE_NULL) {
		e->payload = sqlite3_column_blob(st, D_PAYLOAD);
		e->payload_len = (size_t)sqlite3_column_bytes(st, D_PAYLOAD);
		if (!e->payload && e->payload_len > 0)
			return -1;
		if (!e->payload)
			e->payload = "";
	}
	e->malformed = ob_dlq_malformed(e, kind_t == SQLITE_TEXT);
	if (e->malformed)
		return 1;
	if (!outbox_sqlite_dlq_is_number(created_t) || !outbox_sqlite_dlq_is_number(died_t) ||
	    (replayed_t != SQLITE_NULL && !outbox_sqlite_dlq_is_number(replayed_t)))
		e->malformed = "its created_at, died_at or replayed_at is not a number";
	else if (index_t != SQLITE_NULL && !outbox_sqlite_dlq_is_number(index_t))
		e->malformed = "its event_index is not a number";
	else
		return 0;
	return 1;
}

int ob_sqlite_dlq_list(struct outbox *ob, const struct outbox_dlq_filter *f,
		    int (*fn)(const struct outbox_dlq_entry *e, void *arg), void *arg)
{
	struct outbox_dlq_entry e;
	sqlite3_stmt *st;
	char tail[64];
	int rc, ret = -1;

	OB_OWNED(ob);
	if (f->limit > 0)
		snprintf(tail, sizeof tail, " ORDER BY id LIMIT %ld", f->limit);
	else
		snprintf(tail, sizeof tail, " ORDER BY id");
	st = outbox_sqlite_dlq_prepare(ob,
				       f->with_payload ? "SELECT " OB_DLQ_COLUMNS ", payload FROM dead_letters"
						       : "SELECT " OB_DLQ_COLUMNS " FROM dead_letters",
				       f, tail);
	if (!st)
		return -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (outbox_sqlite_dlq_read(st, f->with_payload, &e) < 0) {
			ob_failf(ob, "dead letters: cannot read row %lld (out of memory?)",
				 (long long)sqlite3_column_int64(st, D_ID));
			goto out;
		}
		rc = fn(&e, arg);
		if (rc != 0) {
			ret = rc;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		ob_fail(ob, "dead letters: list");
		goto out;
	}
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

/* Runs a one-shot write statement with id (?1) and now (?2) bound; sets *changes. */
static int outbox_sqlite_dlq_exec_id(struct outbox *ob, const char *sql, int64_t id, double now,
			  const char *what, int *changes)
{
	sqlite3_stmt *st = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(ob->db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 1, id) != SQLITE_OK ||
	    sqlite3_bind_double(st, 2, now) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE) {
		ob_fail(ob, what);
		goto out;
	}
	*changes = sqlite3_changes(ob->db);
	ret = 0;
out:
	sqlite3_finalize(st);
	return ret;
}

enum outbox_dlq_result ob_sqlite_dlq_requeue_forward(struct outbox *ob, int64_t id)
{
	static const char copy[] =
		"INSERT INTO deliveries(delivery_id, name, url, method, content_type, headers,"
		" body, request_id, created_at, next_attempt_at, attempts, dest)"
		" SELECT delivery_id, name, url, method, content_type, headers,"
		" coalesce(payload, X''), request_id, ?2, ?2, 0, router_dest(url) FROM dead_letters"
		" WHERE id = ?1 AND kind = 'forward' AND replayed_at IS NULL";
	static const char mark[] =
		"UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1 AND replayed_at IS NULL";
	double now = ob_now();
	enum outbox_dlq_result ret = OUTBOX_DLQ_FAILED;
	int own = 0, ok = 0, changes = 0;

	OB_OWNED(ob);
	if (ob_tx_enter(ob, &own) != 0)
		return OUTBOX_DLQ_FAILED;
	if (outbox_sqlite_dlq_exec_id(ob, copy, id, now, "requeue", &changes) != 0)
		goto out;
	if (changes == 0) {
		ret = OUTBOX_DLQ_NOT_OPEN;
		goto out;
	}
	if (outbox_sqlite_dlq_exec_id(ob, mark, id, now, "requeue: mark replayed", &changes) != 0)
		goto out;
	if (changes != 1) {
		ob_failf(ob, "requeue: dead letter %lld changed under us", (long long)id);
		goto out;
	}
	ok = 1;
	ret = OUTBOX_DLQ_DONE;
out:
	/* OUTBOX_DLQ_NOT_OPEN inserted nothing: rolling back (or leaving the
	 * caller's transaction as it was) is the same as committing. */
	if (ob_tx_leave(ob, own, ok) != 0 && ret == OUTBOX_DLQ_DONE)
		ret = OUTBOX_DLQ_FAILED;
	return ret;
}

enum outbox_dlq_result ob_sqlite_dlq_mark_replayed(struct outbox *ob, int64_t id)
{
	static const char mark[] =
		"UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1 AND replayed_at IS NULL";
	int own = 0, ok = 0, changes = 0;

	OB_OWNED(ob);
	if (ob_tx_enter(ob, &own) != 0)
		return OUTBOX_DLQ_FAILED;
	ok = outbox_sqlite_dlq_exec_id(ob, mark, id, ob_now(), "mark replayed", &changes) == 0;
	if (ob_tx_leave(ob, own, ok) != 0)
		return OUTBOX_DLQ_FAILED;
	return changes == 1 ? OUTBOX_DLQ_DONE : OUTBOX_DLQ_NOT_OPEN;
}

long ob_sqlite_dlq_purge(struct outbox *ob, const struct outbox_dlq_filter *f)
{
	sqlite3_stmt *st = NULL;
	int own = 0, ok = 0;
	long n = 0;

	OB_OWNED(ob);
	if (ob_tx_enter(ob, &own) != 0)
		return -1;
	st = outbox_sqlite_dlq_prepare(ob, "DELETE FROM dead_letters", f, "");
	if (!st)
		goto out;
	if (sqlite3_step(st) != SQLITE_DONE) {
		ob_fail(ob, "purge");
		goto out;
	}
	n = sqlite3_changes(ob->db);
	ok = 1;
out:
	sqlite3_finalize(st);
	if (ob_tx_leave(ob, own, ok) != 0)
		return -1;
	return n;
}
