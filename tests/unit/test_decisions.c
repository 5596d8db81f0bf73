/*
 * test_decisions.c — the decision list and decisions_commit against a real
 * outbox (SQLite in a mkdtemp() data dir, read back with sqlite3 directly)
 * and a real sink (files under a mkdtemp() output_dir): merging of default
 * forwards, custom bodies, dead letters, write lines, refused writes,
 * write_sync = batch through the group committer, storage failures and the
 * summary.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include "decisions.h"
#include "batch.h"
#include "outbox.h"
#include "outbox_writer.h"
#include "sink_file.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define URL_A "https://a.example/hook"
#define URL_B "http://b.example:8080/in"

struct fixture {
	char root[64];
	char data[128], out[128], outside[128];
	char err[512];
	struct outbox_writer *writer;
	struct sink_file *sink;
	struct decisions a;
	struct batch b;
	char *body;          /* the batch body the spans point into */
	size_t body_len;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	strcpy(f->root, "/tmp/test_decisions.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->data, sizeof f->data, "%s/data", f->root);
	snprintf(f->out, sizeof f->out, "%s/out", f->root);
	snprintf(f->outside, sizeof f->outside, "%s/outside", f->root);
	assert_int_equal(mkdir(f->outside, 0700), 0);
	f->writer = outbox_writer_start(f->data, f->err, sizeof f->err);
	if (!f->writer)
		fail_msg("outbox_writer_start: %s", f->err);
	f->sink = sink_file_open(f->out, SINK_SYNC_NONE, f->err, sizeof f->err);
	if (!f->sink)
		fail_msg("sink_file_open: %s", f->err);
	decisions_init(&f->a);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	decisions_free(&f->a);
	batch_free(&f->b);
	outbox_writer_stop(f->writer);
	sink_file_close(f->sink);
	free(f->body);
	tu_rmtree(f->root);
	free(f);
	return 0;
}

static void parse_text(struct fixture *f, const char *text)
{
	free(f->body);
	f->body_len = strlen(text);
	f->body = decisions_strndup(text, f->body_len);
	assert_non_null(f->body);
	if (batch_parse(&f->b, f->body, f->body_len, 1000, NULL, NULL, f->err, sizeof f->err) != 0)
		fail_msg("batch_parse: %s", f->err);
}

/* tests/fixtures/batch-example.json: two pretty-printed events. */
static void parse_fixture(struct fixture *f)
{
	free(f->body);
	f->body = tu_read_file("tests/fixtures/batch-example.json", &f->body_len);
	assert_non_null(f->body);
	if (batch_parse(&f->b, f->body, f->body_len, 1000, NULL, NULL, f->err, sizeof f->err) != 0)
		fail_msg("batch_parse: %s", f->err);
	assert_int_equal(f->b.count, 2);
}

static char *dup_or_null(const char *s)
{
	char *p;

	if (!s)
		return NULL;
	p = decisions_strndup(s, strlen(s));
	assert_non_null(p);
	return p;
}

static struct decision *push(struct fixture *f, enum decision_kind kind, size_t ev, const char *target,
			   const char *text)
{
	struct decision *it = decisions_push(&f->a, kind, ev);

	assert_non_null(it);
	it->target = dup_or_null(target);
	it->body = dup_or_null(text);   /* body/line/reason/error: one union */
	it->len = text ? strlen(text) : 0;
	return it;
}

static struct decision *push_forward(struct fixture *f, size_t ev, const char *url, const char *body)
{
	struct decision *it = push(f, DECISION_FORWARD, ev, url, body);

	it->method = dup_or_null("POST");
	return it;
}

static int commit(struct fixture *f, struct decisions_summary *sum)
{
	struct decisions_commit_env env = {
		.body = f->body,
		.batch = &f->b,
		.writer = f->writer,
		.sink = f->sink,
		.request_id = "req-1",
	};

	return decisions_commit(&f->a, &env, sum, f->err, sizeof f->err);
}

/* Rows of a query read with a connection of the test's own. */
struct rows {
	size_t n;
	char *col[64][4];
	size_t len[64][4];
};

static void query(struct fixture *f, const char *sql, struct rows *r)
{
	char path[256];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	memset(r, 0, sizeof *r);
	snprintf(path, sizeof path, "%s/outbox.db", f->data);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		assert_true(r->n < 64);
		for (int c = 0; c < sqlite3_column_count(st) && c < 4; c++) {
			const void *p = sqlite3_column_blob(st, c);
			size_t len = (size_t)sqlite3_column_bytes(st, c);

			r->col[r->n][c] = p ? decisions_strndup(p, len) : NULL;
			r->len[r->n][c] = len;
		}
		r->n++;
	}
	assert_int_equal(rc, SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void rows_free(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		for (int c = 0; c < 4; c++)
			free(r->col[i][c]);
	r->n = 0;
}

static void exec_sql(struct fixture *f, const char *sql)
{
	char path[256];
	sqlite3 *db = NULL;

	snprintf(path, sizeof path, "%s/outbox.db", f->data);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static long count(struct fixture *f, const char *table)
{
	char sql[128];
	struct rows r;
	long n;

	snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
	query(f, sql, &r);
	n = atol(r.col[0][0]);
	rows_free(&r);
	return n;
}

/* {"events":[ + the original bytes of the listed events + ]} */
static char *merged(struct fixture *f, const size_t *evs, size_t n)
{
	size_t cap = 32, len;
	char *s;

	for (size_t i = 0; i < n; i++)
		cap += f->b.events[evs[i]].end - f->b.events[evs[i]].start + 1;
	s = malloc(cap);
	assert_non_null(s);
	strcpy(s, "{\"events\":[");
	len = strlen(s);
	for (size_t i = 0; i < n; i++) {
		const struct batch_event *e = &f->b.events[evs[i]];

		if (i)
			s[len++] = ',';
		memcpy(s + len, f->body + e->start, e->end - e->start);
		len += e->end - e->start;
	}
	strcpy(s + len, "]}");
	return s;
}

static void test_default_forwards_merged(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;
	struct rows r;
	char *want;

	parse_fixture(f);
	push_forward(f, 0, URL_A, NULL);
	push_forward(f, 0, URL_B, NULL);
	push_forward(f, 1, URL_A, NULL);
	push_forward(f, 1, URL_A, "{\"custom\":true}");
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(sum.forwards, 3);
	assert_int_equal(sum.writes, 0);
	assert_int_equal(sum.drops, 0);
	assert_int_equal(sum.dead_letters, 0);

	query(f, "SELECT body, url, method, request_id FROM deliveries ORDER BY id", &r);
	assert_int_equal(r.n, 3);
	/* the original, pretty-printed bytes, not a re-encoding or compaction */
	want = merged(f, (size_t[]){ 0, 1 }, 2);
	assert_non_null(strstr(want, "\n      \"action\": \"email_send\""));
	assert_string_equal(r.col[0][0], want);
	assert_string_equal(r.col[0][1], URL_A);
	free(want);
	want = merged(f, (size_t[]){ 0 }, 1);
	assert_string_equal(r.col[1][0], want);
	assert_string_equal(r.col[1][1], URL_B);
	free(want);
	assert_string_equal(r.col[2][0], "{\"custom\":true}");
	assert_string_equal(r.col[2][1], URL_A);
	assert_string_equal(r.col[2][2], "POST");
	assert_string_equal(r.col[2][3], "req-1");
	rows_free(&r);
	assert_int_equal(count(f, "dead_letters"), 0);
}

static const char *FOUR =
	"{\"events\":[{\"action\":\"a\",\"n\":0} , {\"action\":\"b\",\"n\":1},"
	"\n {\"action\":\"c\", \"n\":2},{\"action\":\"d\",\"n\":3}]}";

static void test_groups_order_and_duplicates(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;
	struct rows r;
	struct decision *it;
	char *want;

	parse_text(f, FOUR);
	assert_int_equal(f->b.count, 4);
	/* decisions out of batch order, one event forwarded twice to A */
	push_forward(f, 2, URL_A, NULL);
	push_forward(f, 0, URL_A, NULL);
	push_forward(f, 0, URL_A, NULL);
	it = push_forward(f, 3, URL_A, NULL);
	it->headers = dup_or_null("X-Tenant: 7\n");
	it = push_forward(f, 3, URL_A, NULL);
	free(it->method);
	it->method = dup_or_null("PUT");
	it = push_forward(f, 2, URL_A, NULL);
	free(it->method);
	it->method = NULL;               /* NULL method is POST: same as group A */
	it = push_forward(f, 0, URL_A, NULL);
	it->name = dup_or_null("crm");
	push(f, DECISION_DROP, 1, NULL, "not interesting");
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(sum.forwards, 4);
	assert_int_equal(sum.drops, 1);

	query(f, "SELECT body, method, headers, name FROM deliveries ORDER BY id", &r);
	assert_int_equal(r.n, 4);
	want = merged(f, (size_t[]){ 0, 2 }, 2);
	assert_string_equal(r.col[0][0], want);
	assert_string_equal(r.col[0][0],
			    "{\"events\":[{\"action\":\"a\",\"n\":0},{\"action\":\"c\", \"n\":2}]}");
	free(want);
	assert_null(r.col[0][2]);
	assert_string_equal(r.col[1][0], "{\"events\":[{\"action\":\"d\",\"n\":3}]}");
	assert_string_equal(r.col[1][2], "X-Tenant: 7\n");
	assert_string_equal(r.col[2][1], "PUT");
	assert_string_equal(r.col[2][0], "{\"events\":[{\"action\":\"d\",\"n\":3}]}");
	assert_string_equal(r.col[3][3], "crm");
	assert_string_equal(r.col[3][0], "{\"events\":[{\"action\":\"a\",\"n\":0}]}");
	rows_free(&r);
}

static void test_dead_letters(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;
	struct rows r;

	parse_text(f, "{\"events\":[42, {\"action\":\"a\"}, {\"no\":\"action\"},"
		      " {\"action\": \"b\",\n \"x\": [1, 2]}]}");
	assert_int_equal(f->b.count, 4);
	assert_non_null(f->b.events[0].reject);
	assert_non_null(f->b.events[2].reject);
	push(f, DECISION_REJECT, 0, NULL, f->b.events[0].reject);
	push(f, DECISION_REJECT, 2, NULL, f->b.events[2].reject);
	push(f, DECISION_ERROR, 3, NULL, "rules.lua:3: attempt to index a nil value");
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(sum.dead_letters, 3);
	assert_int_equal(sum.forwards, 0);
	assert_int_equal(sum.drops, 1);        /* event 1: routable, no decision */
	assert_int_equal(count(f, "deliveries"), 0);

	query(f, "SELECT kind, reason, payload, event_index FROM dead_letters ORDER BY id", &r);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.col[0][0], "rejected");
	assert_string_equal(r.col[0][2], "42");
	assert_string_equal(r.col[0][3], "1");
	assert_string_equal(r.col[1][0], "rejected");
	assert_string_equal(r.col[1][2], "{\"no\":\"action\"}");
	assert_string_equal(r.col[2][0], "rule_error");
	assert_string_equal(r.col[2][1], "rules.lua:3: attempt to index a nil value");
	assert_string_equal(r.col[2][2], "{\"action\": \"b\",\n \"x\": [1, 2]}");
	assert_string_equal(r.col[2][3], "4");
	rows_free(&r);
}

static const char *EVENT0_COMPACT =
	"{\"action\":\"email_send\",\"action_date\":631152000,\"action_data\":"
	"{\"messageHash\":\"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\"},\"list_id\":\"1\",\"contact\":"
	"{\"base\":[\"a1a1a1a1a1\"],\"fields\":[{\"uid\":\"a1a1a1a1a1\",\"email\":"
	"\"john_doe@email.com\",\"cellphone\":\"999-999999999\",\"name\":\"John\","
	"\"last_name\":\"Doe\"}]}}";

static void test_writes_without_outbox(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;
	struct decisions_commit_env env;
	char path[256], want[1024];
	char *got;

	parse_fixture(f);
	push(f, DECISION_WRITE, 0, "events/all.jsonl", NULL);
	push(f, DECISION_WRITE, 1, "events/all.jsonl", "{\"custom\":\"line\"}");
	push(f, DECISION_DROP, 1, NULL, "also dropped");   /* a write counts: not a drop */
	/* only writes: no outbox needed (dry run of forwards) */
	env = (struct decisions_commit_env){ .body = f->body, .batch = &f->b, .sink = f->sink };
	assert_int_equal(decisions_commit(&f->a, &env, &sum, f->err, sizeof f->err), 0);
	assert_int_equal(sum.writes, 2);
	assert_int_equal(sum.drops, 0);
	assert_int_equal(sum.forwards, 0);
	snprintf(path, sizeof path, "%s/events/all.jsonl", f->out);
	got = tu_read_file(path, NULL);
	assert_non_null(got);
	snprintf(want, sizeof want, "%s\n{\"custom\":\"line\"}\n", EVENT0_COMPACT);
	assert_string_equal(got, want);
	free(got);
	assert_int_equal(count(f, "deliveries") + count(f, "dead_letters"), 0);
}

static void test_refused_write_is_dead_letter(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;
	char path[256];
	struct rows r;
	char *got;

	parse_fixture(f);
	snprintf(path, sizeof path, "%s/evil", f->out);
	assert_int_equal(symlink(f->outside, path), 0);
	push(f, DECISION_WRITE, 0, "evil/x.log", NULL);
	push_forward(f, 1, URL_A, NULL);
	push(f, DECISION_WRITE, 1, "ok.log", "fine");
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(sum.writes, 1);
	assert_int_equal(sum.dead_letters, 1);
	assert_int_equal(sum.forwards, 1);
	assert_int_equal(sum.drops, 0);

	snprintf(path, sizeof path, "%s/x.log", f->outside);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof path, "%s/ok.log", f->out);
	got = tu_read_file(path, NULL);
	assert_string_equal(got, "fine\n");
	free(got);
	query(f, "SELECT kind, reason, payload, target FROM dead_letters", &r);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.col[0][0], "write");
	assert_non_null(strstr(r.col[0][1], "symlink"));
	assert_string_equal(r.col[0][2], EVENT0_COMPACT);
	assert_string_equal(r.col[0][3], "evil/x.log");
	rows_free(&r);
	assert_int_equal(count(f, "deliveries"), 1);
}

static void test_outbox_failure_commits_nothing(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;

	parse_fixture(f);
	push(f, DECISION_ERROR, 0, NULL, "boom");
	push_forward(f, 1, URL_A, NULL);
	exec_sql(f, "DROP TABLE deliveries");
	f->err[0] = '\0';
	assert_int_equal(commit(f, &sum), -1);
	assert_non_null(strstr(f->err, "deliveries"));
	assert_int_equal(sum.dead_letters + sum.forwards, 0);
	assert_int_equal(count(f, "dead_letters"), 0);

	/* the other order: the forward is in the transaction when the dead letter fails */
	decisions_clear(&f->a);
	push_forward(f, 0, URL_A, NULL);
	push(f, DECISION_ERROR, 1, NULL, "boom");
	exec_sql(f, "ALTER TABLE dead_letters RENAME TO gone;"
		    "CREATE TABLE deliveries(id INTEGER PRIMARY KEY, delivery_id TEXT, name TEXT,"
		    " url TEXT, method TEXT, content_type TEXT, headers TEXT, body BLOB,"
		    " request_id TEXT, created_at REAL, next_attempt_at REAL,"
		    " attempts INTEGER DEFAULT 0, leased INTEGER DEFAULT 0, last_status INTEGER,"
		    " last_error TEXT, dest TEXT, hop INTEGER DEFAULT 0)");
	assert_int_equal(commit(f, &sum), -1);
	assert_non_null(strstr(f->err, "dead_letters"));
	assert_int_equal(count(f, "deliveries"), 0);
	/* the writer is usable again: no transaction left open */
	exec_sql(f, "ALTER TABLE gone RENAME TO dead_letters");
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(count(f, "deliveries"), 1);
	assert_int_equal(count(f, "dead_letters"), 1);
}

static void test_storage_and_env_errors(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;
	struct decisions_commit_env env;
	char longname[300], path[600];

	parse_fixture(f);
	/* a system-level open failure (no descriptor left) fails the batch
	 * before the outbox is touched */
	struct rlimit saved, low;

	push_forward(f, 0, URL_A, NULL);
	push(f, DECISION_WRITE, 1, "new.log", NULL);
	f->err[0] = '\0';
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int rc = commit(f, &sum);

	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(rc, -1);
	assert_true(f->err[0] != '\0');
	assert_int_equal(count(f, "deliveries"), 0);

	/* a name the file system refuses (over NAME_MAX) is the event's own
	 * failure: a write dead letter, and the rest of the batch commits */
	decisions_clear(&f->a);
	memset(longname, 'n', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	push_forward(f, 0, URL_A, NULL);
	push(f, DECISION_WRITE, 1, longname, NULL);
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(count(f, "deliveries"), 1);
	assert_int_equal(count(f, "dead_letters"), 1);
	decisions_clear(&f->a);
	exec_sql(f, "DELETE FROM deliveries; DELETE FROM dead_letters;");

	/* no sink with a write, no outbox with a forward: refused, nothing done */
	decisions_clear(&f->a);
	push(f, DECISION_WRITE, 0, "w.log", NULL);
	env = (struct decisions_commit_env){ .body = f->body, .batch = &f->b, .writer = f->writer };
	assert_int_equal(decisions_commit(&f->a, &env, &sum, f->err, sizeof f->err), -1);
	push_forward(f, 1, URL_A, NULL);
	env = (struct decisions_commit_env){ .body = f->body, .batch = &f->b, .sink = f->sink };
	assert_int_equal(decisions_commit(&f->a, &env, &sum, f->err, sizeof f->err), -1);
	snprintf(path, sizeof path, "%s/w.log", f->out);
	assert_int_equal(access(path, F_OK), -1);

	/* a decision for an event the batch does not have */
	decisions_clear(&f->a);
	push(f, DECISION_ERROR, 2, NULL, "x");
	assert_int_equal(commit(f, &sum), -1);
	assert_int_equal(count(f, "dead_letters"), 0);

	/* nothing decided at all: every routable event is a drop */
	decisions_clear(&f->a);
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(sum.drops, 2);
}

/* write_sync = batch: the files go through the group committer, flushed once each. */
static void test_write_sync_batch(void **state)
{
	struct fixture *f = *state;
	struct outbox_writer_stats s0, s1;
	struct decisions_summary sum;
	struct decisions_commit_env env;
	char path[256];
	char *got;

	parse_fixture(f);
	/* without write_sync a batch of lines alone never reaches the writer */
	push(f, DECISION_WRITE, 0, "plain.log", "p");
	outbox_writer_stats(f->writer, &s0);
	assert_int_equal(commit(f, &sum), 0);
	outbox_writer_stats(f->writer, &s1);
	assert_int_equal(s1.groups, s0.groups);

	/* lines only: one group, each file flushed once however many lines it got */
	decisions_clear(&f->a);
	push(f, DECISION_WRITE, 0, "synced/a.log", "a1");
	push(f, DECISION_WRITE, 1, "synced/a.log", "a2");
	push(f, DECISION_WRITE, 1, "synced/b.log", "b1");
	env = (struct decisions_commit_env){ .body = f->body, .batch = &f->b, .writer = f->writer,
					   .sink = f->sink, .write_sync = 1 };
	outbox_writer_stats(f->writer, &s0);
	assert_int_equal(decisions_commit(&f->a, &env, &sum, f->err, sizeof f->err), 0);
	outbox_writer_stats(f->writer, &s1);
	assert_int_equal(sum.writes, 3);
	assert_int_equal(s1.groups - s0.groups, 1);
	assert_int_equal(s1.file_syncs - s0.file_syncs, 2);
	snprintf(path, sizeof path, "%s/synced/a.log", f->out);
	got = tu_read_file(path, NULL);
	assert_string_equal(got, "a1\na2\n");
	free(got);
	assert_int_equal(count(f, "deliveries") + count(f, "dead_letters"), 0);

	/* lines and rows: the same single group */
	push_forward(f, 0, URL_A, NULL);
	outbox_writer_stats(f->writer, &s0);
	assert_int_equal(decisions_commit(&f->a, &env, &sum, f->err, sizeof f->err), 0);
	outbox_writer_stats(f->writer, &s1);
	assert_int_equal(s1.groups - s0.groups, 1);
	assert_int_equal(s1.file_syncs - s0.file_syncs, 2);
	assert_int_equal(count(f, "deliveries"), 1);
	got = tu_read_file(path, NULL);
	assert_string_equal(got, "a1\na2\na1\na2\n");
	free(got);

	/* no group committer (tools): synced here, same result */
	decisions_clear(&f->a);
	push(f, DECISION_WRITE, 0, "synced/a.log", "a3");
	env.writer = NULL;
	assert_int_equal(decisions_commit(&f->a, &env, &sum, f->err, sizeof f->err), 0);
	got = tu_read_file(path, NULL);
	assert_string_equal(got, "a1\na2\na1\na2\na3\n");
	free(got);
}

static void test_commit_speed(void **state)
{
	struct fixture *f = *state;
	struct decisions_summary sum;
	struct timespec t0, t1;
	char *text, *p;
	const size_t n = 100;
	double us;
	struct rows r;

	text = malloc(n * 400 + 64);
	assert_non_null(text);
	p = text + sprintf(text, "{\"events\":[");
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s{\"action\":\"email_send\",\"action_date\":631152000,\"i\":%zu,"
			     "\"contact\":{\"fields\":[{\"email\":\"john_doe@email.com\"}]}}",
			     i ? "," : "", i);
	strcpy(p, "]}");
	parse_text(f, text);
	free(text);
	assert_int_equal(f->b.count, n);
	for (size_t i = 0; i < n; i++) {
		push_forward(f, i, i % 3 ? URL_A : URL_B, NULL);
		if (i % 10 == 0)
			push(f, DECISION_WRITE, i, "speed.log", NULL);
	}
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	assert_int_equal(commit(f, &sum), 0);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3;
	print_message("commit of %zu events (2 merged forwards, 10 writes): %.0f us, %.2f us/event\n",
		      n, us, us / (double)n);
	assert_int_equal(sum.forwards, 2);
	assert_int_equal(sum.writes, 10);
	query(f, "SELECT length(body) FROM deliveries ORDER BY id", &r);
	assert_int_equal(r.n, 2);
	rows_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_default_forwards_merged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_groups_order_and_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dead_letters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writes_without_outbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_write_is_dead_letter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_failure_commits_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storage_and_env_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_sync_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_speed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
