/*
 * outbox_pg_dlq.c — the PostgreSQL backend's dead letters (outbox_dlq.h,
 * outbox_pg.h) for `egoi-router dlq list|replay|purge`, run beside the
 * routers that share the database.
 *
 * Design:
 * - The filter becomes a WHERE clause with numbered parameters; the id
 *   list is one array parameter (id = ANY($n::bigint[])), so any number
 *   of ids is one statement.
 * - A list is one statement: one snapshot of the table, as on SQLite.
 * - Re-queuing marks the dead letter replayed and inserts its delivery in
 *   one statement (UPDATE ... RETURNING feeding the INSERT): a second
 *   replay, here or on another node, finds it replayed. The destination
 *   key is computed here (destination.h) from the URL read first; should
 *   the row change in between, the UPDATE's own conditions still decide.
 *
 * Threads: the owner thread of the connection (outbox.h).
 */
#include "outbox_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A built statement: its text and up to three parameters. */
struct ob_pg_where {
	char *sql;
	char *ids;           /* "{1,2,3}" */
	char died[32];
	const char *v[4];
	int n;
};

static void outbox_pg_where_free(struct ob_pg_where *w)
{
	free(w->sql);
	free(w->ids);
}

/* head + WHERE for f + tail, with its parameters in w. 0, or -1 with ob->err. */
static int outbox_pg_where_build(struct outbox *ob, const char *head,
				 const struct outbox_dlq_filter *f, const char *tail,
				 struct ob_pg_where *w)
{
	size_t cap, len;

	memset(w, 0, sizeof *w);
	cap = strlen(head) + strlen(tail) + 256;
	w->sql = malloc(cap);
	if (f->ids) {
		size_t icap = 3 + f->nids * 21, ilen = 1;

		w->ids = malloc(icap);
		if (w->ids) {
			w->ids[0] = '{';
			for (size_t i = 0; i < f->nids; i++)
				ilen += (size_t)snprintf(w->ids + ilen, icap - ilen, i ? ",%lld" : "%lld",
							 (long long)f->ids[i]);
			snprintf(w->ids + ilen, icap - ilen, "}");
		}
	}
	if (!w->sql || (f->ids && !w->ids))
		return ob_failf(ob, "dead letters: out of memory");
	len = (size_t)snprintf(w->sql, cap, "%s WHERE true", head);
	if (f->kind) {
		w->v[w->n++] = f->kind;
		len += (size_t)snprintf(w->sql + len, cap - len, " AND kind = $%d", w->n);
	}
	if (f->ids) {
		w->v[w->n++] = w->ids;
		len += (size_t)snprintf(w->sql + len, cap - len, " AND id = ANY($%d::bigint[])", w->n);
	}
	if (f->state == OUTBOX_DLQ_OPEN)
		len += (size_t)snprintf(w->sql + len, cap - len, " AND replayed_at IS NULL");
	else if (f->state == OUTBOX_DLQ_REPLAYED)
		len += (size_t)snprintf(w->sql + len, cap - len, " AND replayed_at IS NOT NULL");
	if (f->died_before > 0) {
		w->v[w->n++] = ob_pg_num(w->died, f->died_before);
		len += (size_t)snprintf(w->sql + len, cap - len, " AND died_at < $%d", w->n);
	}
	snprintf(w->sql + len, cap - len, "%s", tail);
	return 0;
}

/* Fills e from row i (pointers into r; the payload into *raw, freed by the
 * caller with PQfreemem). 0, 1 when malformed, -1 when out of memory. */
static int outbox_pg_dlq_read(const PGresult *r, int i, int with_payload,
			      struct outbox_dlq_entry *e, unsigned char **raw)
{
	const char *s;

	memset(e, 0, sizeof *e);
	e->id = strtoll(PQgetvalue(r, i, D_ID), NULL, 10);
	e->kind = ob_pg_val(r, i, D_KIND);
	e->reason = ob_pg_val(r, i, D_REASON);
	e->request_id = ob_pg_val(r, i, D_REQID);
	s = ob_pg_val(r, i, D_INDEX);
	e->event_index = s ? strtol(s, NULL, 10) : 0;
	e->created_at = strtod(PQgetvalue(r, i, D_CREATED), NULL);
	e->died_at = strtod(PQgetvalue(r, i, D_DIED), NULL);
	s = ob_pg_val(r, i, D_REPLAYED);
	e->replayed_at = s ? strtod(s, NULL) : 0;
	e->target = ob_pg_val(r, i, D_TARGET);
	e->delivery_id = ob_pg_val(r, i, D_DID);
	e->name = ob_pg_val(r, i, D_NAME);
	e->url = ob_pg_val(r, i, D_URL);
	e->method = ob_pg_val(r, i, D_METHOD);
	e->content_type = ob_pg_val(r, i, D_CTYPE);
	e->headers = ob_pg_val(r, i, D_HEADERS);
	s = ob_pg_val(r, i, D_ATTEMPTS);
	e->attempts = s ? strtol(s, NULL, 10) : -1;
	s = ob_pg_val(r, i, D_STATUS);
	e->last_status = s ? (int)strtol(s, NULL, 10) : 0;
	s = ob_pg_val(r, i, D_PLEN);
	e->payload_len = s ? (size_t)strtoull(s, NULL, 10) : 0;
	if (with_payload && !PQgetisnull(r, i, D_PAYLOAD)) {
		*raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, D_PAYLOAD),
				       &e->payload_len);
		if (!*raw)
			return -1;
		e->payload = (const char *)*raw;
	}
	/* The schema's types and CHECK keep other damage out of the table. */
	e->malformed = ob_dlq_malformed(e, 1);
	return e->malformed ? 1 : 0;
}

int ob_pg_dlq_list(struct outbox *ob, const struct outbox_dlq_filter *f,
		   int (*fn)(const struct outbox_dlq_entry *e, void *arg), void *arg)
{
	struct outbox_dlq_entry e;
	struct ob_pg_where w;
	PGresult *r = NULL;
	char tail[64];
	int ret = -1;

	if (f->limit > 0)
		snprintf(tail, sizeof tail, " ORDER BY id LIMIT %ld", f->limit);
	else
		snprintf(tail, sizeof tail, " ORDER BY id");
	if (outbox_pg_where_build(ob, f->with_payload
				  ? "SELECT " OB_DLQ_COLUMNS ", payload FROM dead_letters"
				  : "SELECT " OB_DLQ_COLUMNS " FROM dead_letters",
			      f, tail, &w) != 0)
		goto out;
	r = ob_pg_exec(ob, "dead letters: list", w.sql, w.n, w.v, NULL);
	if (!r)
		goto out;
	ret = 0;
	for (int i = 0; ret == 0 && i < PQntuples(r); i++) {
		unsigned char *raw = NULL;

		if (outbox_pg_dlq_read(r, i, f->with_payload, &e, &raw) < 0) {
			ret = ob_failf(ob, "dead letters: cannot read row %lld (out of memory?)",
				       (long long)e.id);
			break;
		}
		ret = fn(&e, arg);
		PQfreemem(raw);
	}
out:
	PQclear(r);
	outbox_pg_where_free(&w);
	return ret;
}

enum outbox_dlq_result ob_pg_dlq_requeue_forward(struct outbox *ob, int64_t id)
{
	static const char find[] =
		"SELECT url FROM dead_letters WHERE id = $1 AND kind = 'forward'"
		" AND replayed_at IS NULL";
	static const char move[] =
		"WITH m AS (UPDATE dead_letters SET replayed_at = $2 WHERE id = $1"
		" AND kind = 'forward' AND replayed_at IS NULL RETURNING *)"
		" INSERT INTO deliveries(delivery_id, name, url, method, content_type, headers,"
		" body, request_id, created_at, next_attempt_at, attempts, dest)"
		" SELECT delivery_id, name, url, method, content_type, headers,"
		" coalesce(payload, ''::bytea), request_id, $2, $2, 0, $3 FROM m";
	enum outbox_dlq_result ret = OUTBOX_DLQ_FAILED;
	char b_id[32], b_now[32];
	char *dest = NULL;
	PGresult *r;
	long moved;

	{
		const char *v[] = { ob_pg_int(b_id, id) };

		r = ob_pg_exec(ob, "requeue", find, 1, v, NULL);
	}
	if (!r)
		goto out;
	if (PQntuples(r) != 1) {
		ret = OUTBOX_DLQ_NOT_OPEN;
		goto out;
	}
	dest = ob_pg_dest(ob_pg_val(r, 0, 0));
	if (!dest) {
		ob_failf(ob, "requeue: out of memory");
		goto out;
	}
	{
		const char *v[] = { b_id, ob_pg_num(b_now, ob_now()), dest };

		moved = ob_pg_changed(ob, "requeue", move, 3, v, NULL);
	}
	if (moved >= 0)
		ret = moved == 1 ? OUTBOX_DLQ_DONE : OUTBOX_DLQ_NOT_OPEN;
	/* a wake-up for the routers; a lost one only waits for their next tick */
	if (ret == OUTBOX_DLQ_DONE)
		(void)ob_pg_run(ob, "requeue: notify", "NOTIFY " OB_PG_CHANNEL, 0, NULL, NULL);
out:
	PQclear(r);
	free(dest);
	return ret;
}

enum outbox_dlq_result ob_pg_dlq_mark_replayed(struct outbox *ob, int64_t id)
{
	char b_id[32], b_now[32];
	const char *v[] = { ob_pg_int(b_id, id), ob_pg_num(b_now, ob_now()) };
	long n = ob_pg_changed(ob, "mark replayed",
			       "UPDATE dead_letters SET replayed_at = $2 WHERE id = $1"
			       " AND replayed_at IS NULL", 2, v, NULL);

	if (n < 0)
		return OUTBOX_DLQ_FAILED;
	return n == 1 ? OUTBOX_DLQ_DONE : OUTBOX_DLQ_NOT_OPEN;
}

long ob_pg_dlq_purge(struct outbox *ob, const struct outbox_dlq_filter *f)
{
	struct ob_pg_where w;
	long n = -1;

	if (outbox_pg_where_build(ob, "DELETE FROM dead_letters", f, "", &w) == 0)
		n = ob_pg_changed(ob, "purge", w.sql, w.n, w.v, NULL);
	outbox_pg_where_free(&w);
	return n;
}
