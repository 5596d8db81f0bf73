/*
 * test_dlq.c — dead letters for `egoi-router dlq`, against a real SQLite
 * file in a mkdtemp() directory: listing and its filters, re-queuing a
 * failed forward (same delivery id, byte-exact body, attempts reset),
 * marking replayed, purging; and the command itself (dlq_run) on a real
 * router.conf: a rule error routed again through fixed rules, usage errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dlq.h"
#include "exit_codes.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "outbox_dlq.h"

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
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test_dlq.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	fx->ob = outbox_open(fx->dir, fx->err, sizeof fx->err);
	if (!fx->ob) {
		fprintf(stderr, "outbox_open: %s\n", fx->err);
		tu_rmtree(fx->dir);
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

static double now_s(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add_dead(struct outbox *ob, enum outbox_dead_kind kind, const char *reason,
		     const char *payload, long index, const char *target)
{
	struct outbox_dead d = {
		.kind = kind, .reason = reason, .payload = payload,
		.payload_len = payload ? strlen(payload) : 0, .request_id = "req-1",
		.event_index = index, .target = target,
	};

	assert_int_equal(outbox_begin(ob), 0);
	assert_int_equal(outbox_add_dead(ob, &d), 0);
	assert_int_equal(outbox_commit(ob), 0);
}

static const char fwd_body[] = "bin\0ary\0\xff\x01 body";

/* A forward that failed twice and was buried: returns its delivery id in id. */
static void add_dead_forward(struct outbox *ob, char id[37])
{
	struct outbox_forward f = {
		.name = "crm", .url = "https://crm.example/in", .method = "PUT",
		.content_type = "application/x-ndjson", .headers = "X-A: 1\nX-B: two\n",
		.body = fwd_body, .body_len = sizeof fwd_body - 1, .request_id = "req-f",
	};
	struct outbox_delivery *got = NULL;
	double t = now_s();

	assert_int_equal(outbox_begin(ob), 0);
	assert_int_equal(outbox_add_forward(ob, &f, id), 0);
	assert_int_equal(outbox_commit(ob), 0);
	assert_int_equal(outbox_claim_due(ob, "https://crm.example:443", t + 1, 10, &got), 1);
	assert_int_equal(outbox_retry(ob, got[0].id, t, 503, "HTTP 503"), 0);
	outbox_deliveries_free(got, 1);
	assert_int_equal(outbox_claim_due(ob, "https://crm.example:443", t + 1, 10, &got), 1);
	assert_int_equal(outbox_bury(ob, got[0].id, 400, NULL), 0);
	outbox_deliveries_free(got, 1);
}

/* What a list callback saw, copied. */
struct seen {
	size_t n;
	int64_t id[16];
	char kind[16][16];
	size_t payload_len[16];
	int had_payload[16];
	double replayed_at[16];
	int stop_after;            /* 0 = never */
};

static int see(const struct outbox_dlq_entry *e, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 16);
	s->id[s->n] = e->id;
	snprintf(s->kind[s->n], sizeof s->kind[0], "%s", e->kind);
	s->payload_len[s->n] = e->payload_len;
	s->had_payload[s->n] = e->payload != NULL;
	s->replayed_at[s->n] = e->replayed_at;
	s->n++;
	return s->stop_after && (int)s->n == s->stop_after ? 7 : 0;
}

static size_t list(struct outbox *ob, const struct outbox_dlq_filter *f, struct seen *s)
{
	memset(s, 0, sizeof *s);
	assert_int_equal(outbox_dlq_list(ob, f, see, s), 0);
	return s->n;
}

/* Four kinds, in this order: ids 1..4. */
static void add_four(struct fixture *fx, char fid[37])
{
	add_dead(fx->ob, OUTBOX_DEAD_RULE_ERROR, "rules.lua:3: boom",
		 "{\"action\":\"email_open\",\"n\":1}", 2, NULL);
	add_dead(fx->ob, OUTBOX_DEAD_REJECTED, "event is not an object", "42", 3, NULL);
	add_dead(fx->ob, OUTBOX_DEAD_WRITE, "symlink escapes output_dir",
		 "{\"action\":\"sms_send\"}", 1, "sms/x.jsonl");
	add_dead_forward(fx->ob, fid);
}

static int fields_ok(const struct outbox_dlq_entry *e, void *arg)
{
	const char *fid = arg;

	if (e->id == 1) {
		assert_string_equal(e->kind, "rule_error");
		assert_string_equal(e->reason, "rules.lua:3: boom");
		assert_string_equal(e->request_id, "req-1");
		assert_int_equal(e->event_index, 2);
		assert_null(e->url);
		assert_int_equal(e->attempts, -1);
		assert_int_equal(e->last_status, 0);
		assert_true(e->died_at >= e->created_at && e->created_at > 1e9);
	} else if (e->id == 3) {
		assert_string_equal(e->target, "sms/x.jsonl");
	} else if (e->id == 4) {
		assert_string_equal(e->kind, "forward");
		assert_string_equal(e->reason, "HTTP 400");
		assert_string_equal(e->delivery_id, fid);
		assert_string_equal(e->url, "https://crm.example/in");
		assert_string_equal(e->name, "crm");
		assert_string_equal(e->method, "PUT");
		assert_string_equal(e->request_id, "req-f");
		assert_int_equal(e->attempts, 2);
		assert_int_equal(e->last_status, 400);
		assert_int_equal(e->event_index, 0);
		assert_int_equal(e->payload_len, sizeof fwd_body - 1);
		assert_memory_equal(e->payload, fwd_body, sizeof fwd_body - 1);
	}
	return 0;
}

static void test_list_oldest_first_with_fields(void **state)
{
	struct fixture *fx = *state;
	struct outbox_dlq_filter f = { .with_payload = 1 };
	struct seen s;
	char fid[37];

	add_four(fx, fid);
	assert_int_equal(list(fx->ob, NULL, &s), 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(s.id[i], (int64_t)i + 1);
	assert_string_equal(s.kind[1], "rejected");
	/* Without with_payload only the length is read. */
	assert_int_equal(s.payload_len[1], 2);
	assert_false(s.had_payload[1]);
	assert_int_equal(s.payload_len[3], sizeof fwd_body - 1);
	assert_int_equal(outbox_dlq_list(fx->ob, &f, fields_ok, fid), 0);
}

static void test_list_filters(void **state)
{
	struct fixture *fx = *state;
	const int64_t ids[] = { 4, 2, 99 };
	struct outbox_dlq_filter f = { 0 };
	struct seen s;
	char fid[37];

	add_four(fx, fid);
	f.kind = "write";
	assert_int_equal(list(fx->ob, &f, &s), 1);
	assert_int_equal(s.id[0], 3);
	f.kind = NULL;
	f.limit = 2;
	assert_int_equal(list(fx->ob, &f, &s), 2);
	assert_int_equal(s.id[1], 2);
	f.limit = 0;
	f.ids = ids;
	f.nids = 3;
	assert_int_equal(list(fx->ob, &f, &s), 2);
	assert_int_equal(s.id[0], 2);
	assert_int_equal(s.id[1], 4);
	f.nids = 0;   /* an empty id list selects nothing */
	assert_int_equal(list(fx->ob, &f, &s), 0);
	f.ids = NULL;
	f.died_before = now_s() - 3600;
	assert_int_equal(list(fx->ob, &f, &s), 0);
	f.died_before = now_s() + 1;
	assert_int_equal(list(fx->ob, &f, &s), 4);

	/* The callback can stop the walk; its value comes back. */
	memset(&s, 0, sizeof s);
	s.stop_after = 2;
	assert_int_equal(outbox_dlq_list(fx->ob, NULL, see, &s), 7);
	assert_int_equal(s.n, 2);

	f.kind = "nope";
	assert_int_equal(outbox_dlq_list(fx->ob, &f, see, &s), -1);
	assert_non_null(strstr(outbox_error(fx->ob), "nope"));
}

static void test_requeue_keeps_delivery_id_and_body(void **state)
{
	struct fixture *fx = *state;
	struct outbox_dlq_filter open = { .state = OUTBOX_DLQ_OPEN };
	struct outbox_dlq_filter done = { .state = OUTBOX_DLQ_REPLAYED };
	struct outbox_delivery *got = NULL;
	struct seen s;
	char fid[37];
	double t0 = now_s();

	add_four(fx, fid);
	assert_int_equal(outbox_count_pending(fx->ob), 0);
	assert_int_equal(outbox_count_dead(fx->ob), 4);
	/* Only open forwards can be re-queued. */
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 1), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 99), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(outbox_count_pending(fx->ob), 0);

	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 4), OUTBOX_DLQ_DONE);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
	assert_int_equal(outbox_count_dead(fx->ob), 3);
	/* Due now: claimable at once, as the same request as before. */
	assert_int_equal(outbox_claim_due(fx->ob, "https://crm.example:443", now_s() + 0.001, 10, &got), 1);
	assert_string_equal(got[0].delivery_id, fid);
	assert_int_equal(got[0].attempts, 0);
	assert_int_equal(got[0].body_len, sizeof fwd_body - 1);
	assert_memory_equal(got[0].body, fwd_body, sizeof fwd_body - 1);
	assert_string_equal(got[0].url, "https://crm.example/in");
	assert_string_equal(got[0].method, "PUT");
	assert_string_equal(got[0].name, "crm");
	assert_string_equal(got[0].content_type, "application/x-ndjson");
	assert_string_equal(got[0].headers, "X-A: 1\nX-B: two\n");
	assert_string_equal(got[0].request_id, "req-f");
	/* A fresh forward_max_age budget. */
	assert_true(got[0].created_at >= t0);
	outbox_deliveries_free(got, 1);

	/* Marked replayed in the same step: gone from the open list, once only. */
	assert_int_equal(list(fx->ob, &open, &s), 3);
	for (size_t i = 0; i < s.n; i++)
		assert_int_not_equal(s.id[i], 4);
	assert_int_equal(list(fx->ob, &done, &s), 1);
	assert_int_equal(s.id[0], 4);
	assert_true(s.replayed_at[0] >= t0);
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 4), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
}

/* A delivery id still pending cannot be queued twice: error, nothing changes. */
static void test_requeue_conflict_changes_nothing(void **state)
{
	struct fixture *fx = *state;
	char fid[37], path[128];
	sqlite3 *db;

	add_dead_forward(fx->ob, fid);
	snprintf(path, sizeof path, "%s/outbox.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO deliveries(delivery_id, url, method, body,"
					  " created_at, next_attempt_at) SELECT delivery_id, url,"
					  " method, payload, 1, 1 FROM dead_letters WHERE id = 1",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 1), OUTBOX_DLQ_FAILED);
	assert_non_null(strstr(outbox_error(fx->ob), "UNIQUE"));
	assert_int_equal(outbox_count_dead(fx->ob), 1);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
}

static void test_mark_replayed_excluded_from_list(void **state)
{
	struct fixture *fx = *state;
	struct outbox_dlq_filter open = { .state = OUTBOX_DLQ_OPEN };
	struct seen s;
	char fid[37];

	add_four(fx, fid);
	assert_int_equal(outbox_dlq_mark_replayed(fx->ob, 1), OUTBOX_DLQ_DONE);
	assert_int_equal(outbox_dlq_mark_replayed(fx->ob, 1), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(outbox_dlq_mark_replayed(fx->ob, 42), OUTBOX_DLQ_NOT_OPEN);
	assert_int_equal(list(fx->ob, &open, &s), 3);
	assert_int_equal(s.id[0], 2);
	assert_int_equal(outbox_count_dead(fx->ob), 3);
	/* The row is kept (replayed_at marks it handled). */
	assert_int_equal(list(fx->ob, NULL, &s), 4);
	/* A forward marked replayed can no longer be re-queued. */
	assert_int_equal(outbox_dlq_mark_replayed(fx->ob, 4), OUTBOX_DLQ_DONE);
	assert_int_equal(outbox_dlq_requeue_forward(fx->ob, 4), OUTBOX_DLQ_NOT_OPEN);
}

static void test_purge_variants(void **state)
{
	struct fixture *fx = *state;
	const int64_t ids[] = { 2 };
	struct outbox_dlq_filter f = { 0 };
	struct seen s;
	char fid[37];

	add_four(fx, fid);
	add_dead(fx->ob, OUTBOX_DEAD_RULE_ERROR, "again", "{\"action\":\"x\"}", 1, NULL);
	assert_int_equal(outbox_dlq_mark_replayed(fx->ob, 1), OUTBOX_DLQ_DONE);

	/* Not old enough: nothing. */
	f.died_before = now_s() - 60;
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), 0);
	f.died_before = 0;
	f.state = OUTBOX_DLQ_REPLAYED;
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), 1);
	assert_int_equal(list(fx->ob, NULL, &s), 4);
	assert_int_equal(s.id[0], 2);
	f.state = OUTBOX_DLQ_ANY;
	f.ids = ids;
	f.nids = 1;
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), 1);
	f.ids = NULL;
	f.nids = 0;
	f.kind = "rule_error";
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), 1);
	assert_int_equal(list(fx->ob, NULL, &s), 2);
	assert_int_equal(s.id[0], 3);
	assert_int_equal(s.id[1], 4);
	f.kind = NULL;
	f.died_before = now_s() + 1;
	assert_int_equal(outbox_dlq_purge(fx->ob, &f), 2);
	assert_int_equal(list(fx->ob, NULL, &s), 0);
	assert_int_equal(outbox_dlq_purge(fx->ob, NULL), 0);
}

/* --- the command --- */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Runs dlq_run with stdout captured into out (NUL-terminated, caller frees). */
static int run_dlq(struct fixture *fx, const char *const *args, char **out)
{
	char path[128], *argv[16];
	int argc = 0, fd, saved, rc;

	for (; args[argc]; argc++)
		argv[argc] = (char *)args[argc];
	argv[argc] = NULL;
	snprintf(path, sizeof path, "%s/stdout", fx->dir);
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	assert_true(saved >= 0);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_true(dup2(fd, STDOUT_FILENO) >= 0);
	close(fd);
	rc = dlq_run(argc, argv);
	fflush(stdout);
	assert_true(dup2(saved, STDOUT_FILENO) >= 0);
	close(saved);
	*out = tu_read_file(path, NULL);
	assert_non_null(*out);
	return rc;
}

/* router.conf in fx->dir with rules.lua holding lua; returns the conf path in conf. */
static void write_conf(struct fixture *fx, const char *lua, char *conf, size_t len)
{
	char rules[128], text[512];

	snprintf(rules, sizeof rules, "%s/rules.lua", fx->dir);
	write_text(rules, lua);
	snprintf(conf, len, "%s/router.conf", fx->dir);
	snprintf(text, sizeof text,
		 "auth_token = none\nrules = %s\ndata_dir = %s\noutput_dir = %s/out\n"
		 "log_level = error\n", rules, fx->dir, fx->dir);
	write_text(conf, text);
}

static void test_replay_routes_rule_error_through_current_rules(void **state)
{
	struct fixture *fx = *state;
	struct outbox_dlq_filter open = { .state = OUTBOX_DLQ_OPEN };
	char conf[128], path[160], fid[37], *out = NULL, *line;
	struct seen s;

	add_four(fx, fid);
	write_conf(fx, "function route(e, m)\n"
		       "  assert(m.request_id == 'req-1' and m.index == 1)\n"
		       "  write('seen.jsonl')\nend\n", conf, sizeof conf);
	const char *args[] = { "replay", "-c", conf, "--kind", "rule_error", NULL };

	assert_int_equal(run_dlq(fx, args, &out), 0);
	assert_string_equal(out, "{\"replayed\":1,\"skipped\":0,\"failed\":0}\n");
	free(out);
	snprintf(path, sizeof path, "%s/out/seen.jsonl", fx->dir);
	line = tu_read_file(path, NULL);
	assert_non_null(line);
	assert_string_equal(line, "{\"action\":\"email_open\",\"n\":1}\n");
	free(line);
	assert_int_equal(list(fx->ob, &open, &s), 3);
	assert_int_equal(s.id[0], 2);

	/* --all: the refused write is routed, the forward re-queued, the
	 * rejected element skipped; nothing failed. */
	const char *all[] = { "replay", "-c", conf, "--all", NULL };
	assert_int_equal(run_dlq(fx, all, &out), 0);
	assert_string_equal(out, "{\"replayed\":2,\"skipped\":1,\"failed\":0}\n");
	free(out);
	assert_int_equal(outbox_count_pending(fx->ob), 1);
	assert_int_equal(list(fx->ob, &open, &s), 1);
	assert_string_equal(s.kind[0], "rejected");

	/* By id: already replayed is skipped, unknown fails (exit 1). */
	const char *ids[] = { "replay", "-c", conf, "--id", "1", "--id", "77", NULL };
	assert_int_equal(run_dlq(fx, ids, &out), 1);
	assert_string_equal(out, "{\"replayed\":0,\"skipped\":1,\"failed\":1}\n");
	free(out);
}

static void test_replay_failing_again_makes_a_new_dead_letter(void **state)
{
	struct fixture *fx = *state;
	struct outbox_dlq_filter open = { .state = OUTBOX_DLQ_OPEN };
	char conf[128], *out = NULL;
	struct seen s;

	add_dead(fx->ob, OUTBOX_DEAD_RULE_ERROR, "old", "{\"action\":\"x\"}", 4, NULL);
	write_conf(fx, "function route(e, m) error('still broken') end\n", conf, sizeof conf);
	const char *args[] = { "replay", "-c", conf, "--id", "1", NULL };

	assert_int_equal(run_dlq(fx, args, &out), 0);
	assert_string_equal(out, "{\"replayed\":1,\"skipped\":0,\"failed\":0}\n");
	free(out);
	assert_int_equal(list(fx->ob, &open, &s), 1);
	assert_int_equal(s.id[0], 2);
	assert_string_equal(s.kind[0], "rule_error");

	/* Rules that do not compile: nothing is marked, exit 1. */
	write_conf(fx, "function route(e, m)\n", conf, sizeof conf);
	const char *again[] = { "replay", "-c", conf, "--all", NULL };
	assert_int_equal(run_dlq(fx, again, &out), 1);
	assert_string_equal(out, "{\"replayed\":0,\"skipped\":0,\"failed\":1}\n");
	free(out);
	assert_int_equal(list(fx->ob, &open, &s), 1);
}

static void test_list_command_prints_json_lines(void **state)
{
	struct fixture *fx = *state;
	char conf[128], fid[37], *out = NULL, *nl;
	size_t lines = 0;

	add_four(fx, fid);
	write_conf(fx, "function route(e, m) end\n", conf, sizeof conf);
	const char *args[] = { "list", "-c", conf, "--kind", "forward", "--payload", NULL };
	assert_int_equal(run_dlq(fx, args, &out), 0);
	for (char *p = out; (nl = strchr(p, '\n')); p = nl + 1)
		lines++;
	assert_int_equal(lines, 1);
	assert_non_null(strstr(out, "\"id\":4,\"kind\":\"forward\""));
	assert_non_null(strstr(out, fid));
	assert_non_null(strstr(out, "\"attempts\":2,\"last_status\":400,\"payload_bytes\":15"));
	/* Not UTF-8: given in base64 beside a null payload. */
	assert_non_null(strstr(out, "\"payload\":null,\"payload_base64\":\"YmluAGFyeQD/ASBib2R5\""));
	free(out);
	const char *limit[] = { "list", "-c", conf, "--limit", "2", NULL };
	assert_int_equal(run_dlq(fx, limit, &out), 0);
	assert_non_null(strstr(out, "{\"id\":1,\"kind\":\"rule_error\",\"reason\":\"rules.lua:3: boom\","
				    "\"request_id\":\"req-1\",\"event_index\":2,"));
	assert_non_null(strstr(out, "\n{\"id\":2,"));
	assert_null(strstr(out, "\"id\":3"));
	free(out);

	const char *purge[] = { "purge", "-c", conf, "--kind", "rejected", NULL };
	assert_int_equal(run_dlq(fx, purge, &out), 0);
	assert_string_equal(out, "{\"purged\":1}\n");
	free(out);
}

/*
 * The options are read with getopt_long: "--kind=forward" means what
 * "--kind forward" means (it used to be refused as an unknown argument),
 * and a word that is not an option is still refused.
 */
static void test_options_take_the_equals_form(void **state)
{
	struct fixture *fx = *state;
	char conf[128], fid[37], *spaced = NULL, *joined = NULL, *out = NULL;

	add_four(fx, fid);
	write_conf(fx, "function route(e, m) end\n", conf, sizeof conf);
	const char *a[] = { "list", "-c", conf, "--kind", "forward", "--limit", "5", NULL };
	const char *b[] = { "list", "-c", conf, "--kind=forward", "--limit=5", NULL };
	assert_int_equal(run_dlq(fx, a, &spaced), 0);
	assert_int_equal(run_dlq(fx, b, &joined), 0);
	assert_non_null(strstr(joined, "\"kind\":\"forward\""));
	assert_string_equal(joined, spaced);
	free(spaced);
	free(joined);

	const char *const bad[][6] = {
		{ "list", "-c", conf, "--kind=nope", NULL },
		{ "list", "-c", conf, "extra", NULL },
		{ "list", "-c", conf, "--payload=yes", NULL },
		{ "list", "-c", conf, "--kind", NULL },
		{ "list", "--kind=forward", "--kind=write", NULL },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(run_dlq(fx, bad[i], &out), 2);
		assert_string_equal(out, "");
		free(out);
	}
	/* --kind=rejected is refused by replay like --kind rejected. */
	const char *rej[] = { "replay", "-c", conf, "--kind=rejected", NULL };
	assert_int_equal(run_dlq(fx, rej, &out), 1);
	free(out);
}

/* Runs sql on the outbox file with a connection of its own (another tool). */
static void exec_sql(struct fixture *fx, const char *sql)
{
	char path[128], *msg = NULL;
	sqlite3 *db = NULL;

	snprintf(path, sizeof path, "%s/outbox.db", fx->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
	sqlite3_close(db);
}

static int see_malformed(const struct outbox_dlq_entry *e, void *arg)
{
	struct seen *s = arg;

	assert_true(s->n < 16);
	s->id[s->n] = e->id;
	snprintf(s->kind[s->n], sizeof s->kind[0], "%s", e->malformed ? "BAD" : e->kind);
	s->n++;
	return 0;
}

/*
 * Rows the daemon never writes (a NULL reason, a time that is not a number,
 * a kind that is a blob, a payload that is not JSON) are reported and
 * skipped by list and replay, which go on with the rows after them and
 * exit 1. They used to stop the walk: "cannot read row 5 (out of memory?)".
 */
static void test_malformed_rows_skipped_and_reported(void **state)
{
	struct fixture *fx = *state;
	char conf[128], path[160], fid[37], *out = NULL, *text;
	struct seen s;

	add_four(fx, fid);
	/* the table rebuilt by hand, as an operator might: its constraints are gone */
	exec_sql(fx, "CREATE TABLE dl AS SELECT * FROM dead_letters; DROP TABLE dead_letters;"
		     "ALTER TABLE dl RENAME TO dead_letters;"
		     "INSERT INTO dead_letters(id, kind, reason, payload, created_at, died_at)"
		     " VALUES (5, 'write', NULL, '{\"action\":\"a\"}', 1, 1);"
		     "INSERT INTO dead_letters(id, kind, reason, payload, created_at, died_at)"
		     " VALUES (6, 'rule_error', 'x', '{\"action\":\"b\"}', 'soon', 1);"
		     "INSERT INTO dead_letters(id, kind, reason, payload, created_at, died_at)"
		     " VALUES (7, 'rule_error', 'bad json', X'7b6e6f', 1, 1);"
		     "INSERT INTO dead_letters(id, kind, reason, payload, created_at, died_at)"
		     " VALUES (8, X'7772697465', 'x', '{}', 1, 1);"
		     "INSERT INTO dead_letters(id, kind, reason, payload, request_id, event_index,"
		     " created_at, died_at)"
		     " VALUES (9, 'rule_error', 'y', '{\"action\":\"late\"}', 'req-1', 1, 1, 1);");

	memset(&s, 0, sizeof s);
	assert_int_equal(outbox_dlq_list(fx->ob, NULL, see_malformed, &s), 0);
	assert_int_equal(s.n, 9);
	assert_string_equal(s.kind[4], "BAD");
	assert_string_equal(s.kind[5], "BAD");
	assert_string_equal(s.kind[6], "rule_error");
	assert_string_equal(s.kind[7], "BAD");
	assert_string_equal(s.kind[8], "rule_error");

	write_conf(fx, "function route(e, m) write('seen.jsonl') end\n", conf, sizeof conf);
	const char *args[] = { "list", "-c", conf, NULL };
	assert_int_equal(run_dlq(fx, args, &out), 1);
	for (int id = 1; id <= 9; id++) {
		char key[32];

		snprintf(key, sizeof key, "{\"id\":%d,", id);
		if ((id == 5 || id == 6 || id == 8) == (strstr(out, key) != NULL))
			fail_msg("dead letter %d %s listed: %s", id,
				 id == 5 || id == 6 || id == 8 ? "wrongly" : "not", out);
	}
	free(out);

	const char *replay[] = { "replay", "-c", conf, "--kind", "rule_error", NULL };
	assert_int_equal(run_dlq(fx, replay, &out), 1);
	assert_string_equal(out, "{\"replayed\":2,\"skipped\":2,\"failed\":0}\n");
	free(out);
	snprintf(path, sizeof path, "%s/out/seen.jsonl", fx->dir);
	text = tu_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "{\"action\":\"email_open\",\"n\":1}\n{\"action\":\"late\"}\n");
	free(text);
}

/* dlq --help says what --kind takes from the one list of kinds, worded as
 * before; --kind takes each of them. */
/* The console's destination column and `replay` by dest read one name. */
static void test_dest_name_forward_name_host_or_path(void **state)
{
	struct outbox_dlq_entry named = { .name = "crm", .url = "https://crm.example:8443/in" };
	struct outbox_dlq_entry bare = { .name = "", .url = "https://Hooks.Example.com:8443/x?y" };
	struct outbox_dlq_entry write = { .target = "crm.jsonl" };
	struct outbox_dlq_entry none = { 0 };
	char out[64];

	(void)state;
	dlq_dest_name(&named, out, sizeof out);
	assert_string_equal(out, "crm");
	dlq_dest_name(&bare, out, sizeof out);
	assert_string_equal(out, "hooks.example.com");
	dlq_dest_name(&write, out, sizeof out);
	assert_string_equal(out, "crm.jsonl");
	memset(out, 'X', sizeof out);
	dlq_dest_name(&none, out, sizeof out);
	assert_string_equal(out, "");
	dlq_dest_name(&named, out, 3);   /* cut, still terminated */
	assert_string_equal(out, "cr");
}

static void test_help_lists_every_kind(void **state)
{
	struct fixture *fx = *state;
	const char *help[] = { "--help", NULL };
	char *out = NULL, conf[128];

	assert_int_equal(run_dlq(fx, help, &out), EXIT_OK);
	assert_non_null(strstr(out, "\nK is rule_error, rejected, write or forward; DURATION"));
	for (int k = 0; k < OUTBOX_DEAD_KINDS; k++)
		assert_non_null(strstr(out, outbox_dead_kind_names[k]));
	free(out);

	write_conf(fx, "function route(e, m) drop() end\n", conf, sizeof conf);
	for (int k = 0; k < OUTBOX_DEAD_KINDS; k++) {
		const char *list[] = { "list", "-c", conf, "--kind", outbox_dead_kind_names[k], NULL };

		assert_int_equal(run_dlq(fx, list, &out), EXIT_OK);
		free(out);
	}
}

static void test_usage_errors_exit_2(void **state)
{
	struct fixture *fx = *state;
	char *out = NULL;
	const char *const cases[][6] = {
		{ "replay", NULL },                         /* no selector */
		{ "purge", "--older-than", "1h", NULL },     /* still no selector */
		{ "list", "--kind", "nope", NULL },
		{ "list", "--limit", "0", NULL },
		{ "list", "--all", NULL },                   /* not a list option */
		{ "replay", "--id", "x", NULL },
		{ "purge", "--all", "--older-than", "soon", NULL },
		{ "frob", NULL },
	};

	/* the one set of exit codes has the documented numbers (README, --help) */
	assert_int_equal(EXIT_OK, 0);
	assert_int_equal(EXIT_INVALID, 1);
	assert_int_equal(EXIT_USAGE, 2);
	assert_int_equal(EXIT_RUNTIME, 3);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(run_dlq(fx, cases[i], &out), 2);
		assert_string_equal(out, "");
		free(out);
	}
	/* rejected input cannot be replayed: said, exit 1, nothing printed. */
	const char *rej[] = { "replay", "--kind", "rejected", NULL };
	assert_int_equal(run_dlq(fx, rej, &out), 1);
	free(out);
	/* A config that does not load: exit 1. */
	const char *nocfg[] = { "list", "-c", "/nonexistent/router.conf", NULL };
	assert_int_equal(run_dlq(fx, nocfg, &out), 1);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_oldest_first_with_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requeue_keeps_delivery_id_and_body, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_requeue_conflict_changes_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mark_replayed_excluded_from_list, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_purge_variants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_routes_rule_error_through_current_rules,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_failing_again_makes_a_new_dead_letter,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_command_prints_json_lines, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_malformed_rows_skipped_and_reported, setup,
						teardown),
		cmocka_unit_test(test_dest_name_forward_name_host_or_path),
		cmocka_unit_test_setup_teardown(test_help_lists_every_kind, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_errors_exit_2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_options_take_the_equals_form, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
