/*
 * outbox_pg_deliver.c — the PostgreSQL backend's delivery side
 * (outbox_deliver.h, outbox_pg.h): claims under a lease with an owner and
 * an expiry, outcomes, the destination scan and the counts.
 *
 * Design:
 * - A claim is one statement: the due rows of one destination that are
 *   unleased or whose lease expired, locked with FOR UPDATE SKIP LOCKED
 *   (a concurrent claim on another node skips them instead of waiting or
 *   taking them too), and leased to this process until now + lease_ms.
 *   Lease expiry is judged by this node's clock at the call, not by the
 *   caller's "now" (which may be a due time in the future).
 * - Outcomes name the row by id. A node whose lease expired while it was
 *   still sending may record after another node claimed the row again:
 *   then both sent it (at-least-once), and whichever records first wins;
 *   the other finds no row and reports it, as on SQLite.
 * - Burying is one statement (DELETE ... RETURNING feeding the INSERT into
 *   dead_letters), so a forward is never lost nor kept twice.
 *
 * Threads: the owner thread of the connection (outbox.h).
 */
#include "outbox_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "unleased, or its lease expired at $N" */
#define OB_PG_FREE(n) "(lease_until IS NULL OR lease_until <= $" n ")"

/* Columns of the claim's RETURNING, in order. */
enum { C_ID, C_DID, C_NAME, C_URL, C_METHOD, C_CTYPE, C_HEADERS, C_BODY, C_ATTEMPTS,
       C_CREATED, C_REQID, C_HOP, C_DUE };

int ob_pg_release_leases(struct outbox *ob)
{
	const char *v[] = { ob_pg_owner() };

	return ob_pg_run(ob, "release leases",
			 "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
			 " WHERE lease_owner = $1", 1, v, NULL);
}

static int outbox_pg_dup(const PGresult *r, int row, int col, char **out)
{
	const char *s = ob_pg_val(r, row, col);

	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -1;
}

static int outbox_pg_read_delivery(const PGresult *r, int row, struct outbox_delivery *d)
{
	const char *did = PQgetvalue(r, row, C_DID);
	unsigned char *raw;
	size_t n = 0;

	memset(d, 0, sizeof *d);
	d->id = strtoll(PQgetvalue(r, row, C_ID), NULL, 10);
	if (strlen(did) >= sizeof d->delivery_id)
		return -1;
	strcpy(d->delivery_id, did);
	d->attempts = strtol(PQgetvalue(r, row, C_ATTEMPTS), NULL, 10);
	d->created_at = strtod(PQgetvalue(r, row, C_CREATED), NULL);
	d->hop = strtol(PQgetvalue(r, row, C_HOP), NULL, 10);
	if (outbox_pg_dup(r, row, C_NAME, &d->name) != 0 ||
	    outbox_pg_dup(r, row, C_URL, &d->url) != 0 ||
	    outbox_pg_dup(r, row, C_METHOD, &d->method) != 0 ||
	    outbox_pg_dup(r, row, C_CTYPE, &d->content_type) != 0 ||
	    outbox_pg_dup(r, row, C_HEADERS, &d->headers) != 0 ||
	    outbox_pg_dup(r, row, C_REQID, &d->request_id) != 0)
		return -1;
	raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, C_BODY), &n);
	if (!raw)
		return -1;
	d->body = malloc(n + 1);
	if (d->body) {
		memcpy(d->body, raw, n);
		d->body[n] = '\0';
		d->body_len = n;
	}
	PQfreemem(raw);
	return d->body ? 0 : -1;
}

/* RETURNING has no order: the claim's order is due time, then id. */
struct ob_pg_claimed {
	double due;
	int row;
	int64_t id;
};

static int outbox_pg_claim_cmp(const void *a, const void *b)
{
	const struct ob_pg_claimed *x = a, *y = b;

	if (x->due != y->due)
		return x->due < y->due ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

int ob_pg_claim_due(struct outbox *ob, const char *dest, double now, size_t max,
		    struct outbox_delivery **out)
{
	static const char sql[] =
		"WITH c AS (SELECT id FROM deliveries"
		" WHERE dest = $1 AND next_attempt_at <= $2 AND " OB_PG_FREE("4")
		" ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
		" UPDATE deliveries d SET lease_owner = $5, lease_until = $6 FROM c WHERE d.id = c.id"
		" RETURNING d.id, d.delivery_id, d.name, d.url, d.method, d.content_type, d.headers,"
		" d.body, d.attempts, d.created_at, d.request_id, d.hop, d.next_attempt_at";
	char b_now[32], b_max[32], b_wall[32], b_until[32];
	double wall = ob_now();
	struct outbox_delivery *list = NULL;
	struct ob_pg_claimed *order = NULL;
	PGresult *r = NULL;
	int n = 0, ret = -1;

	*out = NULL;
	if (max == 0)
		return 0;
	ob->pg->claimed = 1;
	{
		const char *v[] = { dest, ob_pg_num(b_now, now),
				    ob_pg_int(b_max, max > 0x7fffffff ? 0x7fffffff : (long long)max),
				    ob_pg_num(b_wall, wall), ob_pg_owner(),
				    ob_pg_num(b_until, wall + (double)ob_lease_ms() / 1000.0) };

		r = ob_pg_exec(ob, "claim", sql, 6, v, NULL);
	}
	if (!r)
		goto out;
	n = PQntuples(r);
	if (n == 0) {
		ret = 0;
		goto out;
	}
	list = calloc((size_t)n, sizeof *list);
	order = calloc((size_t)n, sizeof *order);
	if (!list || !order) {
		ob_failf(ob, "claim: out of memory");
		goto out;
	}
	for (int i = 0; i < n; i++) {
		order[i].row = i;
		order[i].due = strtod(PQgetvalue(r, i, C_DUE), NULL);
		order[i].id = strtoll(PQgetvalue(r, i, C_ID), NULL, 10);
	}
	qsort(order, (size_t)n, sizeof *order, outbox_pg_claim_cmp);
	for (int i = 0; i < n; i++)
		if (outbox_pg_read_delivery(r, order[i].row, &list[i]) != 0) {
			ob_failf(ob, "claim: cannot read entry (out of memory?)");
			goto out;
		}
	ret = n;
out:
	/* A failed read leaves the rows leased: they come back at expiry. */
	if (ret < 0 && list)
		outbox_deliveries_free(list, (size_t)n);
	else
		*out = list;
	free(order);
	PQclear(r);
	return ret;
}

int ob_pg_scan_destinations(struct outbox *ob,
			    int (*fn)(const char *dest, double next_at, void *arg), void *arg)
{
	/* A skip scan over deliveries_claim: one index seek per destination. */
	static const char sql[] =
		"WITH RECURSIVE d(dest) AS ("
		" SELECT (SELECT min(dest) FROM deliveries)"
		" UNION ALL"
		" SELECT (SELECT min(dest) FROM deliveries WHERE dest > d.dest)"
		" FROM d WHERE d.dest IS NOT NULL)"
		" SELECT dest, (SELECT min(next_attempt_at) FROM deliveries e"
		" WHERE e.dest = d.dest AND " OB_PG_FREE("1") ") FROM d WHERE dest IS NOT NULL"
		" ORDER BY dest";
	char b_wall[32];
	const char *v[] = { ob_pg_num(b_wall, ob_now()) };
	PGresult *r = ob_pg_exec(ob, "destination scan", sql, 1, v, NULL);
	int ret = 0;

	if (!r)
		return -1;
	for (int i = 0; ret == 0 && i < PQntuples(r); i++) {
		const char *next = ob_pg_val(r, i, 1);

		if (next)   /* NULL: every entry of it is leased */
			ret = fn(PQgetvalue(r, i, 0), strtod(next, NULL), arg);
	}
	PQclear(r);
	return ret;
}

int ob_pg_dest_due_now(struct outbox *ob, const char *dest, double now)
{
	char b_now[32], b_wall[32];
	const char *v[] = { dest, ob_pg_num(b_now, now), ob_pg_num(b_wall, ob_now()) };

	return (int)ob_pg_changed(ob, "reschedule destination",
				  "UPDATE deliveries SET next_attempt_at = $2"
				  " WHERE dest = $1 AND next_attempt_at > $2 AND " OB_PG_FREE("3"),
				  3, v, NULL);
}

/* Runs a statement that must change exactly one delivery (id is $1). */
static int outbox_pg_one(struct outbox *ob, const char *what, const char *sql, int n,
		     const char *const *v, int64_t id)
{
	long changed = ob_pg_changed(ob, what, sql, n, v, NULL);

	if (changed < 0)
		return -1;
	if (changed != 1)
		return ob_failf(ob, "%s: no delivery with id %lld", what, (long long)id);
	return 0;
}

int ob_pg_complete(struct outbox *ob, int64_t id)
{
	char b_id[32];
	const char *v[] = { ob_pg_int(b_id, id) };

	return outbox_pg_one(ob, "complete", "DELETE FROM deliveries WHERE id = $1", 1, v, id);
}

int ob_pg_retry(struct outbox *ob, int64_t id, double next_at, int status, const char *error)
{
	char b_id[32], b_next[32], b_st[32];
	const char *v[] = { ob_pg_int(b_id, id), ob_pg_num(b_next, next_at),
			    status > 0 ? ob_pg_int(b_st, status) : NULL, error };

	return outbox_pg_one(ob, "retry",
			 "UPDATE deliveries SET attempts = attempts + 1, lease_owner = NULL,"
			 " lease_until = NULL, next_attempt_at = $2, last_status = $3,"
			 " last_error = $4 WHERE id = $1", 4, v, id);
}

int ob_pg_bury(struct outbox *ob, int64_t id, int status, const char *error)
{
	char b_id[32], b_st[32], b_now[32], reason[64];

	error = ob_bury_reason(error, status, reason);
	{
		const char *v[] = { ob_pg_int(b_id, id), error,
				    status > 0 ? ob_pg_int(b_st, status) : NULL,
				    ob_pg_num(b_now, ob_now()) };

		return outbox_pg_one(ob, "bury",
				 "WITH gone AS (DELETE FROM deliveries WHERE id = $1 RETURNING *)"
				 " INSERT INTO dead_letters(kind, reason, payload, request_id,"
				 " delivery_id, name, url, method, content_type, headers, attempts,"
				 " last_status, created_at, died_at)"
				 " SELECT 'forward', $2, body, request_id, delivery_id, name, url,"
				 " method, content_type, headers, attempts + 1, $3::integer,"
				 " created_at, $4 FROM gone", 4, v, id);
	}
}

long ob_pg_count_pending(struct outbox *ob)
{
	return ob_pg_count(ob, "count pending", "SELECT count(*) FROM deliveries", 0, NULL);
}

long ob_pg_count_dead(struct outbox *ob)
{
	return ob_pg_count(ob, "count dead letters",
			   "SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL", 0, NULL);
}

long ob_pg_count_dest(struct outbox *ob, const char *dest)
{
	const char *v[] = { dest };

	return ob_pg_count(ob, "count destination",
			   "SELECT count(*) FROM deliveries WHERE dest = $1", 1, v);
}
