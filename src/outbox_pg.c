/*
 * outbox_pg.c — the PostgreSQL backend of the outbox (outbox_pg.h): the
 * connection and its re-connection, statements run with parameters,
 * transactions and savepoints, and the writes of a batch.
 *
 * Design:
 * - One PGconn per struct outbox, opened from the `outbox` URI (libpq
 *   parses it; connect_timeout 10 s unless the URI says otherwise). Every
 *   message names the server as "postgresql at host:port/db", never the
 *   URI itself, so a password in it is never shown.
 * - Every value is a parameter (PQexecParams): text for strings and
 *   numbers, binary for bodies (bytea), so no value is ever quoted by hand.
 * - ob->pg->in_tx is the caller's view of the transaction: a connection lost
 *   inside one is not silently re-opened (the rest of the group would run
 *   outside it); every call fails until the caller rolls back, and the
 *   next call after that re-connects.
 * - COMMIT of a transaction that failed earlier answers "ROLLBACK" without
 *   an error: that is a failure here, so nothing is answered 200 that did
 *   not commit.
 *
 * Threads: a connection belongs to its owner thread (outbox.h).
 */
#include "outbox_pg.h"
#include "destination.h"
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OB_PG_MAXPARAMS 16
/* After a failed re-connection, calls fail at once for this long: intake
 * answers 503 without waiting for a connect timeout batch after batch. */
#define OB_PG_RETRY_S 1.0

static pthread_once_t ob_pg_owner_once = PTHREAD_ONCE_INIT;
static char ob_pg_owner_id[128];

static void outbox_pg_owner_init(void)
{
	char host[64] = "", u[37];

	if (gethostname(host, sizeof host - 1) != 0)
		snprintf(host, sizeof host, "unknown");
	ob_uuid(u);
	snprintf(ob_pg_owner_id, sizeof ob_pg_owner_id, "%s/%ld/%.8s", host, (long)getpid(), u);
}

const char *ob_pg_owner(void)
{
	(void)pthread_once(&ob_pg_owner_once, outbox_pg_owner_init);
	return ob_pg_owner_id;
}

const char *ob_pg_num(char buf[32], double v)
{
	snprintf(buf, 32, "%.17g", v);
	return buf;
}

const char *ob_pg_int(char buf[32], long long v)
{
	snprintf(buf, 32, "%lld", v);
	return buf;
}

char *ob_pg_dest(const char *url)
{
	char *key = NULL;

	if (url && destination_key(url, &key, NULL) == 0)
		return key;
	return strdup("");
}

/* libpq's messages end in a newline and may hold several lines: one line. */
static int outbox_pg_fail(struct outbox *ob, const char *what, const char *msg)
{
	char line[200];
	size_t n = 0;

	for (const char *p = msg ? msg : ""; *p && n < sizeof line - 1; p++)
		line[n++] = (*p == '\n' || *p == '\t') ? ' ' : *p;
	while (n > 0 && line[n - 1] == ' ')
		n--;
	line[n] = '\0';
	return ob_failf(ob, "%s: %s: %s", ob->pg->where, what, n ? line : "failed");
}

/* The session settings, after a connection or a re-connection. */
static int outbox_pg_session(struct outbox *ob)
{
	PGresult *r;
	int ok = 1;

	if (ob->pg->relaxed) {
		/* A lost outcome is sent again (outbox_deliver.h): no wait for
		 * the server's disk on the delivery connection. */
		r = PQexec(ob->pg->conn, "SET synchronous_commit = off");
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	if (ok && ob->pg->listening) {
		r = PQexec(ob->pg->conn, "LISTEN " OB_PG_CHANNEL);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	if (!ok)
		outbox_pg_fail(ob, "session settings", PQerrorMessage(ob->pg->conn));
	return ok ? 0 : -1;
}

/* Re-connects a lost connection outside a transaction; 0 when usable. */
static int outbox_pg_ready(struct outbox *ob, const char *what)
{
	struct ob_pg *pg = ob->pg;

	if (PQstatus(pg->conn) == CONNECTION_OK)
		return 0;
	if (pg->in_tx)
		return outbox_pg_fail(ob, what, "connection lost inside a transaction");
	if (clock_mono() < pg->retry_at)
		return outbox_pg_fail(ob, what, "connection lost; re-connecting");
	PQreset(pg->conn);
	if (PQstatus(pg->conn) != CONNECTION_OK) {
		pg->retry_at = clock_mono() + OB_PG_RETRY_S;
		return outbox_pg_fail(ob, what, PQerrorMessage(pg->conn));
	}
	log_msg(LOG_INFO, NULL, "outbox: %s: connected again", pg->where);
	return outbox_pg_session(ob);
}

PGresult *ob_pg_exec(struct outbox *ob, const char *what, const char *sql, int n,
		     const char *const *vals, const int *lens)
{
	int fmts[OB_PG_MAXPARAMS] = { 0 }, blens[OB_PG_MAXPARAMS] = { 0 };
	PGresult *r;
	ExecStatusType st;

	if (n > OB_PG_MAXPARAMS) {
		ob_failf(ob, "%s: too many parameters", what);
		return NULL;
	}
	for (int i = 0; lens && i < n; i++)
		if (lens[i] >= 0) {
			fmts[i] = 1;
			blens[i] = lens[i];
		}
	if (outbox_pg_ready(ob, what) != 0)
		return NULL;
	r = PQexecParams(ob->pg->conn, sql, n, NULL, vals, blens, fmts, 0);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	if (PQstatus(ob->pg->conn) != CONNECTION_OK)
		outbox_pg_fail(ob, what, "connection lost");
	else
		outbox_pg_fail(ob, what,
			       r ? PQresultErrorMessage(r) : PQerrorMessage(ob->pg->conn));
	PQclear(r);
	return NULL;
}

int ob_pg_run(struct outbox *ob, const char *what, const char *sql, int n,
	      const char *const *vals, const int *lens)
{
	PGresult *r = ob_pg_exec(ob, what, sql, n, vals, lens);

	PQclear(r);
	return r ? 0 : -1;
}

long ob_pg_changed(struct outbox *ob, const char *what, const char *sql, int n,
		   const char *const *vals, const int *lens)
{
	PGresult *r = ob_pg_exec(ob, what, sql, n, vals, lens);
	long changed;

	if (!r)
		return -1;
	changed = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return changed;
}

long ob_pg_count(struct outbox *ob, const char *what, const char *sql, int n,
		 const char *const *vals)
{
	PGresult *r = ob_pg_exec(ob, what, sql, n, vals, NULL);
	long v = -1;

	if (!r)
		return -1;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	else
		ob_failf(ob, "%s: no answer", what);
	PQclear(r);
	return v;
}

/* "postgresql at host:port/db" from the URI's parts (never its password). */
static int outbox_pg_where(struct outbox *ob, const char *target, char *err, size_t errlen)
{
	const char *host = NULL, *port = NULL, *db = NULL;
	PQconninfoOption *opts = PQconninfoParse(target, NULL);

	if (!opts) {
		snprintf(err, errlen, "outbox: the postgresql:// URI cannot be parsed "
				      "(libpq's URI syntax)");
		return -1;
	}
	for (PQconninfoOption *o = opts; o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
	}
	snprintf(ob->pg->where, sizeof ob->pg->where, "postgresql at %s:%s/%s",
		 host ? host : "localhost", port ? port : "5432", db ? db : "(default)");
	PQconninfoFree(opts);
	return 0;
}

static void outbox_pg_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Connects ob (zeroed) to target; 0, or -1 with err set. */
static int outbox_pg_connect(struct outbox *ob, const char *target, char *err, size_t errlen)
{
	static const char *const keys[] = { "connect_timeout", "application_name", "dbname",
					    NULL };
	const char *vals[] = { "10", "egoi-router", target, NULL };

	ob->pg = calloc(1, sizeof *ob->pg);
	if (!ob->pg) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (outbox_pg_where(ob, target, err, errlen) != 0)
		return -1;
	/* expand_dbname: the URI's own settings override the defaults before it */
	ob->pg->conn = PQconnectdbParams(keys, vals, 1);
	if (!ob->pg->conn || PQstatus(ob->pg->conn) != CONNECTION_OK) {
		outbox_pg_fail(ob, "cannot connect", ob->pg->conn ? PQerrorMessage(ob->pg->conn)
							       : "out of memory");
		snprintf(err, errlen, "%s", ob->err);
		return -1;
	}
	/* The server's NOTICEs ("already exists, skipping") are not ours to print. */
	(void)PQsetNoticeProcessor(ob->pg->conn, outbox_pg_notice, NULL);
	return 0;
}

static int outbox_pg_open(struct outbox *ob, const char *target, const char *data_dir, char *err,
		      size_t errlen)
{
	(void)data_dir;   /* the database is the server's; data_dir keeps only files */
	if (outbox_pg_connect(ob, target, err, errlen) != 0)
		return -1;
	if (ob_pg_migrate(ob) != 0) {
		snprintf(err, errlen, "%s", ob->err);
		return -1;
	}
	return 0;
}

static void outbox_pg_close(struct outbox *ob)
{
	if (!ob->pg)
		return;
	/* The delivery side closes its connection once nothing is in flight
	 * (deliver.h): what it still holds goes back now, not at lease expiry,
	 * so a stopped node's claims are free for the others at once. */
	if (ob->pg->claimed && !ob->pg->in_tx && PQstatus(ob->pg->conn) == CONNECTION_OK &&
	    ob_pg_release_leases(ob) != 0)
		log_msg(LOG_WARN, NULL, "outbox: %s", ob->err);
	/* PQfinish ends the session: the server rolls back an open transaction. */
	if (ob->pg->conn)
		PQfinish(ob->pg->conn);
	free(ob->pg);
	ob->pg = NULL;
}

static int outbox_pg_check(const char *target, char *msg, size_t len)
{
	struct outbox ob;
	int ret = -1;

	memset(&ob, 0, sizeof ob);
	ob.owner = pthread_self();
	ob.ops = &ob_pg_backend;
	if (outbox_pg_connect(&ob, target, msg, len) == 0)
		ret = ob_pg_schema_check(&ob, msg, len);
	outbox_pg_close(&ob);
	return ret;
}

/* --- transactions --- */

static int outbox_pg_begin(struct outbox *ob)
{
	if (ob->pg->in_tx)
		return ob_failf(ob, "begin: a transaction is already open");
	if (ob_pg_run(ob, "begin", "BEGIN", 0, NULL, NULL) != 0)
		return -1;
	ob->pg->in_tx = 1;
	return 0;
}

static void outbox_pg_rollback(struct outbox *ob)
{
	PGresult *r;

	if (!ob->pg->in_tx)
		return;
	ob->pg->in_tx = 0;
	ob->pg->notify = 0;
	/* A lost connection took its transaction with it. */
	if (PQstatus(ob->pg->conn) != CONNECTION_OK)
		return;
	r = PQexec(ob->pg->conn, "ROLLBACK");
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		log_msg(LOG_WARN, NULL, "outbox: %s: rollback failed: %s", ob->pg->where,
			PQerrorMessage(ob->pg->conn));
	PQclear(r);
}

/* On failure the transaction is rolled back: nothing of it is durable. */
static int outbox_pg_commit(struct outbox *ob)
{
	PGresult *r;
	int ok;

	if (!ob->pg->in_tx)
		return ob_failf(ob, "commit: no transaction is open");
	if (PQtransactionStatus(ob->pg->conn) != PQTRANS_INTRANS) {
		outbox_pg_fail(ob, "commit",
			       "the transaction failed earlier or the connection is lost");
		outbox_pg_rollback(ob);
		return -1;
	}
	/* Delivered to the listeners at COMMIT, not before, and only if it commits. */
	if (ob->pg->notify &&
	    ob_pg_run(ob, "commit: notify", "NOTIFY " OB_PG_CHANNEL, 0, NULL, NULL) != 0) {
		outbox_pg_rollback(ob);
		return -1;
	}
	r = ob_pg_exec(ob, "commit", "COMMIT", 0, NULL, NULL);
	ob->pg->in_tx = 0;
	ob->pg->notify = 0;
	ok = r && strcmp(PQcmdStatus(r), "COMMIT") == 0;
	if (r && !ok)
		outbox_pg_fail(ob, "commit", "the server rolled the transaction back");
	PQclear(r);
	return ok ? 0 : -1;
}

static int outbox_pg_savepoint(struct outbox *ob)
{
	return ob_pg_run(ob, "savepoint", "SAVEPOINT batch", 0, NULL, NULL);
}

static int outbox_pg_savepoint_release(struct outbox *ob)
{
	return ob_pg_run(ob, "release savepoint", "RELEASE SAVEPOINT batch", 0, NULL, NULL);
}

static int outbox_pg_savepoint_rollback(struct outbox *ob)
{
	if (ob_pg_run(ob, "rollback to savepoint", "ROLLBACK TO SAVEPOINT batch", 0, NULL,
		      NULL) != 0)
		return -1;
	return outbox_pg_savepoint_release(ob);
}

static int outbox_pg_wake_fd(struct outbox *ob)
{
	if (!ob->pg->listening) {
		if (ob_pg_run(ob, "listen", "LISTEN " OB_PG_CHANNEL, 0, NULL, NULL) != 0)
			return -1;
		ob->pg->listening = 1;
	}
	return PQstatus(ob->pg->conn) == CONNECTION_OK ? PQsocket(ob->pg->conn) : -1;
}

static int outbox_pg_wake_drain(struct outbox *ob)
{
	PGnotify *n;
	int count = 0;

	if (PQstatus(ob->pg->conn) != CONNECTION_OK)
		return 0;   /* the next call re-connects (and listens again) */
	/* reads what the socket holds without blocking; notifications that
	 * came with an earlier query's answer are queued already */
	if (!PQconsumeInput(ob->pg->conn))
		return outbox_pg_fail(ob, "wake-ups", PQerrorMessage(ob->pg->conn));
	while ((n = PQnotifies(ob->pg->conn)) != NULL) {
		count++;
		PQfreemem(n);
	}
	return count;
}

static int outbox_pg_relax_sync(struct outbox *ob)
{
	ob->pg->relaxed = 1;
	return outbox_pg_session(ob);
}

/* The server manages its own files: nothing for data_dir's full disk. */
static int outbox_pg_release_space(struct outbox *ob)
{
	(void)ob;
	return 0;
}

/* --- writing a batch --- */

static int outbox_pg_add_forward(struct outbox *ob, const struct outbox_forward *f, char *id_out)
{
	static const char sql[] =
		"INSERT INTO deliveries(delivery_id, name, url, method, content_type, headers,"
		" body, request_id, created_at, next_attempt_at, dest, hop)"
		" VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)";
	char id[37], now[32], hop[32];
	char *dest = NULL;
	int ret = -1;

	if (!f->url || !f->method)
		return ob_failf(ob, "add forward: url and method are required");
	if (f->body_len > 0x7fffffff)
		return ob_failf(ob, "add forward: body too large");
	dest = ob_pg_dest(f->url);
	if (!dest)
		return ob_failf(ob, "add forward: out of memory");
	ob_uuid(id);
	{
		const char *v[] = { id, f->name, f->url, f->method, f->content_type, f->headers,
				    f->body ? f->body : "", f->request_id, ob_pg_num(now, ob_now()),
				    dest, ob_pg_int(hop, f->hop) };
		const int lens[] = { -1, -1, -1, -1, -1, -1, (int)f->body_len, -1, -1, -1, -1 };

		ret = ob_pg_run(ob, "add forward", sql, 11, v, lens);
	}
	free(dest);
	if (ret == 0 && ob->pg->in_tx)
		ob->pg->notify = 1;
	else if (ret == 0)   /* committed already: tell the others now */
		(void)ob_pg_run(ob, "notify", "NOTIFY " OB_PG_CHANNEL, 0, NULL, NULL);
	if (ret == 0 && id_out)
		memcpy(id_out, id, sizeof id);
	return ret;
}

static int outbox_pg_add_dead(struct outbox *ob, const struct outbox_dead *d)
{
	static const char sql[] =
		"INSERT INTO dead_letters(kind, reason, payload, request_id, event_index, target,"
		" created_at, died_at) VALUES($1, $2, $3, $4, $5, $6, $7, $7)";
	char idx[32], now[32];

	if ((unsigned)d->kind >= OUTBOX_DEAD_KINDS)
		return ob_failf(ob, "add dead letter: unknown kind %d", (int)d->kind);
	if (d->payload_len > 0x7fffffff)
		return ob_failf(ob, "add dead letter: payload too large");
	{
		const char *v[] = { outbox_dead_kind_names[d->kind], d->reason ? d->reason : "",
				    d->payload, d->request_id,
				    d->event_index > 0 ? ob_pg_int(idx, d->event_index) : NULL,
				    d->target, ob_pg_num(now, ob_now()) };
		const int lens[] = { -1, -1, d->payload ? (int)d->payload_len : -1, -1, -1, -1, -1 };

		return ob_pg_run(ob, "add dead letter", sql, 7, v, lens);
	}
}

const struct ob_backend ob_pg_backend = {
	.name = "postgresql",
	.open = outbox_pg_open,
	.close = outbox_pg_close,
	.check = outbox_pg_check,
	.begin = outbox_pg_begin,
	.add_forward = outbox_pg_add_forward,
	.add_dead = outbox_pg_add_dead,
	.commit = outbox_pg_commit,
	.rollback = outbox_pg_rollback,
	.savepoint = outbox_pg_savepoint,
	.savepoint_release = outbox_pg_savepoint_release,
	.savepoint_rollback = outbox_pg_savepoint_rollback,
	.relax_sync = outbox_pg_relax_sync,
	.release_leases = ob_pg_release_leases,
	.wake_fd = outbox_pg_wake_fd,
	.wake_drain = outbox_pg_wake_drain,
	.claim_due = ob_pg_claim_due,
	.scan_destinations = ob_pg_scan_destinations,
	.dest_due_now = ob_pg_dest_due_now,
	.complete = ob_pg_complete,
	.retry = ob_pg_retry,
	.bury = ob_pg_bury,
	.release_space = outbox_pg_release_space,
	.count_pending = ob_pg_count_pending,
	.count_dead = ob_pg_count_dead,
	.count_dest = ob_pg_count_dest,
	.dlq_list = ob_pg_dlq_list,
	.dlq_requeue_forward = ob_pg_dlq_requeue_forward,
	.dlq_mark_replayed = ob_pg_dlq_mark_replayed,
	.dlq_purge = ob_pg_dlq_purge,
};
