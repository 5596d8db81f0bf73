/*
 * test_pipeline.c — one batch through parse → route → commit, with a real
 * outbox (group committer), a real file sink and real rules: the HTTP
 * status and counts a request gets, and what is durable afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <ftw.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "outbox_writer.h"
#include "pipeline.h"
#include "pipeline_engines.h"

#include <pthread.h>

static const char *rules_lua =
	"function route(e, m)\n"
	"  if e.action == 'fwd' then forward('http://127.0.0.1:9/in')\n"
	"  elseif e.action == 'file' then write('lines.jsonl')\n"
	"  elseif e.action == 'boom' then error('kaboom')\n"
	"  elseif e.action == 'count' then n = (n or 0) + 1 write('count-' .. n .. '.jsonl')\n"
	"  end\n"
	"end\n";

struct fx {
	char dir[64], path[128];
	struct config cfg;
	struct outbox_writer *w;
	struct pipeline_shared sh;
	struct pipeline p;
	struct pipeline_result res;
};

static char *join(const char *dir, const char *name)
{
	char *p = malloc(strlen(dir) + strlen(name) + 2);

	assert_non_null(p);
	sprintf(p, "%s/%s", dir, name);
	return p;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	char err[256];
	FILE *rf;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_pipeline.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(config_defaults(&f->cfg), 0);
	free(f->cfg.rules_path);
	free(f->cfg.data_dir);
	free(f->cfg.output_dir);
	f->cfg.rules_path = join(f->dir, "rules.lua");
	f->cfg.data_dir = join(f->dir, "data");
	f->cfg.output_dir = join(f->dir, "out");
	f->cfg.max_events = 4;
	rf = fopen(f->cfg.rules_path, "w");
	assert_non_null(rf);
	fputs(rules_lua, rf);
	fclose(rf);
	f->w = outbox_writer_start(f->cfg.data_dir, err, sizeof err);
	if (!f->w)
		fail_msg("outbox_writer_start: %s", err);
	f->sh.cfg = &f->cfg;
	rules_current_init(&f->sh.published);
	f->sh.writer = f->w;
	pipeline_init(&f->p, &f->sh);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	pipeline_free(&f->p);
	rules_current_free(&f->sh.published);
	outbox_writer_stop(f->w);
	config_free(&f->cfg);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static void run(struct fx *f, const char *body)
{
	pipeline_process(&f->p, body, strlen(body), 1.0, "127.0.0.1", "req-t", &f->res);
}

static long sql_long(struct fx *f, const char *sql)
{
	char *db_path = join(f->cfg.data_dir, "outbox.db");
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long v = -1;

	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(db_path);
	return v;
}

static void test_batch_is_routed_and_durable(void **state)
{
	struct fx *f = *state;
	char *lines = join(f->cfg.output_dir, "lines.jsonl");
	struct stat st;

	run(f, "{\"events\":[{\"action\":\"fwd\",\"n\":1},{\"action\":\"file\"},"
	       "{\"action\":\"boom\"},42]}");
	assert_int_equal(f->res.http_status, 200);
	assert_int_equal(f->res.accepted, 3);
	assert_int_equal(f->res.rejected, 1);
	assert_int_equal(f->res.summary.forwards, 1);
	assert_int_equal(f->res.summary.writes, 1);
	assert_int_equal(f->res.summary.dead_letters, 2);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM deliveries"), 1);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM dead_letters WHERE kind='rule_error'"), 1);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM dead_letters WHERE kind='rejected'"), 1);
	assert_int_equal(stat(lines, &st), 0);
	assert_int_equal(st.st_size, (off_t)strlen("{\"action\":\"file\"}\n"));
	free(lines);
	/* the worker is ready for the next batch */
	run(f, "{\"events\":[{\"action\":\"fwd\"}]}");
	assert_int_equal(f->res.http_status, 200);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM deliveries"), 2);
}

/* Routes body with p (no commit) and returns the target of event 0's one decision. */
static const char *route_target(struct fx *f, struct pipeline *p, const char *body)
{
	const struct decision *d;
	size_t n;

	assert_int_equal(pipeline_route(p, body, strlen(body), 1.0, "-", "r", &f->res), 0);
	d = pipeline_decisions_of(p, 0, &n);
	assert_int_equal(n, 1);
	return d->target;
}

/* An idle worker frees its per-batch arrays; the Lua state, its globals and the next batch are fine. */
static void test_idle_worker_frees_and_carries_on(void **state)
{
	struct fx *f = *state;
	const char *count = "{\"events\":[{\"action\":\"count\"}]}";

	pipeline_idle(&f->p);   /* before any batch: nothing built yet */
	run(f, "{\"events\":[{\"action\":\"fwd\"},{\"action\":\"file\"}]}");
	assert_int_equal(f->res.http_status, 200);
	assert_non_null(f->p.batch.events);
	assert_int_equal(pipeline_engines_built(f->p.own_engines), 1);
	assert_string_equal(route_target(f, &f->p, count), "count-1.jsonl");
	pipeline_end(&f->p);
	pipeline_idle(&f->p);
	assert_null(f->p.batch.events);
	assert_int_equal(f->p.batch.cap, 0);
	assert_null(f->p.decisions.items);
	assert_null(f->p.action_at);
	assert_int_equal(pipeline_engines_built(f->p.own_engines), 1);   /* kept */
	assert_string_equal(route_target(f, &f->p, count), "count-2.jsonl");   /* globals survive */
	pipeline_end(&f->p);
	run(f, "{\"events\":[{\"action\":\"fwd\"}]}");
	assert_int_equal(f->res.http_status, 200);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM deliveries"), 2);
}

/*
 * Workers share the set of Lua states: one after the other they use the
 * same (warmest) state, so only one is built and its globals carry over;
 * what a routed batch reads after the state went back (its actions) was
 * copied out, so another batch routed meanwhile does not change it.
 */
static void test_workers_share_lua_states(void **state)
{
	struct fx *f = *state;
	const char *count = "{\"events\":[{\"action\":\"count\"}]}";
	struct pipeline p2;

	f->sh.engines = pipeline_engines_new(2);
	assert_non_null(f->sh.engines);
	assert_int_equal(pipeline_engines_max(f->sh.engines), 2);
	pipeline_init(&p2, &f->sh);
	assert_string_equal(route_target(f, &f->p, count), "count-1.jsonl");
	pipeline_end(&f->p);
	assert_string_equal(route_target(f, &p2, count), "count-2.jsonl");
	pipeline_end(&p2);
	assert_int_equal(pipeline_engines_built(f->sh.engines), 1);
	assert_null(f->p.own_engines);

	route_target(f, &f->p, "{\"events\":[{\"action\":\"fwd\"}]}");
	route_target(f, &p2, "{\"events\":[{\"action\":\"file\"},{\"action\":\"x\"}]}");
	assert_int_equal(pipeline_event_count(&f->p), 1);
	assert_string_equal(pipeline_event_action(&f->p, 0), "fwd");
	assert_null(pipeline_event_action(&f->p, 1));   /* past the batch */
	assert_string_equal(pipeline_event_action(&p2, 0), "file");
	assert_string_equal(pipeline_event_action(&p2, 1), "x");
	pipeline_end(&f->p);
	assert_null(pipeline_event_action(&f->p, 0));   /* the batch ended */
	pipeline_end(&p2);
	pipeline_idle(&p2);   /* a worker's close leaves the shared states alone */
	assert_int_equal(pipeline_engines_idle(f->sh.engines, 3600), 0);   /* not quiet long enough */
	assert_int_equal(pipeline_engines_idle(f->sh.engines, 0), 1);      /* the one built state */
	assert_int_equal(pipeline_engines_idle(f->sh.engines, 0), 0);      /* not used since */
	assert_int_equal(pipeline_engines_built(f->sh.engines), 1);        /* shrunk, not freed */
	assert_string_equal(route_target(f, &f->p, count), "count-3.jsonl");   /* globals stay */
	pipeline_end(&f->p);
	pipeline_free(&p2);
	pipeline_free(&f->p);   /* before the set it borrows from */
	pipeline_engines_free(f->sh.engines);
	f->sh.engines = NULL;
	pipeline_init(&f->p, &f->sh);
}

struct borrower {
	struct pipeline_engines *set;
	struct pipeline_engine *got;
	atomic_int done;
	atomic_int *served;   /* NULL, or a counter that numbers the borrowers served */
	int turn;             /* its value when this borrower got a slot */
	double waited;        /* seconds it queued */
};

static void *borrower_run(void *arg)
{
	struct borrower *b = arg;

	b->got = pipeline_engines_borrow(b->set, &b->waited);
	if (b->served)
		b->turn = atomic_fetch_add(b->served, 1);
	atomic_store(&b->done, 1);
	pipeline_engines_return(b->set, b->got);
	return NULL;
}

/* Waits (at most 10 s, a hang guard) until n borrowers queue for a slot. */
static void wait_for_waiters(struct pipeline_engines *set, size_t n)
{
	for (int i = 0; i < 10000 && pipeline_engines_waiting(set) < n; i++)
		usleep(1000);
	assert_int_equal(pipeline_engines_waiting(set), n);
}

/* All slots busy: a borrower waits until one is returned, then gets that one. */
static void test_borrow_waits_while_all_are_busy(void **state)
{
	struct pipeline_engines *set = pipeline_engines_new(1);
	struct pipeline_engine *mine, *again;
	struct borrower b = { .set = set };
	double waited = -1;
	pthread_t t;

	(void)state;
	assert_non_null(set);
	mine = pipeline_engines_borrow(set, &waited);
	assert_true(waited == 0);   /* a slot was free */
	assert_int_equal(pthread_create(&t, NULL, borrower_run, &b), 0);
	wait_for_waiters(set, 1);
	assert_int_equal(atomic_load(&b.done), 0);   /* queued, not served */
	pipeline_engines_return(set, mine);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&b.done), 1);
	assert_ptr_equal(b.got, mine);
	assert_true(b.waited > 0);
	pipeline_engines_free(set);

	set = pipeline_engines_new(0);   /* at least one slot */
	assert_int_equal(pipeline_engines_max(set), 1);
	pipeline_engines_free(set);
	set = pipeline_engines_new(2);
	mine = pipeline_engines_borrow(set, NULL);
	again = pipeline_engines_borrow(set, &waited);   /* a second slot: no wait */
	assert_true(waited == 0);
	assert_ptr_not_equal(mine, again);
	assert_null(mine->rules);
	pipeline_engines_return(set, again);
	pipeline_engines_return(set, mine);
	assert_int_equal(pipeline_engines_built(set), 0);   /* nobody built one */
	pipeline_engines_free(set);
}

/* Borrowers that find every slot busy get one in the order they came. */
static void test_waiting_borrowers_are_served_in_arrival_order(void **state)
{
	struct pipeline_engines *set = pipeline_engines_new(1);
	atomic_int served = 0;
	struct borrower b[3];
	pthread_t t[3];
	struct pipeline_engine *mine;

	(void)state;
	assert_non_null(set);
	mine = pipeline_engines_borrow(set, NULL);
	for (int i = 0; i < 3; i++) {
		b[i] = (struct borrower){ .set = set, .served = &served, .turn = -1 };
		assert_int_equal(pthread_create(&t[i], NULL, borrower_run, &b[i]), 0);
		wait_for_waiters(set, (size_t)i + 1);
	}
	pipeline_engines_return(set, mine);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(b[i].turn, i);
		assert_ptr_equal(b[i].got, mine);
	}
	assert_int_equal(pipeline_engines_waiting(set), 0);
	pipeline_engines_free(set);
}

static void test_bad_batches_get_4xx_and_commit_nothing(void **state)
{
	struct fx *f = *state;

	run(f, "{\"events\":[{\"action\":\"fwd\"},]}");
	assert_int_equal(f->res.http_status, 400);
	assert_int_equal(f->res.stage, PIPELINE_PARSE);
	assert_non_null(strstr(f->res.error, "at byte"));
	run(f, "{\"events\":[{\"action\":\"fwd\"},{},{},{},{}]}");
	assert_int_equal(f->res.http_status, 413);
	run(f, "[1]");
	assert_int_equal(f->res.http_status, 400);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM deliveries"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM dead_letters"), 0);
}

static void test_storage_failure_is_503(void **state)
{
	struct fx *f = *state;

	run(f, "{\"events\":[]}");   /* creates the database */
	assert_int_equal(f->res.http_status, 200);
	assert_int_equal(sql_long(f, "DROP TABLE deliveries"), -1);
	run(f, "{\"events\":[{\"action\":\"boom\"},{\"action\":\"fwd\"}]}");
	assert_int_equal(f->res.http_status, 503);
	assert_int_equal(f->res.stage, PIPELINE_COMMIT);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM dead_letters"), 0);
}

/* Publishes text as the next rules generation, as main does on SIGHUP. */
static void publish(struct fx *f, const char *text, unsigned long generation)
{
	char err[256];
	FILE *rf = fopen(f->cfg.rules_path, "w");
	struct rules_source *src;

	assert_non_null(rf);
	fputs(text, rf);
	fclose(rf);
	src = rules_source_read(f->cfg.rules_path, generation, err, sizeof err);
	assert_non_null(src);
	rules_current_set(&f->sh.published, src);
}

/* The worker's Lua state slot (its own set of one), borrowed and given back at once:
 * between batches nobody else holds it. */
static struct pipeline_engine *slot_of(struct fx *f)
{
	struct pipeline_engine *slot = pipeline_engines_borrow(f->p.own_engines, NULL);

	pipeline_engines_return(f->p.own_engines, slot);
	return slot;
}

static void test_published_rules_reach_the_worker(void **state)
{
	struct fx *f = *state;
	const char *batch = "{\"events\":[{\"action\":\"x\"}]}";

	publish(f, "function route(e) drop('one') end", 1);
	run(f, batch);
	assert_int_equal(f->res.http_status, 200);
	assert_int_equal(slot_of(f)->generation, 1);
	/* a new generation: the worker rebuilds its state at its next batch */
	publish(f, "function route(e) write('two.jsonl') end", 2);
	run(f, batch);
	assert_int_equal(f->res.summary.writes, 1);
	assert_int_equal(slot_of(f)->generation, 2);
	/* a generation the worker cannot build: it keeps serving the old rules,
	 * and waits before trying again rather than rebuilding on every batch */
	publish(f, "function route(e) error(", 3);
	run(f, batch);
	assert_int_equal(f->res.http_status, 200);
	assert_int_equal(f->res.summary.writes, 1);
	assert_int_equal(slot_of(f)->generation, 2);
	assert_true(slot_of(f)->retry_at > 0);
	publish(f, "function route(e) drop('four') end", 4);
	run(f, batch);
	assert_int_equal(slot_of(f)->generation, 2);   /* still waiting */
	slot_of(f)->retry_at = 0;                      /* the wait is over */
	run(f, batch);
	assert_int_equal(slot_of(f)->generation, 4);
	assert_int_equal(f->res.summary.writes, 0);
}

static void count_commit(void *arg)
{
	(*(int *)arg)++;
}

/* What callers read: the stage, the events and each one's decisions, the commit callback. */
static void test_result_and_accessors(void **state)
{
	struct fx *f = *state;
	const char *body = "{\"events\":[{\"action\":\"fwd\"},7,{\"action\":\"none\"},"
			   "{\"action\":\"file\"}]}";
	const struct decision *d;
	int commits = 0;
	size_t n;

	f->sh.on_commit = count_commit;
	f->sh.on_commit_arg = &commits;
	assert_int_equal(pipeline_route(&f->p, body, strlen(body), 1.0, "-", "r", &f->res), 0);
	assert_int_equal(f->res.stage, PIPELINE_DONE);
	assert_int_equal(pipeline_event_count(&f->p), 4);
	assert_string_equal(pipeline_event_action(&f->p, 0), "fwd");
	assert_null(pipeline_event_action(&f->p, 1));
	assert_non_null(pipeline_event(&f->p, 1)->reject);
	d = pipeline_decisions_of(&f->p, 0, &n);
	assert_int_equal(n, 1);
	assert_int_equal(d->kind, DECISION_FORWARD);
	d = pipeline_decisions_of(&f->p, 1, &n);
	assert_int_equal(n, 1);
	assert_int_equal(d->kind, DECISION_REJECT);
	pipeline_decisions_of(&f->p, 2, &n);
	assert_int_equal(n, 0);
	d = pipeline_decisions_of(&f->p, 3, &n);
	assert_int_equal(n, 1);
	assert_int_equal(d->kind, DECISION_WRITE);
	assert_int_equal(d->event, 3);
	pipeline_end(&f->p);
	assert_int_equal(commits, 0);   /* routing alone commits nothing */
	run(f, "{\"events\":[{\"action\":\"file\"}]}");
	assert_int_equal(commits, 0);   /* no forward: nobody to wake */
	run(f, body);
	assert_int_equal(f->res.http_status, 200);
	assert_int_equal(commits, 1);
}

static void test_rules_that_do_not_compile_are_their_own_stage(void **state)
{
	struct fx *f = *state;
	FILE *rf = fopen(f->cfg.rules_path, "w");

	assert_non_null(rf);
	fputs("function route(e) error(", rf);
	fclose(rf);
	run(f, "{\"events\":[{\"action\":\"fwd\"}]}");
	assert_int_equal(f->res.http_status, 500);
	assert_int_equal(f->res.stage, PIPELINE_RULES_UNAVAILABLE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_is_routed_and_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_worker_frees_and_carries_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workers_share_lua_states, setup, teardown),
		cmocka_unit_test(test_borrow_waits_while_all_are_busy),
		cmocka_unit_test(test_waiting_borrowers_are_served_in_arrival_order),
		cmocka_unit_test_setup_teardown(test_bad_batches_get_4xx_and_commit_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_storage_failure_is_503, setup, teardown),
		cmocka_unit_test_setup_teardown(test_published_rules_reach_the_worker, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_result_and_accessors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rules_that_do_not_compile_are_their_own_stage,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
