/*
 * outbox_sqlite_sql.c — the SQLite backend's SQL helpers (see outbox_internal.h):
 * errors recorded in the connection's err buffer, a full disk reported to
 * outbox_space, one statement stepped, one script run. outbox_sqlite.c
 * (connections, transactions, writes) and outbox_sqlite_schema.c (set-up,
 * migrations) build on these; neither needs the other's helpers.
 *
 * Threads: as outbox_internal.h: the thread that owns the connection.
 */
#include <stdio.h>

#include "outbox_internal.h"
#include "outbox_space.h"

/* A full disk is everybody's business: see outbox_space.h. */
static void outbox_sqlite_check_full(struct outbox *ob)
{
	if ((sqlite3_errcode(ob->db) & 0xff) == SQLITE_FULL)
		outbox_space_exhausted();
}

int ob_fail(struct outbox *ob, const char *what)
{
	outbox_sqlite_check_full(ob);
	return ob_failf(ob, "%s: %s", what, sqlite3_errmsg(ob->db));
}

int ob_run(struct outbox *ob, enum ob_stmt s, const char *what, int bind_failed)
{
	int ret = 0;

	if (bind_failed || sqlite3_step(ob->st[s]) != SQLITE_DONE)
		ret = ob_fail(ob, what);
	ob_reset(ob->st[s]);
	return ret;
}

int ob_exec(struct outbox *ob, const char *sql, const char *what)
{
	char *msg = NULL;
	int ret = 0;

	if (sqlite3_exec(ob->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		outbox_sqlite_check_full(ob);
		ret = ob_failf(ob, "%s: %s", what, msg ? msg : sqlite3_errmsg(ob->db));
	}
	sqlite3_free(msg);
	return ret;
}
