/*
 * test_outbox.c — the durable outbox against a real SQLite file in a
 * mkdtemp() directory: batches, visibility from other connections, leases,
 * retries, dead letters, restart resume and concurrent writers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <ctype.h>
#include <math.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "outbox.h"
#include "outbox_deliver.h"

struct fixture {
	char dir[64];
	char err[256];
	struct outbox *ob;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test_outbox.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	int rc;

	outbox_close(fx->ob);
	rc = tu_rmtree(fx->dir);
	free(fx);
	return rc;
}

static struct outbox *open_ok(struct fixture *fx)
{
	struct outbox *ob = outbox_open(fx->dir, fx->err, sizeof fx->err);

	if (!ob)
		fail_msg("outbox_open: %s", fx->err);
	return ob;
}

static double now_s(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A plain SQLite connection to look at what the outbox stored. */
static sqlite3 *raw_open(const struct fixture *fx)
{
	char path[128];
	sqlite3 *db = NULL;

	snprintf(path, sizeof path, "%s/outbox.db", fx->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_busy_timeout(db, 10000), SQLITE_OK);
	return db;
}

static sqlite3_stmt *raw_query(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	return st;
}

static long raw_long(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = raw_query(db, sql);
	long v = (long)sqlite3_column_int64(st, 0);

	sqlite3_finalize(st);
	return v;
}

static struct outbox_forward fwd(const char *url, const char *body)
{
	struct outbox_forward f = {
		.name = "crm", .url = url, .method = "POST", .content_type = NULL,
		.headers = "X-A: 1\n", .body = body, .body_len = strlen(body),
		.request_id = "req-1",
	};
	return f;
}

/* Every test URL https://a/... is this one destination. */
#define A_DEST "https://a:443"

static int next_due_one(const char *dest, double next_at, void *arg)
{
	double *when = arg;

	(void)dest;
	if (*when < 0 || next_at < *when)
		*when = next_at;
	return 0;
}

/* Earliest next attempt of any destination: 1 and *when, or 0 when none. */
static int next_due(struct outbox *ob, double *when)
{
	*when = -1;
	assert_int_equal(outbox_scan_destinations(ob, next_due_one, when), 0);
	return *when >= 0;
}

static void add_one(struct outbox *ob, const char *url, const char *body, char *id)
{
	struct outbox_forward f = fwd(url, body);

	assert_int_equal(outbox_begin(ob), 0);
	assert_int_equal(outbox_add_forward(ob, &f, id), 0);
	assert_int_equal(outbox_commit(ob), 0);
}

static int is_uuid4(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) {
			return 0;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static void test_open_creates_wal_db(void **state)
{
	struct fixture *fx = *state;
	char sub[128], path[160];
	struct stat sb;
	sqlite3 *db;
	sqlite3_stmt *st;

	/* A nested data_dir that does not exist yet. */
	snprintf(sub, sizeof sub, "%s/a/b", fx->dir);
	fx->ob = outbox_open(sub, fx->err, sizeof fx->err);
	assert_non_null(fx->ob);
	assert_int_equal(stat(sub, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777 & ~0750, 0);
	snprintf(path, sizeof path, "%s/outbox.db", sub);
	assert_int_equal(stat(path, &sb), 0);
	snprintf(path, sizeof path, "%s/outbox.db-wal", sub);
	assert_int_equal(stat(path, &sb), 0);

	snprintf(path, sizeof path, "%s/outbox.db", sub);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	st = raw_query(db, "PRAGMA journal_mode");
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(raw_long(db, "PRAGMA user_version"), 3);
	assert_int_equal(raw_long(db, "PRAGMA auto_vacuum"), 2);
	assert_int_equal(raw_long(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
				      " ('deliveries', 'dead_letters', 'deliveries_dest')"), 3);
	assert_int_equal(raw_long(db, "SELECT count(*) FROM sqlite_master WHERE name ="
				      " 'deliveries_due'"), 0);
	sqlite3_close(db);
}

/*
 * A database of schema version 1 (before per-destination claiming) is
 * upgraded in place: every waiting delivery gets its destination key and
 * stays claimable, and the file is converted to incremental vacuum.
 */
static void test_version_1_database_is_upgraded(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	char path[160];
	sqlite3 *db;
	int n;

	snprintf(path, sizeof path, "%s/outbox.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"PRAGMA journal_mode = WAL;"
		"CREATE TABLE deliveries (id INTEGER PRIMARY KEY, delivery_id TEXT NOT NULL UNIQUE,"
		" name TEXT, url TEXT NOT NULL, method TEXT NOT NULL, content_type TEXT,"
		" headers TEXT, body BLOB NOT NULL, request_id TEXT, created_at REAL NOT NULL,"
		" next_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
		" leased INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error TEXT);"
		"CREATE INDEX deliveries_due ON deliveries(leased, next_attempt_at, id);"
		"CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
		" reason TEXT NOT NULL, payload BLOB, request_id TEXT, event_index INTEGER,"
		" target TEXT, delivery_id TEXT, name TEXT, url TEXT, method TEXT,"
		" content_type TEXT, headers TEXT, attempts INTEGER, last_status INTEGER,"
		" created_at REAL NOT NULL, died_at REAL NOT NULL, replayed_at REAL);"
		"INSERT INTO deliveries(delivery_id, url, method, body, created_at, next_attempt_at)"
		" VALUES ('d-1', 'HTTPS://Hooks.Example/x?token=s', 'POST', X'7B7D', 1, 1),"
		" ('d-2', 'http://127.0.0.1:9/y', 'POST', X'', 1, 1),"
		" ('d-3', 'ftp://nope/', 'POST', X'', 1, 1);"
		"PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	fx->ob = open_ok(fx);
	n = outbox_claim_due(fx->ob, "https://hooks.example:443", now_s(), 10, &got);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].delivery_id, "d-1");
	outbox_deliveries_free(got, (size_t)n);
	n = outbox_claim_due(fx->ob, "http://127.0.0.1:9", now_s(), 10, &got);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].delivery_id, "d-2");
	outbox_deliveries_free(got, (size_t)n);
	/* A URL without a destination is still there, under "". */
	n = outbox_claim_due(fx->ob, "", now_s(), 10, &got);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].delivery_id, "d-3");
	outbox_deliveries_free(got, (size_t)n);

	db = raw_open(fx);
	assert_int_equal(raw_long(db, "PRAGMA user_version"), 3);
	assert_int_equal(raw_long(db, "PRAGMA auto_vacuum"), 2);
	sqlite3_close(db);
}

static int scan_collect(const char *dest, double next_at, void *arg)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 512 - len, "%s@%.0f;", dest, next_at);
	return 0;
}

/*
 * Claiming is per destination: one destination's older or more numerous
 * entries never come back from another's claim; the scan lists each
 * destination with work once, with its earliest unleased entry; due_now
 * moves one destination's backed-off entries only.
 */
static void test_claim_scan_and_due_now_are_per_destination(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	char seen[512] = "";
	double t;
	int n;

	fx->ob = open_ok(fx);
	for (int i = 0; i < 5; i++)
		add_one(fx->ob, "https://slow.example/x", "s", NULL);
	add_one(fx->ob, "https://fast.example/y", "f", NULL);
	t = now_s() + 1;

	n = outbox_claim_due(fx->ob, "https://fast.example:443", t, 10, &got);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].url, "https://fast.example/y");
	assert_int_equal(outbox_retry(fx->ob, got[0].id, t + 500, 503, "HTTP 503"), 0);
	outbox_deliveries_free(got, (size_t)n);
	n = outbox_claim_due(fx->ob, "https://slow.example:443", t, 2, &got);
	assert_int_equal(n, 2);
	for (int i = 0; i < n; i++)
		assert_string_equal(got[i].url, "https://slow.example/x");
	outbox_deliveries_free(got, (size_t)n);

	/* slow: 3 unleased (due before t), fast: 1, due at t + 500 */
	assert_int_equal(outbox_scan_destinations(fx->ob, scan_collect, seen), 0);
	assert_non_null(strstr(seen, "https://fast.example:443@"));
	{
		const char *f = strstr(seen, "https://fast.example:443@");
		double at = strtod(f + strlen("https://fast.example:443@"), NULL);

		assert_true(fabs(at - (t + 500)) < 1.0);
	}
	assert_non_null(strstr(seen, "https://slow.example:443@"));
	assert_int_equal(outbox_count_dest(fx->ob, "https://slow.example:443"), 5);
	assert_int_equal(outbox_count_dest(fx->ob, "https://fast.example:443"), 1);

	/* The recovered destination's backlog is due now; the other is untouched. */
	assert_int_equal(outbox_dest_due_now(fx->ob, "https://fast.example:443", t), 1);
	assert_int_equal(outbox_dest_due_now(fx->ob, "https://slow.example:443", t), 0);
	n = outbox_claim_due(fx->ob, "https://fast.example:443", t, 10, &got);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].attempts, 1);
	outbox_deliveries_free(got, (size_t)n);
}

static void test_open_rejects_file_as_dir(void **state)
{
	struct fixture *fx = *state;
	char path[128];
	FILE *f;

	snprintf(path, sizeof path, "%s/file", fx->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_null(outbox_open(path, fx->err, sizeof fx->err));
	assert_non_null(strstr(fx->err, "not a directory"));
}

static void test_newer_schema_refused(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *db;

	outbox_close(open_ok(fx));
	db = raw_open(fx);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(outbox_open(fx->dir, fx->err, sizeof fx->err));
	assert_non_null(strstr(fx->err, "99"));
}

/*
 * The schema's CHECK on dead_letters.kind is written out in its migration
 * (existing databases ran it as it is); it must name exactly the kinds of
 * outbox_dead_kind_names, the program's list, in a new database.
 */
static void test_dead_kind_check_matches_table(void **state)
{
	struct fixture *fx = *state;
	const char *sql, *p, *end;
	sqlite3_stmt *st;
	sqlite3 *db;

	outbox_close(open_ok(fx));
	db = raw_open(fx);
	st = raw_query(db, "SELECT sql FROM sqlite_master WHERE name = 'dead_letters'");
	sql = (const char *)sqlite3_column_text(st, 0);
	assert_non_null(sql);
	p = strstr(sql, "CHECK (kind IN (");
	assert_non_null(p);
	p += strlen("CHECK (kind IN (");
	end = strchr(p, ')');
	assert_non_null(end);
	tu_assert_dead_kinds(p, end);
	sqlite3_finalize(st);
	sqlite3_close(db);

	for (int k = 0; k < OUTBOX_DEAD_KINDS; k++)
		assert_int_equal(outbox_dead_kind_parse(outbox_dead_kind_names[k]), k);
	assert_int_equal(outbox_dead_kind_parse("Forward"), -1);
	assert_int_equal(outbox_dead_kind_parse(NULL), -1);
}

static void test_batch_visible_from_second_connection(void **state)
{
	struct fixture *fx = *state;
	struct outbox *other;
	struct outbox_forward f1 = fwd("https://a.example/hook", "{\"events\":[1]}");
	struct outbox_forward f2 = fwd("https://a.example/other", "{\"events\":[2]}");
	struct outbox_dead d = {
		.kind = OUTBOX_DEAD_RULE_ERROR, .reason = "rules.lua:3: boom",
		.payload = "{\"x\":1}", .payload_len = 7, .request_id = "req-9",
		.event_index = 4, .target = NULL,
	};
	struct outbox_delivery *got = NULL;
	char id1[37], id2[37];
	sqlite3 *db;
	sqlite3_stmt *st;
	int n;

	fx->ob = open_ok(fx);
	other = open_ok(fx);
	f2.name = NULL;
	f2.method = "PUT";
	f2.content_type = "text/plain";
	f2.headers = NULL;

	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f1, id1), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f2, id2), 0);
	assert_int_equal(outbox_add_dead(fx->ob, &d), 0);
	d.kind = OUTBOX_DEAD_WRITE;
	d.target = "out/x.jsonl";
	d.event_index = 0;
	assert_int_equal(outbox_add_dead(fx->ob, &d), 0);
	/* Not visible to others before the commit. */
	assert_int_equal(outbox_count_pending(other), 0);
	assert_int_equal(outbox_commit(fx->ob), 0);

	assert_int_equal(outbox_count_pending(other), 2);
	assert_int_equal(outbox_count_dead(other), 2);
	assert_string_not_equal(id1, id2);

	n = outbox_claim_due(other, "https://a.example:443", now_s() + 1, 10, &got);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].delivery_id, id1);
	assert_string_equal(got[0].name, "crm");
	assert_string_equal(got[0].url, "https://a.example/hook");
	assert_string_equal(got[0].method, "POST");
	assert_null(got[0].content_type);
	assert_string_equal(got[0].headers, "X-A: 1\n");
	assert_int_equal(got[0].body_len, 14);
	assert_memory_equal(got[0].body, "{\"events\":[1]}", 14);
	assert_string_equal(got[0].request_id, "req-1");
	assert_int_equal(got[0].attempts, 0);
	assert_true(got[0].created_at > now_s() - 60 && got[0].created_at <= now_s());
	assert_string_equal(got[1].delivery_id, id2);
	assert_null(got[1].name);
	assert_string_equal(got[1].method, "PUT");
	assert_string_equal(got[1].content_type, "text/plain");
	assert_null(got[1].headers);
	outbox_deliveries_free(got, (size_t)n);
	outbox_close(other);

	db = raw_open(fx);
	st = raw_query(db, "SELECT kind, reason, payload, request_id, event_index, target"
			   " FROM dead_letters ORDER BY id");
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "rule_error");
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "rules.lua:3: boom");
	assert_int_equal(sqlite3_column_bytes(st, 2), 7);
	assert_memory_equal(sqlite3_column_blob(st, 2), "{\"x\":1}", 7);
	assert_string_equal((const char *)sqlite3_column_text(st, 3), "req-9");
	assert_int_equal(sqlite3_column_int(st, 4), 4);
	assert_int_equal(sqlite3_column_type(st, 5), SQLITE_NULL);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "write");
	assert_int_equal(sqlite3_column_type(st, 4), SQLITE_NULL);
	assert_string_equal((const char *)sqlite3_column_text(st, 5), "out/x.jsonl");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_rollback_leaves_nothing(void **state)
{
	struct fixture *fx = *state;
	struct outbox_forward f = fwd("https://a.example/", "x");
	struct outbox_dead d = { .kind = OUTBOX_DEAD_REJECTED, .reason = "not an object",
				 .payload = "7", .payload_len = 1 };

	fx->ob = open_ok(fx);
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	assert_int_equal(outbox_add_dead(fx->ob, &d), 0);
	outbox_rollback(fx->ob);
	assert_int_equal(outbox_count_pending(fx->ob), 0);
	assert_int_equal(outbox_count_dead(fx->ob), 0);

	/* Closing with a transaction open rolls it back too. */
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	outbox_close(fx->ob);
	fx->ob = open_ok(fx);
	assert_int_equal(outbox_count_pending(fx->ob), 0);

	/* Transaction misuse is reported, not ignored. */
	assert_int_equal(outbox_commit(fx->ob), -1);
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_begin(fx->ob), -1);
	assert_non_null(strstr(outbox_error(fx->ob), "already open"));
	outbox_rollback(fx->ob);
}

static void test_claim_leases_in_due_order(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	char ida[37], idb[37], idc[37];
	double t;
	int n;

	fx->ob = open_ok(fx);
	add_one(fx->ob, "https://a/", "a", ida);
	add_one(fx->ob, "https://a/b", "b", idb);
	add_one(fx->ob, "https://a/c", "c", idc);
	t = now_s();

	/* max limits the claim; insertion order breaks the tie of equal times. */
	n = outbox_claim_due(fx->ob, A_DEST, t + 1, 2, &got);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].delivery_id, ida);
	assert_string_equal(got[1].delivery_id, idb);
	outbox_deliveries_free(got, (size_t)n);
	n = outbox_claim_due(fx->ob, A_DEST, t + 1, 10, &got);
	assert_int_equal(n, 1);
	assert_string_equal(got[0].delivery_id, idc);
	int64_t c = got[0].id;
	outbox_deliveries_free(got, (size_t)n);

	/* Everything is leased now: nothing more to claim. */
	n = outbox_claim_due(fx->ob, A_DEST, t + 1000, 10, &got);
	assert_int_equal(n, 0);
	assert_null(got);

	/* Give them new due times out of insertion order. */
	assert_int_equal(outbox_release_leases(fx->ob), 0);
	n = outbox_claim_due(fx->ob, A_DEST, t + 1, 10, &got);
	assert_int_equal(n, 3);
	assert_int_equal(outbox_retry(fx->ob, got[0].id, t + 30, 503, "HTTP 503"), 0);
	assert_int_equal(outbox_retry(fx->ob, got[1].id, t + 10, 0, "connection refused"), 0);
	assert_int_equal(outbox_retry(fx->ob, c, t + 20, 429, NULL), 0);
	outbox_deliveries_free(got, (size_t)n);

	n = outbox_claim_due(fx->ob, A_DEST, t + 100, 10, &got);
	assert_int_equal(n, 3);
	assert_string_equal(got[0].delivery_id, idb);
	assert_string_equal(got[1].delivery_id, idc);
	assert_string_equal(got[2].delivery_id, ida);
	outbox_deliveries_free(got, (size_t)n);

	assert_int_equal(outbox_claim_due(fx->ob, A_DEST, t + 100, 0, &got), 0);
	assert_null(got);
}

static void test_retry_postpones_and_counts(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	double t, when;
	int64_t id;
	sqlite3 *db;
	sqlite3_stmt *st;
	int n;

	fx->ob = open_ok(fx);
	add_one(fx->ob, "https://a/", "a", NULL);
	t = now_s();
	n = outbox_claim_due(fx->ob, A_DEST, t + 1, 10, &got);
	assert_int_equal(n, 1);
	id = got[0].id;
	outbox_deliveries_free(got, (size_t)n);

	assert_int_equal(outbox_retry(fx->ob, id, t + 60, 502, "HTTP 502 Bad Gateway"), 0);
	assert_int_equal(next_due(fx->ob, &when), 1);
	assert_true(when > t + 59.99 && when < t + 60.01);
	assert_int_equal(outbox_claim_due(fx->ob, A_DEST, t + 59, 10, &got), 0);
	n = outbox_claim_due(fx->ob, A_DEST, t + 60, 10, &got);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].attempts, 1);
	outbox_deliveries_free(got, (size_t)n);

	assert_int_equal(outbox_retry(fx->ob, id, t + 120, 0, "timeout"), 0);
	db = raw_open(fx);
	st = raw_query(db, "SELECT attempts, leased, last_status, last_error FROM deliveries");
	assert_int_equal(sqlite3_column_int(st, 0), 2);
	assert_int_equal(sqlite3_column_int(st, 1), 0);
	assert_int_equal(sqlite3_column_type(st, 2), SQLITE_NULL);
	assert_string_equal((const char *)sqlite3_column_text(st, 3), "timeout");
	sqlite3_finalize(st);
	sqlite3_close(db);

	assert_int_equal(outbox_retry(fx->ob, id + 1000, t, 500, "x"), -1);
	assert_non_null(strstr(outbox_error(fx->ob), "no delivery"));
}

static void test_complete_deletes(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	int64_t id;
	int n;

	fx->ob = open_ok(fx);
	add_one(fx->ob, "https://a/", "a", NULL);
	add_one(fx->ob, "https://a/b", "b", NULL);
	n = outbox_claim_due(fx->ob, A_DEST, now_s() + 1, 1, &got);
	assert_int_equal(n, 1);
	id = got[0].id;
	outbox_deliveries_free(got, (size_t)n);
	assert_int_equal(outbox_complete(fx->ob, id), 0);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
	assert_int_equal(outbox_complete(fx->ob, id), -1);
	assert_int_equal(outbox_release_leases(fx->ob), 0);
	n = outbox_claim_due(fx->ob, A_DEST, now_s() + 1, 10, &got);
	assert_int_equal(n, 1);
	assert_int_not_equal(got[0].id, id);
	assert_string_equal(got[0].url, "https://a/b");
	outbox_deliveries_free(got, (size_t)n);
}

static void test_bury_keeps_everything(void **state)
{
	static const char body[] = "bin\0ary\0\xff\x01 body";
	struct fixture *fx = *state;
	struct outbox_forward f = fwd("https://crm.example/in", "");
	struct outbox_delivery *got = NULL;
	char id[37];
	double t;
	sqlite3 *db;
	sqlite3_stmt *st;
	int n;

	f.body = body;
	f.body_len = sizeof body - 1;
	f.request_id = "req-42";
	fx->ob = open_ok(fx);
	assert_int_equal(outbox_begin(fx->ob), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, id), 0);
	assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	assert_int_equal(outbox_commit(fx->ob), 0);
	t = now_s();

	n = outbox_claim_due(fx->ob, "https://crm.example:443", t + 1, 10, &got);
	assert_int_equal(n, 2);
	/* The body comes back byte-exact, NUL bytes included. */
	assert_int_equal(got[0].body_len, sizeof body - 1);
	assert_memory_equal(got[0].body, body, sizeof body - 1);
	assert_int_equal(outbox_retry(fx->ob, got[0].id, t, 503, "HTTP 503"), 0);
	assert_int_equal(outbox_bury(fx->ob, got[1].id, 410, NULL), 0);
	outbox_deliveries_free(got, (size_t)n);
	n = outbox_claim_due(fx->ob, "https://crm.example:443", t + 1, 10, &got);
	assert_int_equal(n, 1);
	assert_int_equal(outbox_bury(fx->ob, got[0].id, 404, "HTTP 404 Not Found"), 0);
	assert_int_equal(outbox_bury(fx->ob, got[0].id, 404, "again"), -1);
	outbox_deliveries_free(got, (size_t)n);

	assert_int_equal(outbox_count_pending(fx->ob), 0);
	assert_int_equal(outbox_count_dead(fx->ob), 2);

	db = raw_open(fx);
	st = raw_query(db, "SELECT kind, reason, payload, request_id, delivery_id, name, url,"
			   " method, headers, attempts, last_status, created_at, died_at"
			   " FROM dead_letters ORDER BY id");
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "HTTP 410");
	assert_int_equal(sqlite3_column_int(st, 9), 1);
	assert_int_equal(sqlite3_column_int(st, 10), 410);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "forward");
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "HTTP 404 Not Found");
	assert_int_equal(sqlite3_column_bytes(st, 2), sizeof body - 1);
	assert_memory_equal(sqlite3_column_blob(st, 2), body, sizeof body - 1);
	assert_string_equal((const char *)sqlite3_column_text(st, 3), "req-42");
	assert_string_equal((const char *)sqlite3_column_text(st, 4), id);
	assert_string_equal((const char *)sqlite3_column_text(st, 5), "crm");
	assert_string_equal((const char *)sqlite3_column_text(st, 6), "https://crm.example/in");
	assert_string_equal((const char *)sqlite3_column_text(st, 7), "POST");
	assert_string_equal((const char *)sqlite3_column_text(st, 8), "X-A: 1\n");
	assert_int_equal(sqlite3_column_int(st, 9), 2);
	assert_int_equal(sqlite3_column_int(st, 10), 404);
	assert_true(sqlite3_column_double(st, 11) <= sqlite3_column_double(st, 12));
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_release_leases_resumes_after_restart(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	int n;

	fx->ob = open_ok(fx);
	add_one(fx->ob, "https://a/", "a", NULL);
	add_one(fx->ob, "https://a/b", "b", NULL);
	n = outbox_claim_due(fx->ob, A_DEST, now_s() + 1, 10, &got);
	assert_int_equal(n, 2);
	outbox_deliveries_free(got, (size_t)n);

	/* "Crash" with both leased; a new delivery side forgets the leases. */
	outbox_close(fx->ob);
	fx->ob = open_ok(fx);
	assert_int_equal(outbox_claim_due(fx->ob, A_DEST, now_s() + 1, 10, &got), 0);
	assert_int_equal(outbox_release_leases(fx->ob), 0);
	n = outbox_claim_due(fx->ob, A_DEST, now_s() + 1, 10, &got);
	assert_int_equal(n, 2);
	assert_string_equal(got[0].url, "https://a/");
	assert_string_equal(got[1].body, "b");
	outbox_deliveries_free(got, (size_t)n);
}

static void test_next_due(void **state)
{
	struct fixture *fx = *state;
	struct outbox_delivery *got = NULL;
	double when = -1, t;
	int n;

	fx->ob = open_ok(fx);
	assert_int_equal(next_due(fx->ob, &when), 0);
	t = now_s();
	add_one(fx->ob, "https://a/", "a", NULL);
	assert_int_equal(next_due(fx->ob, &when), 1);
	assert_true(when >= t - 1 && when <= now_s());

	/* A leased entry is not "due" for the scheduler. */
	n = outbox_claim_due(fx->ob, A_DEST, now_s() + 1, 10, &got);
	assert_int_equal(n, 1);
	assert_int_equal(next_due(fx->ob, &when), 0);
	assert_int_equal(outbox_retry(fx->ob, got[0].id, t + 5, 500, "x"), 0);
	outbox_deliveries_free(got, (size_t)n);
	assert_int_equal(next_due(fx->ob, &when), 1);
	assert_true(when > t + 4.99 && when < t + 5.01);
}

static void test_counts_and_reopen_keep_rows(void **state)
{
	struct fixture *fx = *state;
	struct outbox_dead d = { .kind = OUTBOX_DEAD_REJECTED, .reason = "bad",
				 .payload = NULL, .payload_len = 0 };
	struct outbox_forward f = fwd("https://a/", "");
	struct outbox_delivery *got = NULL;
	int n;

	fx->ob = open_ok(fx);
	assert_int_equal(outbox_count_pending(fx->ob), 0);
	assert_int_equal(outbox_count_dead(fx->ob), 0);
	f.body = NULL;
	f.body_len = 0;
	assert_int_equal(outbox_begin(fx->ob), 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(outbox_add_forward(fx->ob, &f, NULL), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(outbox_add_dead(fx->ob, &d), 0);
	d.kind = (enum outbox_dead_kind)42;
	assert_int_equal(outbox_add_dead(fx->ob, &d), -1);
	assert_int_equal(outbox_commit(fx->ob), 0);
	assert_int_equal(outbox_count_pending(fx->ob), 5);
	assert_int_equal(outbox_count_dead(fx->ob), 3);
	outbox_close(fx->ob);

	fx->ob = open_ok(fx);
	assert_int_equal(outbox_count_pending(fx->ob), 5);
	assert_int_equal(outbox_count_dead(fx->ob), 3);
	/* An empty body is an empty blob, not NULL. */
	n = outbox_claim_due(fx->ob, A_DEST, now_s() + 1, 1, &got);
	assert_int_equal(n, 1);
	assert_int_equal(got[0].body_len, 0);
	assert_string_equal(got[0].body, "");
	outbox_deliveries_free(got, (size_t)n);
}

#define WRITER_BATCHES 200

struct writer {
	const char *dir;
	int failures;
	char ids[WRITER_BATCHES * 2][37];
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char err[256];
	struct outbox *ob = outbox_open(w->dir, err, sizeof err);
	struct outbox_forward f = {
		.url = "https://a/", .method = "POST", .body = "{}", .body_len = 2,
	};
	struct outbox_dead d = { .kind = OUTBOX_DEAD_RULE_ERROR, .reason = "e",
				 .payload = "{}", .payload_len = 2, .event_index = 1 };

	if (!ob) {
		w->failures = WRITER_BATCHES;
		return NULL;
	}
	for (int i = 0; i < WRITER_BATCHES; i++) {
		if (outbox_begin(ob) != 0 || outbox_add_forward(ob, &f, w->ids[2 * i]) != 0 ||
		    outbox_add_forward(ob, &f, w->ids[2 * i + 1]) != 0 ||
		    outbox_add_dead(ob, &d) != 0 || outbox_commit(ob) != 0) {
			w->failures++;
			outbox_rollback(ob);
		}
	}
	outbox_close(ob);
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void test_concurrent_writers_lose_nothing(void **state)
{
	struct fixture *fx = *state;
	struct writer *w = calloc(2, sizeof *w);
	pthread_t th[2];
	char (*all)[37];

	assert_non_null(w);
	/* Created first so both threads race on the batches, not the schema. */
	fx->ob = open_ok(fx);
	for (int i = 0; i < 2; i++) {
		w[i].dir = fx->dir;
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(w[0].failures, 0);
	assert_int_equal(w[1].failures, 0);
	assert_int_equal(outbox_count_pending(fx->ob), 4 * WRITER_BATCHES);
	assert_int_equal(outbox_count_dead(fx->ob), 2 * WRITER_BATCHES);

	/* Every delivery id is UUID-shaped and unique. */
	all = malloc(sizeof w[0].ids * 2);
	assert_non_null(all);
	memcpy(all, w[0].ids, sizeof w[0].ids);
	memcpy(all + 2 * WRITER_BATCHES, w[1].ids, sizeof w[1].ids);
	qsort(all, 4 * WRITER_BATCHES, sizeof all[0], cmp_id);
	for (int i = 0; i < 4 * WRITER_BATCHES; i++) {
		assert_true(is_uuid4(all[i]));
		if (i > 0)
			assert_string_not_equal(all[i - 1], all[i]);
	}
	free(all);
	free(w);
}

static void test_concurrent_first_open(void **state)
{
	enum { N = 4 };
	struct fixture *fx = *state;
	struct writer *w = calloc(N, sizeof *w);
	pthread_t th[N];
	int failures = 0;

	/* Connections creating the same fresh database at once: the switch to
	 * WAL does not wait for the busy timeout by itself. */
	assert_non_null(w);
	for (int i = 0; i < N; i++) {
		w[i].dir = fx->dir;
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		failures += w[i].failures;
	}
	assert_int_equal(failures, 0);
	fx->ob = open_ok(fx);
	assert_int_equal(outbox_count_pending(fx->ob), N * 2 * WRITER_BATCHES);
	free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_version_1_database_is_upgraded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_scan_and_due_now_are_per_destination, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open_creates_wal_db, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_rejects_file_as_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_kind_check_matches_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_visible_from_second_connection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_leases_in_due_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_postpones_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_complete_deletes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bury_keeps_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release_leases_resumes_after_restart, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_next_due, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counts_and_reopen_keep_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers_lose_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
