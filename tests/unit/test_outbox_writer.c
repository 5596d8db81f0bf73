/*
 * test_outbox_writer.c — group commit: many workers' batches share
 * transactions, each batch is all-or-nothing, and a failing batch takes no
 * other batch down with it; files named by batches are flushed once per
 * file per group (the writer's own counters) and a file that cannot be
 * flushed fails its batch. Real SQLite file in a temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

/* A fill that holds the writer thread inside its group until opened. */
struct gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int entered, open;
};

static int gated_fill(struct outbox *ob, void *arg)
{
	struct gate *g = arg;

	(void)ob;
	pthread_mutex_lock(&g->mu);
	g->entered = 1;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
	return 0;
}

struct file_job {
	struct fx *fx;
	int (*fill)(struct outbox *ob, void *arg);
	void *arg;
	const struct outbox_writer_file *files;
	size_t nfiles;
	int rc;
	char err[256];
};

static void *file_job_main(void *arg)
{
	struct file_job *j = arg;

	j->rc = outbox_writer_commit_files(j->fx->w, j->fill, j->arg, j->files, j->nfiles, j->err,
					   sizeof j->err);
	return NULL;
}

/* A file in the test directory, opened for appending, with its identity. */
static struct outbox_writer_file open_file(struct fx *fx, const char *name)
{
	char path[128];
	struct stat st;
	int fd;

	snprintf(path, sizeof path, "%s/%s", fx->dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "line\n", 5), 5);
	assert_int_equal(fstat(fd, &st), 0);
	return (struct outbox_writer_file){ .fd = fd, .dev = st.st_dev, .ino = st.st_ino,
					    .name = name };
}

/* Waits (bounded) until n batches are queued behind the running group. */
static void wait_queued(struct fx *fx, unsigned long n)
{
	struct outbox_writer_stats st;
	struct timespec ts = { 0, 1000 * 1000 };

	for (int i = 0; i < 10000; i++) {
		outbox_writer_stats(fx->w, &st);
		if (st.queued == n)
			return;
		nanosleep(&ts, NULL);
	}
	fail_msg("%lu batches queued after 10 s, expected %lu", st.queued, n);
}

static void test_files_synced_once_per_group(void **state)
{
	struct fx *fx = *state;
	struct gate g = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct outbox_writer_file x1 = open_file(fx, "x.log"), y = open_file(fx, "y.log");
	struct outbox_writer_file x2 = open_file(fx, "x.log");   /* another worker's descriptor */
	struct outbox_writer_file b_files[] = { x1 }, c_files[] = { x2, y };
	struct batch_arg rows = { .request_id = "c", .fail_after = -1, .rows = 2 };
	struct file_job a = { .fx = fx, .fill = gated_fill, .arg = &g };
	struct file_job b = { .fx = fx, .files = b_files, .nfiles = 1 };   /* lines, no rows */
	struct file_job c = { .fx = fx, .fill = fill, .arg = &rows, .files = c_files, .nfiles = 2 };
	struct outbox_writer_stats before, after;
	struct timespec deadline;
	pthread_t ta, tb, tc;

	/* a holds the writer in its group while b and c queue for the next one */
	assert_int_equal(pthread_create(&ta, NULL, file_job_main, &a), 0);
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &deadline), 0);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&g.mu);
	while (!g.entered && pthread_cond_timedwait(&g.cv, &g.mu, &deadline) == 0)
		;
	pthread_mutex_unlock(&g.mu);
	if (!g.entered)
		fail_msg("the writer did not run the first batch within 10 s");
	assert_int_equal(pthread_create(&tb, NULL, file_job_main, &b), 0);
	assert_int_equal(pthread_create(&tc, NULL, file_job_main, &c), 0);
	wait_queued(fx, 2);
	outbox_writer_stats(fx->w, &before);
	pthread_mutex_lock(&g.mu);
	g.open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	assert_int_equal(pthread_join(tc, NULL), 0);
	assert_int_equal(a.rc, 0);
	assert_int_equal(b.rc, 0);
	assert_int_equal(c.rc, 0);
	outbox_writer_stats(fx->w, &after);
	/* one group for b and c, and in it x.log flushed once (not twice) and y.log once */
	assert_int_equal(before.groups, 0);
	assert_int_equal(after.groups, 2);
	assert_int_equal(after.file_syncs - before.file_syncs, 2);
	assert_int_equal(after.queued, 0);
	assert_int_equal(rows_for(fx, "c"), 2);
	close(x1.fd);
	close(x2.fd);
	close(y.fd);
}

static void test_file_that_cannot_sync_fails_its_batch(void **state)
{
	struct fx *fx = *state;
	struct batch_arg rows = { .request_id = "unsynced", .fail_after = -1, .rows = 2 };
	struct batch_arg ok_rows = { .request_id = "synced", .fail_after = -1, .rows = 1 };
	struct outbox_writer_file good = open_file(fx, "good.log"), bad;
	struct stat st;
	char err[256] = "";
	int p[2];

	/* a pipe cannot be fdatasync'ed (EINVAL): a real failure, not a mock */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(fstat(p[1], &st), 0);
	bad = (struct outbox_writer_file){ .fd = p[1], .dev = st.st_dev, .ino = st.st_ino,
					   .name = "pipe.log" };
	assert_int_equal(outbox_writer_commit_files(fx->w, fill, &rows, &bad, 1, err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "cannot sync pipe.log"));
	assert_int_equal(rows_for(fx, "unsynced"), 0);
	/* the writer goes on: a good file and its rows */
	assert_int_equal(outbox_writer_commit_files(fx->w, fill, &ok_rows, &good, 1, err,
						    sizeof err), 0);
	assert_int_equal(rows_for(fx, "synced"), 1);
	/* files only, no rows: no transaction needed, still flushed */
	assert_int_equal(outbox_writer_commit_files(fx->w, NULL, NULL, &good, 1, err, sizeof err),
			 0);
	assert_int_equal(outbox_writer_commit_files(fx->w, NULL, NULL, &bad, 1, err, sizeof err),
			 -1);
	close(p[0]);
	close(p[1]);
	close(good.fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_concurrent_batches_all_or_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_batch_reports_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_fails_when_database_breaks, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_files_synced_once_per_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_that_cannot_sync_fails_its_batch, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
