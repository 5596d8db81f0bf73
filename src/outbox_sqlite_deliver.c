/*
 * outbox_sqlite_deliver.c — SQLite backend: the delivery thread's side of the outbox (see outbox.h):
 * claiming due entries under a lease, recording each outcome (complete,
 * retry later, bury as a dead letter) and the counts for metrics.
 *
 * Design: a claim selects due, unleased rows of one destination and leases
 * exactly those in one IMMEDIATE transaction, so an entry is never sent
 * twice at once, and one destination's backlog never stands in front of
 * another's (outbox_scan_destinations finds who has work); leases are
 * dropped wholesale when the delivery side starts (outbox_release_leases).
 * Burying copies the row into dead_letters and deletes it in one
 * transaction, so a forward is never lost nor kept twice. Claim and bury
 * join a transaction the caller already opened (the delivery thread records
 * a whole pass's outcomes in one).
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

#include "util.h"

/* Columns selected by OB_CLAIM_SELECT (ob_sql in outbox_sqlite.c), in order. */
enum { C_ID, C_DID, C_NAME, C_URL, C_METHOD, C_CTYPE, C_HEADERS, C_BODY, C_ATTEMPTS,
       C_CREATED, C_REQID, C_HOP };

int ob_sqlite_release_leases(struct outbox *ob)
{
	OB_OWNED(ob);
	return ob_run(ob, OB_RELEASE, "release leases", 0);
}

void outbox_deliveries_free(struct outbox_delivery *d, size_t n)
{
	if (!d)
		return;
	for (size_t i = 0; i < n; i++) {
		free(d[i].name);
		free(d[i].url);
		free(d[i].method);
		free(d[i].content_type);
		free(d[i].headers);
		free(d[i].body);
		free(d[i].request_id);
	}
	free(d);
}

/* Copies a text column; a NULL column gives NULL. */
static int outbox_sqlite_col_text(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *t;

	*out = NULL;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return 0;
	t = sqlite3_column_text(st, col);
	if (!t)
		return -1;
	*out = strdup((const char *)t);
	return *out ? 0 : -1;
}

/* Copies a blob column, NUL-terminated for convenience (not counted). */
static int outbox_sqlite_col_blob(sqlite3_stmt *st, int col, char **out, size_t *len)
{
	const void *p = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	*out = NULL;
	*len = 0;
	if (n < 0 || (!p && n > 0))
		return -1;
	*out = malloc((size_t)n + 1);
	if (!*out)
		return -1;
	if (n > 0)
		memcpy(*out, p, (size_t)n);
	(*out)[n] = '\0';
	*len = (size_t)n;
	return 0;
}

static int outbox_sqlite_read_delivery(sqlite3_stmt *st, struct outbox_delivery *d)
{
	const unsigned char *did = sqlite3_column_text(st, C_DID);

	memset(d, 0, sizeof *d);
	d->id = sqlite3_column_int64(st, C_ID);
	if (!did || strlen((const char *)did) >= sizeof d->delivery_id)
		return -1;
	strcpy(d->delivery_id, (const char *)did);
	d->attempts = (long)sqlite3_column_int64(st, C_ATTEMPTS);
	d->created_at = sqlite3_column_double(st, C_CREATED);
	d->hop = (long)sqlite3_column_int64(st, C_HOP);
	if (outbox_sqlite_col_text(st, C_NAME, &d->name) != 0 ||
	    outbox_sqlite_col_text(st, C_URL, &d->url) != 0 ||
	    outbox_sqlite_col_text(st, C_METHOD, &d->method) != 0 ||
	    outbox_sqlite_col_text(st, C_CTYPE, &d->content_type) != 0 ||
	    outbox_sqlite_col_text(st, C_HEADERS, &d->headers) != 0 ||
	    outbox_sqlite_col_text(st, C_REQID, &d->request_id) != 0 ||
	    outbox_sqlite_col_blob(st, C_BODY, &d->body, &d->body_len) != 0)
		return -1;
	return 0;
}

int ob_sqlite_claim_due(struct outbox *ob, const char *dest, double now, size_t max,
		     struct outbox_delivery **out)
{
	sqlite3_stmt *sel = ob->st[OB_CLAIM_SELECT], *lease = ob->st[OB_CLAIM_LEASE];
	struct outbox_delivery *list = NULL;
	size_t n = 0, cap = 0;
	int own = 0, ok = 0, rc;
	sqlite3_int64 limit = max > INT32_MAX ? INT32_MAX : (sqlite3_int64)max;

	OB_OWNED(ob);
	*out = NULL;
	if (max == 0)
		return 0;
	if (ob_tx_enter(ob, &own) != 0)
		return -1;
	if (sqlite3_bind_double(sel, 1, now) != SQLITE_OK ||
	    sqlite3_bind_int64(sel, 2, limit) != SQLITE_OK ||
	    sqlite3_bind_text(sel, 3, dest, -1, SQLITE_STATIC) != SQLITE_OK) {
		ob_fail(ob, "claim: bind");
		goto out;
	}
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		struct outbox_delivery *nl = util_array_grow(list, &cap, n, sizeof *nl, 16);

		if (!nl) {
			ob_failf(ob, "claim: out of memory");
			goto out;
		}
		list = nl;
		/* Counted before reading so a half-read entry is freed too. */
		if (outbox_sqlite_read_delivery(sel, &list[n++]) != 0) {
			ob_failf(ob, "claim: cannot read entry (out of memory?)");
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		ob_fail(ob, "claim");
		goto out;
	}
	ob_reset(sel);
	if (n > 0) {
		if (ob_run(ob, OB_CLAIM_LEASE, "claim: lease",
			   sqlite3_bind_double(lease, 1, now) ||
			   sqlite3_bind_int64(lease, 2, limit) ||
			   sqlite3_bind_text(lease, 3, dest, -1, SQLITE_STATIC)) != 0)
			goto out;
		if ((size_t)sqlite3_changes(ob->db) != n) {
			ob_failf(ob, "claim: leased %d entries, expected %zu",
				 sqlite3_changes(ob->db), n);
			goto out;
		}
	}
	ok = 1;
out:
	ob_reset(sel);
	if (ob_tx_leave(ob, own, ok) != 0) {
		outbox_deliveries_free(list, n);
		return -1;
	}
	*out = list;
	return (int)n;
}

int ob_sqlite_scan_destinations(struct outbox *ob,
			     int (*fn)(const char *dest, double next_at, void *arg), void *arg)
{
	sqlite3_stmt *st = ob->st[OB_DEST_SCAN];
	int rc, ret = 0;

	OB_OWNED(ob);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *dest = sqlite3_column_text(st, 0);

		if (!dest) {
			ret = ob_failf(ob, "destination scan: out of memory");
			goto out;
		}
		ret = fn((const char *)dest, sqlite3_column_double(st, 1), arg);
		if (ret != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		ret = ob_fail(ob, "destination scan");
out:
	ob_reset(st);
	return ret;
}

int ob_sqlite_dest_due_now(struct outbox *ob, const char *dest, double now)
{
	sqlite3_stmt *st = ob->st[OB_DEST_DUE_NOW];

	OB_OWNED(ob);
	if (ob_run(ob, OB_DEST_DUE_NOW, "reschedule destination",
		   sqlite3_bind_text(st, 1, dest, -1, SQLITE_STATIC) ||
		   sqlite3_bind_double(st, 2, now)) != 0)
		return -1;
	return sqlite3_changes(ob->db);
}

/* Runs a statement that must change exactly one delivery. */
static int outbox_sqlite_run_one(struct outbox *ob, enum ob_stmt s, const char *what, int64_t id,
		      int bind_failed)
{
	if (ob_run(ob, s, what, bind_failed) != 0)
		return -1;
	if (sqlite3_changes(ob->db) != 1)
		return ob_failf(ob, "%s: no delivery with id %lld", what, (long long)id);
	return 0;
}

int ob_sqlite_complete(struct outbox *ob, int64_t id)
{
	OB_OWNED(ob);
	return outbox_sqlite_run_one(ob, OB_DELETE, "complete", id,
			  sqlite3_bind_int64(ob->st[OB_DELETE], 1, id));
}

int ob_sqlite_retry(struct outbox *ob, int64_t id, double next_at, int status, const char *error)
{
	sqlite3_stmt *st = ob->st[OB_RETRY];

	OB_OWNED(ob);
	return outbox_sqlite_run_one(ob, OB_RETRY, "retry", id,
			  sqlite3_bind_int64(st, 1, id) || sqlite3_bind_double(st, 2, next_at) ||
			  ob_bind_status(st, 3, status) || ob_bind_text(st, 4, error));
}

int ob_sqlite_bury(struct outbox *ob, int64_t id, int status, const char *error)
{
	sqlite3_stmt *copy = ob->st[OB_BURY_COPY];
	char reason[64];
	int own = 0, ok = 0;

	OB_OWNED(ob);
	error = ob_bury_reason(error, status, reason);
	if (ob_tx_enter(ob, &own) != 0)
		return -1;
	if (outbox_sqlite_run_one(ob, OB_BURY_COPY, "bury", id,
		       sqlite3_bind_int64(copy, 1, id) ||
		       sqlite3_bind_text(copy, 2, error, -1, SQLITE_STATIC) ||
		       ob_bind_status(copy, 3, status) ||
		       sqlite3_bind_double(copy, 4, ob_now())) != 0 ||
	    outbox_sqlite_run_one(ob, OB_DELETE, "bury", id,
		       sqlite3_bind_int64(ob->st[OB_DELETE], 1, id)) != 0)
		goto out;
	ok = 1;
out:
	return ob_tx_leave(ob, own, ok);
}

static long outbox_sqlite_count(struct outbox *ob, enum ob_stmt s, const char *what)
{
	sqlite3_stmt *st = ob->st[s];
	long ret;

	if (sqlite3_step(st) == SQLITE_ROW)
		ret = (long)sqlite3_column_int64(st, 0);
	else
		ret = ob_fail(ob, what);
	ob_reset(st);
	return ret;
}

long ob_sqlite_count_pending(struct outbox *ob)
{
	OB_OWNED(ob);
	return outbox_sqlite_count(ob, OB_COUNT_PENDING, "count pending");
}

long ob_sqlite_count_dead(struct outbox *ob)
{
	OB_OWNED(ob);
	return outbox_sqlite_count(ob, OB_COUNT_DEAD, "count dead letters");
}

long ob_sqlite_count_dest(struct outbox *ob, const char *dest)
{
	OB_OWNED(ob);
	if (sqlite3_bind_text(ob->st[OB_DEST_COUNT], 1, dest, -1, SQLITE_STATIC) != SQLITE_OK) {
		ob_reset(ob->st[OB_DEST_COUNT]);
		return ob_fail(ob, "count destination");
	}
	return outbox_sqlite_count(ob, OB_DEST_COUNT, "count destination");
}
