/*
 * test_readiness.c — the /readyz verdict: all facts good is ready; each
 * check, made to fail alone, fails alone and names itself (in the report
 * and in the JSON body's "failed"); the facts gathered from real objects
 * (a published rules source, a running outbox writer and delivery thread,
 * the disk-full state, output_dir) say what those objects are doing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#include "clock.h"
#include "config.h"
#include "deliver.h"
#include "outbox.h"
#include "outbox_space.h"
#include "outbox_writer.h"
#include "pipeline.h"
#include "readiness.h"
#include "rules_source.h"

#define NOW 1000.0

/* Every fact as a healthy daemon reports it at NOW. */
static void good_facts(struct readiness_facts *f)
{
	memset(f, 0, sizeof *f);
	f->rules_generation = 1;
	f->writer_started = 1;
	f->writer_alive = 1;
	f->output_dir = "out";
	f->tls = 1;
	f->delivery_beat = NOW - 0.5;
}

/* The names in the JSON body's "failed" array, comma-joined, into out. */
static void json_failed(const struct readiness_report *r, char *out, size_t cap, int *ready)
{
	const char *pf[] = { "failed", NULL }, *pr[] = { "ready", NULL };
	char *body = NULL;
	size_t len = 0;
	yajl_val v, a, b;

	assert_int_equal(readiness_json(r, &body, &len), 0);
	assert_int_equal(strlen(body), len);
	v = yajl_tree_parse(body, NULL, 0);
	assert_non_null(v);
	a = yajl_tree_get(v, pf, yajl_t_array);
	b = yajl_tree_get(v, pr, yajl_t_any);
	assert_non_null(a);
	assert_non_null(b);
	*ready = YAJL_IS_TRUE(b);
	out[0] = '\0';
	for (size_t i = 0; i < a->u.array.len; i++) {
		const char *name = YAJL_GET_STRING(a->u.array.values[i]);

		assert_non_null(name);
		if (i)
			strncat(out, ",", cap - strlen(out) - 1);
		strncat(out, name, cap - strlen(out) - 1);
	}
	yajl_tree_free(v);
	free(body);
}

static void test_all_good_is_ready(void **state)
{
	struct readiness_facts f;
	struct readiness_report r;
	char failed[128];
	int ready;

	(void)state;
	good_facts(&f);
	readiness_judge(&f, NOW, &r);
	assert_true(r.ready);
	for (int c = 0; c < READINESS_CHECKS; c++)
		assert_true(r.ok[c]);
	json_failed(&r, failed, sizeof failed, &ready);
	assert_true(ready);
	assert_string_equal(failed, "");
	/* plain HTTP only: no TLS to be up, still ready */
	f.tls = 0;
	readiness_judge(&f, NOW, &r);
	assert_true(r.ready);
	assert_non_null(strstr(r.detail[READINESS_TLS], "not configured"));
}

/* Breaks one fact; the check expected to fail is the only one failing. */
static void expect_only(const struct readiness_facts *f, enum readiness_check c,
			const char *detail_part)
{
	struct readiness_report r;
	char failed[128];
	int ready;

	readiness_judge(f, NOW, &r);
	assert_false(r.ready);
	for (int i = 0; i < READINESS_CHECKS; i++)
		assert_int_equal(r.ok[i], i != (int)c);
	if (!strstr(r.detail[c], detail_part))
		fail_msg("%s: detail '%s' lacks '%s'", readiness_name(c), r.detail[c], detail_part);
	json_failed(&r, failed, sizeof failed, &ready);
	assert_false(ready);
	assert_string_equal(failed, readiness_name(c));
}

static void test_each_check_names_itself(void **state)
{
	struct readiness_facts f;

	(void)state;
	good_facts(&f);
	f.rules_generation = 0;
	expect_only(&f, READINESS_RULES, "no rules");

	good_facts(&f);
	f.writer_alive = 0;
	expect_only(&f, READINESS_OUTBOX, "writer is not running");
	good_facts(&f);
	f.writer_started = 0;
	expect_only(&f, READINESS_OUTBOX, "writer is not running");
	good_facts(&f);
	f.writer_busy_since = NOW - READINESS_STALE_S - 1;
	expect_only(&f, READINESS_OUTBOX, "commit has been running");
	good_facts(&f);
	f.outbox_full = 1;
	expect_only(&f, READINESS_OUTBOX, "full");

	good_facts(&f);
	f.output_dir = "/srv/out";
	f.output_dir_errno = EACCES;
	expect_only(&f, READINESS_OUTPUT_DIR, "/srv/out: Permission denied");

	good_facts(&f);
	f.tls = -1;
	snprintf(f.tls_why, sizeof f.tls_why, "no TLS port is listening");
	expect_only(&f, READINESS_TLS, "no TLS port");

	good_facts(&f);
	f.delivery_beat = -1;
	expect_only(&f, READINESS_DELIVERY, "not running");
	good_facts(&f);
	f.delivery_beat = NOW - READINESS_STALE_S - 5;
	expect_only(&f, READINESS_DELIVERY, "has not turned for 35 s");

	good_facts(&f);
	f.stopping = 1;
	expect_only(&f, READINESS_INTAKE, "stopping");
}

static void test_two_failures_both_named(void **state)
{
	struct readiness_facts f;
	struct readiness_report r;
	char failed[128];
	int ready;

	(void)state;
	good_facts(&f);
	f.rules_generation = 0;
	f.delivery_beat = -1;
	readiness_judge(&f, NOW, &r);
	json_failed(&r, failed, sizeof failed, &ready);
	assert_false(ready);
	assert_string_equal(failed, "rules,delivery");
}

static void test_probe_dir(void **state)
{
	char dir[64] = "/tmp/test_readiness.XXXXXX", file[128], missing[128];
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(readiness_probe_dir(dir), 0);
	snprintf(file, sizeof file, "%s/plain", dir);
	fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(readiness_probe_dir(file), ENOTDIR);
	snprintf(missing, sizeof missing, "%s/missing", dir);
	assert_int_equal(readiness_probe_dir(missing), ENOENT);
	if (geteuid() != 0) {   /* root writes through any mode */
		assert_int_equal(chmod(dir, 0500), 0);
		assert_int_equal(readiness_probe_dir(dir), EACCES);
		assert_int_equal(chmod(dir, 0700), 0);
	}
	/* nothing left behind: the directory holds only "plain" */
	assert_int_equal(remove(file), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* Facts from real objects: what each accessor reports while they run. */
static void test_gather_from_live_objects(void **state)
{
	char dir[64] = "/tmp/test_readiness.XXXXXX", err[256], path[128];
	struct config cfg;
	struct pipeline_shared sh;
	struct deliver_options dopt;
	struct readiness_facts f;
	struct readiness_report r;
	struct rules_source *src;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(&cfg, 0, sizeof cfg);
	cfg.output_dir = dir;
	memset(&sh, 0, sizeof sh);
	sh.cfg = &cfg;
	rules_current_init(&sh.published);

	/* nothing started yet: no rules, no writer, no delivery */
	readiness_gather(&sh, &f);
	f.tls = 1;
	readiness_judge(&f, clock_mono(), &r);
	assert_false(r.ok[READINESS_RULES]);
	assert_false(r.ok[READINESS_OUTBOX]);
	assert_false(r.ok[READINESS_DELIVERY]);
	assert_true(r.ok[READINESS_OUTPUT_DIR]);

	snprintf(path, sizeof path, "%s/rules.lua", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_true(fputs("function route() end\n", fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	src = rules_source_read(path, 1, err, sizeof err);
	if (!src)
		fail_msg("rules_source_read: %s", err);
	rules_current_set(&sh.published, src);
	assert_int_equal(outbox_space_start(dir, 0, err, sizeof err), 0);
	sh.writer = outbox_writer_start(dir, err, sizeof err);
	if (!sh.writer)
		fail_msg("outbox_writer_start: %s", err);
	memset(&dopt, 0, sizeof dopt);
	dopt.data_dir = dir;
	dopt.timeout_ms = 1000;
	dopt.max_age_ms = 60000;
	dopt.concurrency = 1;
	sh.deliver = deliver_start(&dopt, err, sizeof err);
	if (!sh.deliver)
		fail_msg("deliver_start: %s", err);

	readiness_gather(&sh, &f);
	f.tls = 1;
	readiness_judge(&f, clock_mono(), &r);
	if (!r.ready)
		fail_msg("not ready: outbox '%s', delivery '%s'", r.detail[READINESS_OUTBOX],
			 r.detail[READINESS_DELIVERY]);
	/* the same heartbeat, judged READINESS_STALE_S later: the loop is stuck */
	readiness_judge(&f, f.delivery_beat + READINESS_STALE_S + 1, &r);
	assert_false(r.ok[READINESS_DELIVERY]);

	/* the disk-full state of the outbox */
	outbox_space_exhausted();
	readiness_gather(&sh, &f);
	f.tls = 1;
	readiness_judge(&f, clock_mono(), &r);
	assert_false(r.ok[READINESS_OUTBOX]);
	assert_true(r.ok[READINESS_DELIVERY]);

	deliver_stop(sh.deliver, 0);
	outbox_writer_stop(sh.writer);
	outbox_space_stop();
	rules_current_free(&sh.published);
	assert_int_equal(tu_rmtree(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_good_is_ready),
		cmocka_unit_test(test_each_check_names_itself),
		cmocka_unit_test(test_two_failures_both_named),
		cmocka_unit_test(test_probe_dir),
		cmocka_unit_test(test_gather_from_live_objects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
