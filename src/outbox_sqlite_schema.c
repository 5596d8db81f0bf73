/*
 * outbox_sqlite_schema.c — SQLite backend: setting up the outbox database file (see outbox.h): the
 * connection settings and the schema (outbox_open creates data_dir first,
 * util_mkdir_p).
 *
 * Design:
 * - WAL mode with synchronous=FULL: a batch is answered 200 only after its
 *   transaction committed, and FULL makes that commit survive a power cut,
 *   not only a crash of the process.
 * - The schema is versioned with PRAGMA user_version; ob_migrations[i] turns
 *   version i into i + 1, so later changes are added as new steps without
 *   touching existing databases. Version 2 keys every delivery by its
 *   destination (column dest, filled by the SQL function router_dest).
 * - auto_vacuum = INCREMENTAL: pages freed by delivered entries go back to
 *   the file system when the delivery thread asks (outbox_release_space),
 *   which is how a drained backlog gives space back on a full disk. A
 *   database made before that is converted once with VACUUM.
 * - Dead letters keep every column needed to re-queue a forward (delivery id,
 *   destination, body) or re-run an event (payload, request id, index), and
 *   replayed_at marks them handled instead of deleting them.
 *
 * Threads: called by outbox_open on the connection it is creating, before
 * anyone else can see it.
 */
#include "outbox_internal.h"
#include "destination.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define OUTBOX_BUSY_TIMEOUT_MS 10000

/* ob_migrations[i] upgrades schema version i to i + 1. */
static const char *const ob_migrations[] = {
	"CREATE TABLE IF NOT EXISTS deliveries ("
	" id INTEGER PRIMARY KEY,"
	" delivery_id TEXT NOT NULL UNIQUE,"
	" name TEXT,"
	" url TEXT NOT NULL,"
	" method TEXT NOT NULL,"
	" content_type TEXT,"
	" headers TEXT,"
	" body BLOB NOT NULL,"
	" request_id TEXT,"
	" created_at REAL NOT NULL,"
	" next_attempt_at REAL NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" leased INTEGER NOT NULL DEFAULT 0,"
	" last_status INTEGER,"
	" last_error TEXT);"
	"CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(leased, next_attempt_at, id);"
	"CREATE TABLE IF NOT EXISTS dead_letters ("
	" id INTEGER PRIMARY KEY,"
	/* the kinds of outbox_dead_kind_names (test_outbox checks they agree) */
	" kind TEXT NOT NULL CHECK (kind IN ('rule_error', 'rejected', 'write', 'forward')),"
	" reason TEXT NOT NULL,"
	" payload BLOB,"
	" request_id TEXT,"
	" event_index INTEGER,"
	" target TEXT,"
	" delivery_id TEXT,"
	" name TEXT,"
	" url TEXT,"
	" method TEXT,"
	" content_type TEXT,"
	" headers TEXT,"
	" attempts INTEGER,"
	" last_status INTEGER,"
	" created_at REAL NOT NULL,"
	" died_at REAL NOT NULL,"
	" replayed_at REAL);"
	/* dlq list/replay walk the unhandled entries in order; per destination too. */
	"CREATE INDEX IF NOT EXISTS dead_letters_open ON dead_letters(replayed_at, id);"
	"CREATE INDEX IF NOT EXISTS dead_letters_name ON dead_letters(name, id);",

	/* 1 -> 2: claiming goes destination by destination (destination.h). */
	"ALTER TABLE deliveries ADD COLUMN dest TEXT NOT NULL DEFAULT '';"
	"UPDATE deliveries SET dest = router_dest(url);"
	"DROP INDEX IF EXISTS deliveries_due;"
	"CREATE INDEX deliveries_dest ON deliveries(leased, dest, next_attempt_at, id);",

	/* 2 -> 3: the X-Router-Hop each delivery sends (loop protection); 0 = before. */
	"ALTER TABLE deliveries ADD COLUMN hop INTEGER NOT NULL DEFAULT 0;",
};
#define OB_SCHEMA_VERSION ((long)(sizeof ob_migrations / sizeof ob_migrations[0]))

/*
 * Runs a one-row, one-column query (a PRAGMA) and copies the text answer.
 * Returns the SQLite result code (SQLITE_OK on success), with ob->err set.
 */
static int outbox_sqlite_query_text(struct outbox *ob, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *t;
	int rc;

	rc = sqlite3_prepare_v2(ob->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		ob_fail(ob, sql);
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ob_fail(ob, sql);
		goto out;
	}
	t = sqlite3_column_text(st, 0);
	snprintf(buf, len, "%s", t ? (const char *)t : "");
	rc = SQLITE_OK;
out:
	sqlite3_finalize(st);
	return rc;
}

/*
 * Converting the file to WAL needs an exclusive lock, and SQLite does not run
 * the busy handler for it: two connections opening a fresh database at once
 * get SQLITE_BUSY at once. So retry within the same time budget. Once the
 * file is in WAL mode (a persistent property) the pragma changes nothing.
 */
static int outbox_sqlite_enable_wal(struct outbox *ob)
{
	const struct timespec pause = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
	char mode[16];
	int rc;

	for (long waited_ms = 0;; waited_ms += 10) {
		rc = outbox_sqlite_query_text(ob, "PRAGMA journal_mode = WAL", mode, sizeof mode);
		if (rc == SQLITE_OK)
			break;
		if ((rc & 0xff) != SQLITE_BUSY || waited_ms >= OUTBOX_BUSY_TIMEOUT_MS)
			return -1;
		/* An interrupted pause only makes this attempt come sooner. */
		(void)nanosleep(&pause, NULL);
	}
	/* SQLite answers with the mode in force; anything else means no WAL
	 * (e.g. a file system without shared memory support). */
	if (strcmp(mode, "wal") != 0)
		return ob_failf(ob, "cannot enable WAL journal mode (got \"%s\")", mode);
	return 0;
}

/*
 * Busy handler: the outbox has two writers (the group committer and the
 * delivery thread), each holding the lock for about one fsync. SQLite's
 * own busy timeout sleeps in steps of up to 100 ms and a waiter can lose
 * the race again and again (seen as 1-2 s stalls under load), so wait in
 * short steps instead: 100 µs, growing to 2 ms, for OUTBOX_BUSY_TIMEOUT_MS
 * in all.
 */
static int outbox_sqlite_busy_wait(void *arg, int tries)
{
	long us = 100L << (tries < 5 ? tries : 5);
	struct timespec pause;

	(void)arg;
	if (us > 2000)
		us = 2000;
	/* a coarse bound: tries * 2 ms >= the budget once tries is large */
	if ((long)tries * 2 > OUTBOX_BUSY_TIMEOUT_MS)
		return 0;
	pause.tv_sec = 0;
	pause.tv_nsec = us * 1000;
	(void)nanosleep(&pause, NULL);
	return 1;
}

int ob_configure(struct outbox *ob)
{
	if (sqlite3_busy_handler(ob->db, outbox_sqlite_busy_wait, NULL) != SQLITE_OK)
		return ob_fail(ob, "busy handler");
	if (destination_sql_register(ob->db) != SQLITE_OK)
		return ob_fail(ob, "register router_dest");
	/* Takes effect only while the file has no table yet (a new database);
	 * ob_migrate converts an older one. */
	if (ob_exec(ob, "PRAGMA auto_vacuum = INCREMENTAL", "auto_vacuum") != 0)
		return -1;
	if (outbox_sqlite_enable_wal(ob) != 0 ||
	    ob_exec(ob, "PRAGMA synchronous = FULL", "synchronous") != 0 ||
	    ob_exec(ob, "PRAGMA foreign_keys = ON", "foreign_keys") != 0)
		return -1;
	return 0;
}

int ob_migrate(struct outbox *ob)
{
	char buf[32], sql[64];
	int in_tx = 0, ret = -1;
	long version;

	if (ob_exec(ob, "BEGIN IMMEDIATE", "schema") != 0)
		goto out;
	in_tx = 1;
	if (outbox_sqlite_query_text(ob, "PRAGMA user_version", buf, sizeof buf) != SQLITE_OK)
		goto out;
	version = strtol(buf, NULL, 10);
	if (version < 0 || version > OB_SCHEMA_VERSION) {
		ob_failf(ob, "database schema version %ld is not supported (this program: %ld)",
			 version, OB_SCHEMA_VERSION);
		goto out;
	}
	for (long v = version; v < OB_SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof sql, "PRAGMA user_version = %ld", v + 1);
		if (ob_exec(ob, ob_migrations[v], "schema") != 0 ||
		    ob_exec(ob, sql, "schema") != 0)
			goto out;
	}
	if (ob_exec(ob, "COMMIT", "schema") != 0)
		goto out;
	in_tx = 0;
	if (outbox_sqlite_query_text(ob, "PRAGMA auto_vacuum", buf, sizeof buf) != SQLITE_OK)
		goto out;
	if (strcmp(buf, "2") != 0) {
		/* Once per database, before anyone else uses it (main opens first). */
		log_msg(LOG_INFO, NULL, "outbox: converting the database to incremental vacuum "
					"(once)");
		if (ob_exec(ob, "PRAGMA auto_vacuum = INCREMENTAL", "auto_vacuum") != 0 ||
		    ob_exec(ob, "VACUUM", "vacuum") != 0)
			goto out;
	}
	ret = 0;
out:
	if (in_tx && !sqlite3_get_autocommit(ob->db) &&
	    sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		log_msg(LOG_WARN, NULL, "outbox: rollback of schema change failed: %s",
			sqlite3_errmsg(ob->db));
	return ret;
}
