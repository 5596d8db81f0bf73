/*
 * outbox.c — the durable outbox (see outbox.h).
 *
 * Design:
 * - One SQLite file, data_dir/outbox.db, in WAL mode with synchronous=FULL:
 *   a batch is answered 200 only after its transaction committed, and FULL
 *   makes that commit survive a power cut, not only a crash of the process.
 * - Every write transaction starts with BEGIN IMMEDIATE, so the write lock is
 *   taken up front where the busy timeout applies; a deferred transaction that
 *   reads first could instead fail at its first write with SQLITE_BUSY.
 * - The schema is versioned with PRAGMA user_version; ob_migrations[i] turns
 *   version i into i + 1, so later changes (per-destination claiming, dlq
 *   bookkeeping) are added as new steps without touching existing databases.
 * - Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT),
 *   reset and unbound after every use. Strings and blobs are bound
 *   SQLITE_STATIC: the caller's memory outlives the step, and the bindings
 *   are cleared before we return.
 * - Dead letters keep every column needed to re-queue a forward (delivery id,
 *   destination, body) or re-run an event (payload, request id, index), and
 *   replayed_at marks them handled instead of deleting them.
 *
 * Threads: a struct outbox is one connection (opened SQLITE_OPEN_NOMUTEX)
 * and must only be used by the thread that owns it.
 */
#include "outbox.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#define OUTBOX_BUSY_TIMEOUT_MS 10000

enum ob_stmt {
	OB_BEGIN,
	OB_COMMIT,
	OB_ROLLBACK,
	OB_ADD_FORWARD,
	OB_ADD_DEAD,
	OB_CLAIM_SELECT,
	OB_CLAIM_LEASE,
	OB_RELEASE,
	OB_NEXT_DUE,
	OB_DELETE,
	OB_RETRY,
	OB_BURY_COPY,
	OB_COUNT_PENDING,
	OB_COUNT_DEAD,
	OB_NSTMT
};

/* Columns selected by OB_CLAIM_SELECT, in order. */
enum { C_ID, C_DID, C_NAME, C_URL, C_METHOD, C_CTYPE, C_HEADERS, C_BODY, C_ATTEMPTS,
       C_CREATED, C_REQID };

static const char *const ob_sql[OB_NSTMT] = {
	[OB_BEGIN] = "BEGIN IMMEDIATE",
	[OB_COMMIT] = "COMMIT",
	[OB_ROLLBACK] = "ROLLBACK",
	[OB_ADD_FORWARD] =
		"INSERT INTO deliveries(delivery_id, name, url, method, content_type, headers,"
		" body, request_id, created_at, next_attempt_at)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
	[OB_ADD_DEAD] =
		"INSERT INTO dead_letters(kind, reason, payload, request_id, event_index, target,"
		" created_at, died_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
	[OB_CLAIM_SELECT] =
		"SELECT id, delivery_id, name, url, method, content_type, headers, body,"
		" attempts, created_at, request_id FROM deliveries"
		" WHERE leased = 0 AND next_attempt_at <= ?1"
		" ORDER BY next_attempt_at, id LIMIT ?2",
	/* Same selection as OB_CLAIM_SELECT; inside one IMMEDIATE transaction
	 * nobody else can change it between the two statements. */
	[OB_CLAIM_LEASE] =
		"UPDATE deliveries SET leased = 1 WHERE id IN (SELECT id FROM deliveries"
		" WHERE leased = 0 AND next_attempt_at <= ?1"
		" ORDER BY next_attempt_at, id LIMIT ?2)",
	[OB_RELEASE] = "UPDATE deliveries SET leased = 0 WHERE leased <> 0",
	[OB_NEXT_DUE] =
		"SELECT next_attempt_at FROM deliveries WHERE leased = 0"
		" ORDER BY next_attempt_at LIMIT 1",
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
};
#define OB_SCHEMA_VERSION ((long)(sizeof ob_migrations / sizeof ob_migrations[0]))

static const char *const ob_dead_kinds[] = {
	[OUTBOX_DEAD_RULE_ERROR] = "rule_error",
	[OUTBOX_DEAD_REJECTED] = "rejected",
	[OUTBOX_DEAD_WRITE] = "write",
	[OUTBOX_DEAD_FORWARD] = "forward",
};

struct outbox {
	sqlite3 *db;
	sqlite3_stmt *st[OB_NSTMT];
	char err[256];
};

__attribute__((format(printf, 2, 3)))
static int ob_failf(struct outbox *ob, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ob->err, sizeof ob->err, fmt, ap);
	va_end(ap);
	return -1;
}

/* Records the connection's current SQLite error, prefixed with what failed. */
static int ob_fail(struct outbox *ob, const char *what)
{
	return ob_failf(ob, "%s: %s", what, sqlite3_errmsg(ob->db));
}

/* Makes st ready for its next use. sqlite3_reset only repeats the error of
 * the last step, which the caller has already handled. */
static void ob_reset(sqlite3_stmt *st)
{
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

/*
 * Steps a statement that returns no rows, unless binding its parameters
 * failed (bind_failed: any sqlite3_bind_* did not return SQLITE_OK; SQLite
 * keeps that error for sqlite3_errmsg). Resets it either way.
 */
static int ob_run(struct outbox *ob, enum ob_stmt s, const char *what, int bind_failed)
{
	int ret = 0;

	if (bind_failed || sqlite3_step(ob->st[s]) != SQLITE_DONE)
		ret = ob_fail(ob, what);
	ob_reset(ob->st[s]);
	return ret;
}

static int ob_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* A NULL pointer with length 0 is bound as an empty blob, not NULL. */
static int ob_bind_blob(sqlite3_stmt *st, int i, const char *p, size_t len)
{
	return sqlite3_bind_blob64(st, i, p ? p : "", (sqlite3_uint64)len, SQLITE_STATIC);
}

/* 0 or less means "no HTTP status" (a network error) and is stored as NULL. */
static int ob_bind_status(sqlite3_stmt *st, int i, int status)
{
	return status > 0 ? sqlite3_bind_int(st, i, status) : sqlite3_bind_null(st, i);
}

static double ob_now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (double)time(NULL);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A random (version 4) UUID in lowercase hex, 36 characters plus NUL. */
static int ob_uuid(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t o = 0;

	if (RAND_bytes(b, (int)sizeof b) != 1)
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (size_t i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
	}
	out[o] = '\0';
	return 0;
}

/* mkdir -p with mode 0750 for the directories it creates. */
static int ob_mkdirs(const char *dir, char *err, size_t errlen)
{
	char *path = strdup(dir);
	struct stat sb;
	int ret = -1;

	if (!path) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* Each prefix ending at a '/', then the whole path. */
	for (char *p = path + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
			goto out;
		}
		if (c == '\0')
			break;
		*p = c;
	}
	if (stat(path, &sb) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", path);
		goto out;
	}
	ret = 0;
out:
	free(path);
	return ret;
}

static int ob_exec(struct outbox *ob, const char *sql, const char *what)
{
	char *msg = NULL;
	int ret = 0;

	if (sqlite3_exec(ob->db, sql, NULL, NULL, &msg) != SQLITE_OK)
		ret = ob_failf(ob, "%s: %s", what, msg ? msg : sqlite3_errmsg(ob->db));
	sqlite3_free(msg);
	return ret;
}

/*
 * Runs a one-row, one-column query (a PRAGMA) and copies the text answer.
 * Returns the SQLite result code (SQLITE_OK on success), with ob->err set.
 */
static int ob_query_text(struct outbox *ob, const char *sql, char *buf, size_t len)
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
static int ob_enable_wal(struct outbox *ob)
{
	const struct timespec pause = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };
	char mode[16];
	int rc;

	for (long waited_ms = 0;; waited_ms += 10) {
		rc = ob_query_text(ob, "PRAGMA journal_mode = WAL", mode, sizeof mode);
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
static int ob_busy_wait(void *arg, int tries)
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

static int ob_configure(struct outbox *ob)
{
	if (sqlite3_busy_handler(ob->db, ob_busy_wait, NULL) != SQLITE_OK)
		return ob_fail(ob, "busy handler");
	if (ob_enable_wal(ob) != 0 ||
	    ob_exec(ob, "PRAGMA synchronous = FULL", "synchronous") != 0 ||
	    ob_exec(ob, "PRAGMA foreign_keys = ON", "foreign_keys") != 0)
		return -1;
	return 0;
}

/* Brings the schema to OB_SCHEMA_VERSION in one transaction. */
static int ob_migrate(struct outbox *ob)
{
	char buf[32], sql[64];
	int in_tx = 0, ret = -1;
	long version;

	if (ob_exec(ob, "BEGIN IMMEDIATE", "schema") != 0)
		goto out;
	in_tx = 1;
	if (ob_query_text(ob, "PRAGMA user_version", buf, sizeof buf) != SQLITE_OK)
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
	ret = 0;
out:
	if (in_tx && !sqlite3_get_autocommit(ob->db) &&
	    sqlite3_exec(ob->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		log_msg(LOG_WARN, NULL, "outbox: rollback of schema change failed: %s",
			sqlite3_errmsg(ob->db));
	return ret;
}

static int ob_prepare(struct outbox *ob)
{
	for (int i = 0; i < OB_NSTMT; i++)
		if (sqlite3_prepare_v3(ob->db, ob_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &ob->st[i], NULL) != SQLITE_OK)
			return ob_fail(ob, "prepare");
	return 0;
}

struct outbox *outbox_open(const char *data_dir, char *err, size_t errlen)
{
	struct outbox *ob = NULL, *ret = NULL;
	char *path = NULL;
	int rc;

	if (!data_dir || !*data_dir) {
		snprintf(err, errlen, "outbox: no data directory");
		goto out;
	}
	if (ob_mkdirs(data_dir, err, errlen) != 0)
		goto out;
	if (asprintf(&path, "%s/outbox.db", data_dir) < 0) {
		path = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ob = calloc(1, sizeof *ob);
	if (!ob) {
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
	if (ob_configure(ob) != 0 || ob_migrate(ob) != 0 || ob_prepare(ob) != 0) {
		snprintf(err, errlen, "%s: %s", path, ob->err);
		goto out;
	}
	ret = ob;
	ob = NULL;
out:
	outbox_close(ob);
	free(path);
	return ret;
}

void outbox_close(struct outbox *ob)
{
	if (!ob)
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
	free(ob);
}

const char *outbox_error(const struct outbox *ob)
{
	return ob && ob->err[0] ? ob->err : "outbox: no error";
}

/* --- transactions --- */

int outbox_begin(struct outbox *ob)
{
	if (!sqlite3_get_autocommit(ob->db))
		return ob_failf(ob, "begin: a transaction is already open");
	return ob_run(ob, OB_BEGIN, "begin", 0);
}

/* On failure the transaction is rolled back: nothing of it is durable. */
int outbox_commit(struct outbox *ob)
{
	if (sqlite3_get_autocommit(ob->db))
		return ob_failf(ob, "commit: no transaction is open");
	if (ob_run(ob, OB_COMMIT, "commit", 0) != 0) {
		outbox_rollback(ob);
		return -1;
	}
	return 0;
}

void outbox_rollback(struct outbox *ob)
{
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
int outbox_savepoint(struct outbox *ob)
{
	return ob_exec(ob, "SAVEPOINT batch", "savepoint");
}

int outbox_savepoint_release(struct outbox *ob)
{
	return ob_exec(ob, "RELEASE batch", "release savepoint");
}

int outbox_savepoint_rollback(struct outbox *ob)
{
	if (ob_exec(ob, "ROLLBACK TO batch", "rollback to savepoint") != 0)
		return -1;
	return outbox_savepoint_release(ob);
}

/*
 * Internal transactions (claim, bury) join a transaction the caller already
 * opened instead of failing; *own says whether this call opened it.
 */
static int ob_tx_enter(struct outbox *ob, int *own)
{
	*own = sqlite3_get_autocommit(ob->db) != 0;
	return *own ? ob_run(ob, OB_BEGIN, "begin", 0) : 0;
}

static int ob_tx_leave(struct outbox *ob, int own, int ok)
{
	if (!own)
		return ok ? 0 : -1;
	if (ok)
		return outbox_commit(ob);
	outbox_rollback(ob);
	return -1;
}

/* --- writing a batch --- */

int outbox_add_forward(struct outbox *ob, const struct outbox_forward *f, char *id_out)
{
	sqlite3_stmt *st = ob->st[OB_ADD_FORWARD];
	char id[37];

	if (!f->url || !f->method)
		return ob_failf(ob, "add forward: url and method are required");
	if (ob_uuid(id) != 0)
		return ob_failf(ob, "add forward: RAND_bytes failed");
	if (ob_run(ob, OB_ADD_FORWARD, "add forward",
		   sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC) ||
		   ob_bind_text(st, 2, f->name) || ob_bind_text(st, 3, f->url) ||
		   ob_bind_text(st, 4, f->method) || ob_bind_text(st, 5, f->content_type) ||
		   ob_bind_text(st, 6, f->headers) ||
		   ob_bind_blob(st, 7, f->body, f->body_len) ||
		   ob_bind_text(st, 8, f->request_id) ||
		   sqlite3_bind_double(st, 9, ob_now())) != 0)
		return -1;
	if (id_out)
		memcpy(id_out, id, sizeof id);
	return 0;
}

int outbox_add_dead(struct outbox *ob, const struct outbox_dead *d)
{
	sqlite3_stmt *st = ob->st[OB_ADD_DEAD];

	if ((unsigned)d->kind >= sizeof ob_dead_kinds / sizeof ob_dead_kinds[0])
		return ob_failf(ob, "add dead letter: unknown kind %d", (int)d->kind);
	return ob_run(ob, OB_ADD_DEAD, "add dead letter",
		      sqlite3_bind_text(st, 1, ob_dead_kinds[d->kind], -1, SQLITE_STATIC) ||
		      sqlite3_bind_text(st, 2, d->reason ? d->reason : "", -1, SQLITE_STATIC) ||
		      (d->payload ? ob_bind_blob(st, 3, d->payload, d->payload_len)
				  : sqlite3_bind_null(st, 3)) ||
		      ob_bind_text(st, 4, d->request_id) ||
		      (d->event_index > 0 ? sqlite3_bind_int64(st, 5, d->event_index)
					  : sqlite3_bind_null(st, 5)) ||
		      ob_bind_text(st, 6, d->target) ||
		      sqlite3_bind_double(st, 7, ob_now()));
}

/* --- delivering --- */

int outbox_release_leases(struct outbox *ob)
{
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
static int ob_col_text(sqlite3_stmt *st, int col, char **out)
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
static int ob_col_blob(sqlite3_stmt *st, int col, char **out, size_t *len)
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

static int ob_read_delivery(sqlite3_stmt *st, struct outbox_delivery *d)
{
	const unsigned char *did = sqlite3_column_text(st, C_DID);

	memset(d, 0, sizeof *d);
	d->id = sqlite3_column_int64(st, C_ID);
	if (!did || strlen((const char *)did) >= sizeof d->delivery_id)
		return -1;
	strcpy(d->delivery_id, (const char *)did);
	d->attempts = (long)sqlite3_column_int64(st, C_ATTEMPTS);
	d->created_at = sqlite3_column_double(st, C_CREATED);
	if (ob_col_text(st, C_NAME, &d->name) != 0 || ob_col_text(st, C_URL, &d->url) != 0 ||
	    ob_col_text(st, C_METHOD, &d->method) != 0 ||
	    ob_col_text(st, C_CTYPE, &d->content_type) != 0 ||
	    ob_col_text(st, C_HEADERS, &d->headers) != 0 ||
	    ob_col_text(st, C_REQID, &d->request_id) != 0 ||
	    ob_col_blob(st, C_BODY, &d->body, &d->body_len) != 0)
		return -1;
	return 0;
}

int outbox_claim_due(struct outbox *ob, double now, size_t max, struct outbox_delivery **out)
{
	sqlite3_stmt *sel = ob->st[OB_CLAIM_SELECT], *lease = ob->st[OB_CLAIM_LEASE];
	struct outbox_delivery *list = NULL;
	size_t n = 0, cap = 0;
	int own = 0, ok = 0, rc;
	sqlite3_int64 limit = max > INT32_MAX ? INT32_MAX : (sqlite3_int64)max;

	*out = NULL;
	if (max == 0)
		return 0;
	if (ob_tx_enter(ob, &own) != 0)
		return -1;
	if (sqlite3_bind_double(sel, 1, now) != SQLITE_OK ||
	    sqlite3_bind_int64(sel, 2, limit) != SQLITE_OK) {
		ob_fail(ob, "claim: bind");
		goto out;
	}
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct outbox_delivery *nl = realloc(list, ncap * sizeof *nl);

			if (!nl) {
				ob_failf(ob, "claim: out of memory");
				goto out;
			}
			list = nl;
			cap = ncap;
		}
		/* Counted before reading so a half-read entry is freed too. */
		if (ob_read_delivery(sel, &list[n++]) != 0) {
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
			   sqlite3_bind_int64(lease, 2, limit)) != 0)
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

int outbox_next_due(struct outbox *ob, double *when)
{
	sqlite3_stmt *st = ob->st[OB_NEXT_DUE];
	int rc = sqlite3_step(st), ret;

	if (rc == SQLITE_ROW) {
		*when = sqlite3_column_double(st, 0);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = ob_fail(ob, "next due");
	}
	ob_reset(st);
	return ret;
}

/* Runs a statement that must change exactly one delivery. */
static int ob_run_one(struct outbox *ob, enum ob_stmt s, const char *what, int64_t id,
		      int bind_failed)
{
	if (ob_run(ob, s, what, bind_failed) != 0)
		return -1;
	if (sqlite3_changes(ob->db) != 1)
		return ob_failf(ob, "%s: no delivery with id %lld", what, (long long)id);
	return 0;
}

int outbox_complete(struct outbox *ob, int64_t id)
{
	return ob_run_one(ob, OB_DELETE, "complete", id,
			  sqlite3_bind_int64(ob->st[OB_DELETE], 1, id));
}

int outbox_retry(struct outbox *ob, int64_t id, double next_at, int status, const char *error)
{
	sqlite3_stmt *st = ob->st[OB_RETRY];

	return ob_run_one(ob, OB_RETRY, "retry", id,
			  sqlite3_bind_int64(st, 1, id) || sqlite3_bind_double(st, 2, next_at) ||
			  ob_bind_status(st, 3, status) || ob_bind_text(st, 4, error));
}

int outbox_bury(struct outbox *ob, int64_t id, int status, const char *error)
{
	sqlite3_stmt *copy = ob->st[OB_BURY_COPY];
	char reason[64];
	int own = 0, ok = 0;

	if (!error || !*error) {
		if (status > 0)
			snprintf(reason, sizeof reason, "HTTP %d", status);
		else
			snprintf(reason, sizeof reason, "delivery failed");
		error = reason;
	}
	if (ob_tx_enter(ob, &own) != 0)
		return -1;
	if (ob_run_one(ob, OB_BURY_COPY, "bury", id,
		       sqlite3_bind_int64(copy, 1, id) ||
		       sqlite3_bind_text(copy, 2, error, -1, SQLITE_STATIC) ||
		       ob_bind_status(copy, 3, status) ||
		       sqlite3_bind_double(copy, 4, ob_now())) != 0 ||
	    ob_run_one(ob, OB_DELETE, "bury", id,
		       sqlite3_bind_int64(ob->st[OB_DELETE], 1, id)) != 0)
		goto out;
	ok = 1;
out:
	return ob_tx_leave(ob, own, ok);
}

static long ob_count(struct outbox *ob, enum ob_stmt s, const char *what)
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

long outbox_count_pending(struct outbox *ob)
{
	return ob_count(ob, OB_COUNT_PENDING, "count pending");
}

long outbox_count_dead(struct outbox *ob)
{
	return ob_count(ob, OB_COUNT_DEAD, "count dead letters");
}
