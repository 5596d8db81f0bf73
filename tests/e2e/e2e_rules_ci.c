/*
 * e2e_rules_ci.c — `egoi-router test` for rules in CI: exit 1 on a rule
 * error, --expect FILE.jsonl passing and failing with a diff that names
 * the event, --format text, --meta, and an unknown forward option as a
 * rule error that names it.
 */
#include "e2e/e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char ci_lua[] =
	"function route(e, m)\n"
	"  if e.action == 'email_send' then\n"
	"    forward('https://crm.example/a', { name = 'crm', body = { z = 1, a = { y = 2, b = 3 } } })\n"
	"  end\n"
	"end\n";

static int ci_run(struct e2e *t, const char *const *argv, char **out, char **err)
{
	return harness_run(&t->h, argv, NULL, 20000, out, err);
}

/* A golden file made by the command itself passes; each kind of difference fails with a diff. */
static void expect_passes_then_shows_diffs(void **state)
{
	struct e2e *t = *state;
	char golden[HARNESS_PATH + 16], *out = NULL, *err = NULL, *gold, *nl;
	const char *plain[] = { harness_bin(), "test", t->h.rules,
				"tests/fixtures/batch-example.json", NULL };
	const char *expect[] = { harness_bin(), "test", "--expect", golden, t->h.rules,
				 "tests/fixtures/batch-example.json", NULL };
	FILE *f;

	snprintf(golden, sizeof golden, "%s/golden.jsonl", t->h.dir);
	assert_int_equal(harness_write_rules(&t->h, ci_lua, NULL), 0);
	assert_int_equal(ci_run(t, plain, &out, &err), 0);
	/* keys of the encoded body in byte order, whatever order the table had */
	assert_non_null(strstr(out, "\"body\":{\"a\":{\"b\":3,\"y\":2},\"z\":1}"));
	gold = out;
	free(err);
	f = fopen(golden, "w");
	assert_non_null(f);
	fprintf(f, "# made by egoi-router test\n%s\n", gold);   /* a comment and a blank line */
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ci_run(t, expect, &out, &err), 0);
	assert_non_null(strstr(out, "ok 2 events match "));
	free(out);
	free(err);

	/* event 2 expected otherwise: which event, the file's line, both lines, the column */
	nl = strchr(gold, '\n');
	assert_non_null(nl);
	f = fopen(golden, "w");
	assert_non_null(f);
	fprintf(f, "%.*s\n{\"index\":2,\"action\":\"sms_send\",\"decisions\":[]}\n",
		(int)(nl - gold), gold);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ci_run(t, expect, &out, &err), 1);
	if (!strstr(out, "event 2 (sms_send) differs from "))
		fprintf(stderr, "[e2e] diff:\n%s\nstderr:\n%s\n", out, err);
	assert_non_null(strstr(out, "event 2 (sms_send) differs from "));
	assert_non_null(strstr(out, "golden.jsonl:2\n"));
	assert_non_null(strstr(out, "  expected: {\"index\":2,\"action\":\"sms_send\",\"decisions\":[]}\n"));
	assert_non_null(strstr(out, "  got:      {\"index\":2,\"action\":\"sms_send\",\"decisions\":"
				    "[{\"kind\":\"drop\",\"reason\":\"no_rule\"}]}\n"));
	assert_non_null(strstr(out, "(first difference at column 45)"));
	assert_null(strstr(out, "event 1 "));
	assert_non_null(strstr(err, "1 event(s) differ from "));
	free(out);
	free(err);

	/* one event short, then one too many */
	f = fopen(golden, "w");
	assert_non_null(f);
	fprintf(f, "%.*s\n", (int)(nl - gold), gold);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ci_run(t, expect, &out, &err), 1);
	assert_non_null(strstr(out, "event 2 (sms_send): not in "));
	free(out);
	free(err);
	f = fopen(golden, "w");
	assert_non_null(f);
	fprintf(f, "%s{\"index\":3}\n", gold);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(ci_run(t, expect, &out, &err), 1);
	assert_non_null(strstr(out, "event 3: expected by "));
	assert_non_null(strstr(out, "but the batch has 2 events"));
	free(out);
	free(err);
	free(gold);
	e2e_pass(t);
}

/* A rule error exits 1, unless an --expect file expected exactly that error. */
static void rule_error_exits_1(void **state)
{
	struct e2e *t = *state;
	char golden[HARNESS_PATH + 16], *out = NULL, *err = NULL;
	const char *plain[] = { harness_bin(), "test", t->h.rules,
				"tests/fixtures/batch-example.json", NULL };
	const char *expect[] = { harness_bin(), "test", "--expect", golden, t->h.rules,
				 "tests/fixtures/batch-example.json", NULL };

	snprintf(golden, sizeof golden, "%s/golden.jsonl", t->h.dir);
	assert_int_equal(harness_write_rules(&t->h,
		"function route(e, m)\n"
		"  if e.action == 'sms_send' then forward('https://x.example/', { nmae = 'x' }) end\n"
		"end\n", NULL), 0);
	assert_int_equal(ci_run(t, plain, &out, &err), 1);
	assert_non_null(strstr(out, "forward: unknown option 'nmae'"));
	assert_non_null(strstr(err, "1 event(s) failed"));
	assert_int_equal(harness_write_file(golden, out, strlen(out)), 0);
	free(out);
	free(err);
	assert_int_equal(ci_run(t, expect, &out, &err), 0);
	free(out);
	free(err);
	e2e_pass(t);
}

static void format_text_is_a_table(void **state)
{
	struct e2e *t = *state;
	char *out = NULL, *err = NULL;
	const char *argv[] = { harness_bin(), "test", "--format", "text", t->h.rules,
			       "tests/fixtures/batch-example.json", NULL };
	const char *bad[] = { harness_bin(), "test", "--format", "yaml", t->h.rules,
			      "tests/fixtures/batch-example.json", NULL };

	assert_int_equal(harness_write_rules(&t->h, ci_lua, NULL), 0);
	assert_int_equal(ci_run(t, argv, &out, &err), 0);
	if (!strstr(out, "1      email_send               forward https://crm.example/a (crm)\n"))
		fprintf(stderr, "[e2e] text:\n%s\n", out);
	assert_true(strncmp(out, "EVENT  ACTION                   DECISIONS\n", 42) == 0);
	assert_non_null(strstr(out, "1      email_send               forward https://crm.example/a (crm)\n"));
	assert_non_null(strstr(out, "2      sms_send                 drop: no_rule\n"));
	free(out);
	free(err);
	assert_int_equal(ci_run(t, bad, &out, &err), 2);
	free(out);
	free(err);
	e2e_pass(t);
}

static void meta_reaches_route(void **state)
{
	struct e2e *t = *state;
	char *out = NULL, *err = NULL;
	const char *argv[] = { harness_bin(), "test", "--meta", "request_id=req-42",
			       "--meta=remote_addr=203.0.113.9", "--meta", "received_at=1700000000.5",
			       t->h.rules, "tests/fixtures/batch-example.json", NULL };
	const char *index[] = { harness_bin(), "test", "--meta", "index=3", t->h.rules,
				"tests/fixtures/batch-example.json", NULL };
	const char *when[] = { harness_bin(), "test", "--meta", "received_at=soon", t->h.rules,
			       "tests/fixtures/batch-example.json", NULL };

	assert_int_equal(harness_write_rules(&t->h,
		"function route(e, m)\n"
		"  drop(m.request_id .. ' ' .. m.remote_addr .. ' ' .. string.format('%.1f', "
		"m.received_at) .. ' ' .. m.index .. '/' .. m.batch_size)\n"
		"end\n", NULL), 0);
	assert_int_equal(ci_run(t, argv, &out, &err), 0);
	if (!strstr(out, "\"reason\":\"req-42 203.0.113.9 1700000000.5 1/2\""))
		fprintf(stderr, "[e2e] meta:\n%s\n", out);
	assert_non_null(strstr(out, "\"reason\":\"req-42 203.0.113.9 1700000000.5 1/2\""));
	assert_non_null(strstr(out, "\"reason\":\"req-42 203.0.113.9 1700000000.5 2/2\""));
	free(out);
	free(err);
	/* index and batch_size come from the batch; received_at is a number */
	assert_int_equal(ci_run(t, index, &out, &err), 2);
	assert_non_null(strstr(err, "not a settable meta field"));
	free(out);
	free(err);
	assert_int_equal(ci_run(t, when, &out, &err), 2);
	assert_non_null(strstr(err, "received_at wants unix seconds"));
	free(out);
	free(err);
	e2e_pass(t);
}

const struct CMUnitTest e2e_rules_ci_tests[] = {
	E2E_TEST(expect_passes_then_shows_diffs),
	E2E_TEST(rule_error_exits_1),
	E2E_TEST(format_text_is_a_table),
	E2E_TEST(meta_reaches_route),
};
const size_t e2e_rules_ci_count = sizeof(e2e_rules_ci_tests) / sizeof(e2e_rules_ci_tests[0]);
