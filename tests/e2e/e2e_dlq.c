/*
 * e2e_dlq.c — end-to-end scenarios for `egoi-router dlq`: run
 * as a second process beside the running daemon, on its router.conf. A
 * failed forward replayed is delivered by the daemon without a restart,
 * with the same body and delivery id; rule errors replayed are routed by
 * the rules now on disk; purge deletes what it is asked to. Also the
 * command line's option forms (getopt): "--kind=forward", "-cFILE" and
 * "--env=NAME=VALUE" mean what the spaced forms mean.
 */
#include "e2e/e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs `egoi-router dlq ARGS... -c router.conf`; returns the exit code. out is
 * stdout (caller frees); stderr is shown when the code is not want. */
static int dlq_at(struct e2e *t, const char *const *args, int want, char **out,
		  const char *file, int line)
{
	const char *argv[16];
	char *err = NULL;
	size_t n = 0;
	int rc;

	argv[n++] = harness_bin();
	argv[n++] = "dlq";
	for (; *args && n < 13; args++)
		argv[n++] = *args;
	argv[n++] = "-c";
	argv[n++] = t->h.conf;
	argv[n] = NULL;
	*out = NULL;
	rc = harness_run(&t->h, argv, NULL, 20000, out, &err);
	if (rc != want)
		fprintf(stderr, "[e2e] dlq %s: exit %d (want %d), stdout: %s, stderr: %s\n",
			argv[2], rc, want, *out ? *out : "", err ? err : "");
	free(err);
	_assert_int_equal(cast_to_largest_integral_type(rc), cast_to_largest_integral_type(want),
			  file, line);
	_assert_true(*out != NULL, "stdout", file, line);
	return rc;
}
#define dlq(t, args, want, out) dlq_at((t), (args), (want), (out), __FILE__, __LINE__)

/* Number of lines of text. */
static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	return n;
}

/* A forward the receiver refused (400) is a dead letter; once the receiver
 * is fixed, `dlq replay --all` re-queues it and the RUNNING daemon delivers
 * it within seconds: same body, same X-Router-Delivery-Id, attempt 1. */
static void dead_forward_replayed_while_daemon_runs(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len), *out = NULL, did[64];
	const char *list[] = { "list", NULL };
	const char *replay[] = { "replay", "--all", NULL };
	struct harness_response resp;

	receiver_set_default(t->r, 400);
	e2e_boot(t, "function route(e, m) forward('@RECV@/crm', { name = 'crm' }) end\n", NULL);
	resp = e2e_post_expect(t, batch, len, 200);
	harness_response_free(&resp);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	const struct recv_request *first = receiver_get(t->r, 0);
	assert_non_null(recv_header(first, "X-Router-Delivery-Id"));
	snprintf(did, sizeof did, "%s", recv_header(first, "X-Router-Delivery-Id"));
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM dead_letters"
						 " WHERE kind = 'forward'", 1, 10000), 0);

	dlq(t, list, 0, &out);
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "\"kind\":\"forward\""));
	assert_non_null(strstr(out, "\"last_status\":400"));
	assert_non_null(strstr(out, did));
	free(out);

	receiver_set_default(t->r, 200);
	dlq(t, replay, 0, &out);
	assert_string_equal(out, "{\"replayed\":1,\"skipped\":0,\"failed\":0}\n");
	free(out);
	/* The daemon polls the outbox at least once a second: no restart, no signal. */
	assert_int_equal(receiver_wait(t->r, 2, 5000), 0);
	const struct recv_request *again = receiver_get(t->r, 1);
	assert_int_equal(again->status, 200);
	assert_string_equal(again->uri, "/crm");
	assert_int_equal(again->body_len, first->body_len);
	assert_memory_equal(again->body, first->body, first->body_len);
	assert_non_null(recv_header(again, "X-Router-Delivery-Id"));
	assert_string_equal(recv_header(again, "X-Router-Delivery-Id"), did);
	assert_non_null(recv_header(again, "X-Router-Attempt"));
	assert_string_equal(recv_header(again, "X-Router-Attempt"), "1");
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM deliveries", 0, 5000), 0);

	dlq(t, list, 0, &out);
	assert_string_equal(out, "");
	free(out);
	/* Replaying again finds nothing left to do. */
	dlq(t, replay, 0, &out);
	assert_string_equal(out, "{\"replayed\":0,\"skipped\":0,\"failed\":0}\n");
	free(out);
	harness_sleep_ms(1500);
	assert_int_equal(receiver_count(t->r), 2);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* Rule errors are routed again by the rules file as it is on disk now (the
 * daemon still runs the old rules): written lines appear, and forwards they
 * make are delivered by the running daemon. */
static void rule_errors_replayed_through_fixed_rules(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len), *out = NULL, *got;
	char path[HARNESS_PATH + 32], want[4096];
	struct harness_span spans[4];
	const char *list[] = { "list", "--payload", NULL };
	const char *replay[] = { "replay", "--kind", "rule_error", NULL };
	struct harness_response resp;
	size_t n = 0;

	e2e_boot(t, "function route(e, m) error('not ready for ' .. e.action) end\n", NULL);
	resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);
	harness_response_free(&resp);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"
						 " WHERE kind = 'rule_error'"), 2);
	dlq(t, list, 0, &out);
	assert_int_equal(count_lines(out), 2);
	assert_non_null(strstr(out, "not ready for "));
	assert_non_null(strstr(out, "\"payload\":\"{"));
	free(out);

	assert_int_equal(harness_write_rules(&t->h,
					     "function route(e, m)\n"
					     "  write('fixed.jsonl')\n"
					     "  forward('@RECV@/fixed')\n"
					     "end\n", t->url), 0);
	dlq(t, replay, 0, &out);
	assert_string_equal(out, "{\"replayed\":2,\"skipped\":0,\"failed\":0}\n");
	free(out);

	/* One line per event, its original bytes without whitespace, in order. */
	assert_int_equal(harness_event_spans(batch, len, spans, 4), 2);
	for (size_t i = 0; i < 2; i++) {
		char *line = harness_minify(batch + spans[i].off, spans[i].len);

		assert_non_null(line);
		n += (size_t)snprintf(want + n, sizeof want - n, "%s\n", line);
		free(line);
	}
	snprintf(path, sizeof path, "%s/fixed.jsonl", t->h.output_dir);
	got = harness_read_file(path, NULL);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);

	/* Each replayed event is a batch of one: two requests, each with its event. */
	assert_int_equal(receiver_wait(t->r, 2, 5000), 0);
	for (size_t i = 0; i < 2; i++) {
		const struct recv_request *q = receiver_get(t->r, i);

		assert_string_equal(q->uri, "/fixed");
		assert_int_equal(strncmp(q->body, "{\"events\":[", 11), 0);
	}
	dlq(t, list, 0, &out);
	assert_string_equal(out, "");
	free(out);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"
						 " WHERE replayed_at IS NOT NULL"), 2);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* purge deletes by kind, replayed state, id and age; rejected input is
 * never replayed. */
static void purge_deletes_what_it_is_asked(void **state)
{
	struct e2e *t = *state;
	static const char batch[] =
		"{\"events\":[{\"action\":\"email_open\"},42,{\"action\":\"sms_send\"}]}";
	char *out = NULL, id[32];
	const char *none[] = { "purge", NULL };
	const char *rejected[] = { "purge", "--kind", "rejected", NULL };
	const char *replayed[] = { "purge", "--replayed", NULL };
	const char *old[] = { "purge", "--all", "--older-than", "1h", NULL };
	const char *all[] = { "purge", "--all", NULL };
	const char *no_rejected[] = { "replay", "--kind", "rejected", NULL };
	struct harness_response resp;

	e2e_boot(t, "function route(e, m) error('broken') end\n", NULL);
	resp = e2e_post_expect(t, batch, sizeof batch - 1, 200);
	e2e_assert_counts(&resp, 2, 1);
	harness_response_free(&resp);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 3);

	dlq(t, none, 2, &out);
	free(out);
	dlq(t, no_rejected, 1, &out);
	free(out);
	dlq(t, rejected, 0, &out);
	assert_string_equal(out, "{\"purged\":1}\n");
	free(out);

	/* Replay the first rule error only, with rules that now drop it. */
	assert_int_equal(harness_write_rules(&t->h, "function route(e, m) drop('seen') end\n",
					     NULL), 0);
	snprintf(id, sizeof id, "%ld",
		 harness_sql_long(&t->h, "SELECT min(id) FROM dead_letters"));
	const char *one[] = { "replay", "--id", id, NULL };
	dlq(t, one, 0, &out);
	assert_string_equal(out, "{\"replayed\":1,\"skipped\":0,\"failed\":0}\n");
	free(out);

	dlq(t, old, 0, &out);
	assert_string_equal(out, "{\"purged\":0}\n");
	free(out);
	dlq(t, replayed, 0, &out);
	assert_string_equal(out, "{\"purged\":1}\n");
	free(out);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"
						 " WHERE kind = 'rule_error'"), 1);
	dlq(t, all, 0, &out);
	assert_string_equal(out, "{\"purged\":1}\n");
	free(out);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* Every option value may follow its option after '=' (long) or attached (-c). */
static void options_take_the_equals_form(void **state)
{
	struct e2e *t = *state;
	char conf_opt[HARNESS_PATH + 2], *out = NULL, *err = NULL;

	assert_int_equal(harness_write_rules(&t->h,
					     "function route(e, m)\n"
					     "  write(env('GREETING') .. '.jsonl')\n"
					     "end\n", NULL), 0);
	assert_int_equal(harness_write_config(&t->h), 0);
	snprintf(conf_opt, sizeof conf_opt, "-c%s", t->h.conf);
	const char *check[] = { harness_bin(), "check", conf_opt, NULL };
	assert_int_equal(harness_run(&t->h, check, NULL, 10000, &out, &err), 0);
	free(out);
	free(err);

	const char *dry[] = { harness_bin(), "test", "--env=GREETING=hi", t->h.rules,
			      "tests/fixtures/batch-example.json", NULL };
	assert_int_equal(harness_run(&t->h, dry, NULL, 10000, &out, &err), 0);
	assert_non_null(out);
	assert_non_null(strstr(out, "\"path\":\"hi.jsonl\""));
	free(out);
	free(err);

	const char *list[] = { "list", "--kind=forward", "--limit=3", NULL };
	dlq(t, list, 0, &out);
	assert_string_equal(out, "");
	free(out);
	const char *bad[] = { "list", "--kind=nope", NULL };
	dlq(t, bad, 2, &out);
	free(out);
	e2e_pass(t);
}

const struct CMUnitTest e2e_dlq_tests[] = {
	E2E_TEST(dead_forward_replayed_while_daemon_runs),
	E2E_TEST(rule_errors_replayed_through_fixed_rules),
	E2E_TEST(purge_deletes_what_it_is_asked),
	E2E_TEST(options_take_the_equals_form),
};
const size_t e2e_dlq_count = sizeof(e2e_dlq_tests) / sizeof(e2e_dlq_tests[0]);
