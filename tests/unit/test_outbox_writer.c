/*
 * test_outbox_writer.c — group commit: many workers' batches share
 * transactions, each batch is all-or-nothing, and a failing batch takes no
 * other batch down with it. Real SQLite file in a temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "outbox.h"
#include "outbox_writer.h"

#define THREADS 8
#define BATCHES 50
#define ROWS 3

struct fx {
	char dir[64];
	struct outbox_writer *w;
};

struct batch_arg {
	const char *request_id;
	int fail_after;         /* add this many rows, then fail; -1 = never */
	int rows;
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof *fx);
	char err[256];

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_outbox_writer.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->w = outbox_writer_start(fx->dir, err, sizeof err);
	if (!fx->w)
		fail_msg("outbox_writer_start: %s", err);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;

	outbox_writer_stop(fx->w);
	tu_rmtree(fx->dir);
	free(fx);
	return 0;
}

static int fill(struct outbox *ob, void *arg)
{
	struct batch_arg *b = arg;

	for (int i = 0; i < b->rows; i++) {
		struct outbox_forward f = {
			.url = "http://127.0.0.1:9/x", .method = "POST",
			.body = "{}", .body_len = 2, .request_id = b->request_id,
		};

		if (b->fail_after == i)
			return -1;
		if (outbox_add_forward(ob, &f, NULL) != 0)
			return -1;
	}
	return 0;
}

/* Rows stored for a request id, read through a connection of the test's own. */
static long rows_for(struct fx *fx, const char *request_id)
{
	char path[128];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long n = -1;

	snprintf(path, sizeof path, "%s/outbox.db", fx->dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, request_id ?
		"SELECT count(*) FROM deliveries WHERE request_id = ?" :
		"SELECT count(*) FROM deliveries", -1, &st, NULL), SQLITE_OK);
	if (request_id)
		sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

struct worker {
	struct fx *fx;
	int id;
	int failures;
};

/* Every third batch of odd workers fails after one row. */
static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	char rid[32], err[256];

	for (int i = 0; i < BATCHES; i++) {
		int bad = (wk->id % 2) && i % 3 == 0;
		struct batch_arg b = { .request_id = rid, .fail_after = bad ? 1 : -1, .rows = ROWS };

		snprintf(rid, sizeof rid, "w%d-b%d", wk->id, i);
		if (outbox_writer_commit(wk->fx->w, fill, &b, err, sizeof err) != 0)
			wk->failures++;
	}
	return NULL;
}

static void test_concurrent_batches_all_or_nothing(void **state)
{
	struct fx *fx = *state;
	pthread_t t[THREADS];
	struct worker wk[THREADS];
	long expected_failures = 0, failures = 0;
	char rid[32];

	for (int i = 0; i < THREADS; i++) {
		wk[i] = (struct worker){ .fx = fx, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &wk[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		failures += wk[i].failures;
	}
	for (int id = 0; id < THREADS; id++)
		for (int i = 0; i < BATCHES; i++) {
			int bad = (id % 2) && i % 3 == 0;

			snprintf(rid, sizeof rid, "w%d-b%d", id, i);
			assert_int_equal(rows_for(fx, rid), bad ? 0 : ROWS);
			expected_failures += bad;
		}
	assert_int_equal(failures, expected_failures);
	assert_int_equal(rows_for(fx, NULL), (THREADS * BATCHES - expected_failures) * ROWS);
}

static void test_failed_batch_reports_error(void **state)
{
	struct fx *fx = *state;
	struct batch_arg ok = { .request_id = "ok", .fail_after = -1, .rows = 2 };
	struct batch_arg bad = { .request_id = "bad", .fail_after = 0, .rows = 2 };
	char err[256] = "";

	assert_int_equal(outbox_writer_commit(fx->w, fill, &bad, err, sizeof err), -1);
	assert_true(strncmp(err, "outbox:", 7) == 0);
	assert_int_equal(outbox_writer_commit(fx->w, fill, &ok, err, sizeof err), 0);
	assert_int_equal(rows_for(fx, "ok"), 2);
	assert_int_equal(rows_for(fx, "bad"), 0);
}

static void test_commit_fails_when_database_breaks(void **state)
{
	struct fx *fx = *state;
	struct batch_arg b = { .request_id = "x", .fail_after = -1, .rows = 1 };
	char path[128], err[256] = "";
	sqlite3 *db = NULL;

	snprintf(path, sizeof path, "%s/outbox.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE deliveries", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(outbox_writer_commit(fx->w, fill, &b, err, sizeof err), -1);
	assert_non_null(strstr(err, "deliveries"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_batches_all_or_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_batch_reports_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_fails_when_database_breaks, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
