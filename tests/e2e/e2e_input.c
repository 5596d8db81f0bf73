/*
 * e2e_input.c — end-to-end scenarios for hostile or broken input that must
 * neither poison a batch nor reach a terminal raw: a write path the file
 * system refuses (a name over NAME_MAX) is a dead letter of its event, a
 * lone UTF-16 surrogate is a 400, event data in the daemon's log is
 * escaped (text and JSON), `check -c /dev/zero` fails at once, and
 * `dlq list|replay` skip a malformed row of a real outbox file.
 */
#include "e2e/e2e.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Lines in text (each ends with '\n'). */
static size_t count_lines(const char *text)
{
	size_t n = 0;

	for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	return n;
}

/* 1 when the len bytes of needle occur in hay[0..hay_len). */
static int has_bytes(const char *hay, size_t hay_len, const char *needle, size_t len)
{
	return memmem(hay, hay_len, needle, len) != NULL;
}

/*
 * write("sms/" .. e.action .. ".jsonl") with a 300-byte action: the name is
 * over NAME_MAX (ENAMETOOLONG). That event becomes a `write` dead letter;
 * the batch is answered 200 at the first attempt, and the other events'
 * lines are in their files exactly once, even when E-goi sends it again.
 * It used to be 503 on every retry.
 */
static void name_too_long_is_a_write_dead_letter(void **state)
{
	struct e2e *t = *state;
	char action[301], *batch, path[HARNESS_PATH + 64], *text;
	size_t cap = 1024;
	long status = 0;
	int attempts = 0;

	memset(action, 'x', 300);
	action[300] = '\0';
	batch = malloc(cap);
	assert_non_null(batch);
	snprintf(batch, cap, "{\"events\":[{\"action\":\"sms_send\",\"n\":1},{\"action\":\"%s\"},"
			     "{\"action\":\"sms_send\",\"n\":2},{\"action\":\"sms_click\"}]}", action);
	e2e_boot(t, "function route(e, m) write('sms/' .. e.action .. '.jsonl') end\n", NULL);
	/* E-goi retries until it gets a 200: three tries at most here */
	while (attempts < 3 && status != 200) {
		struct harness_response resp;

		assert_int_equal(harness_post(&t->h, batch, strlen(batch), &resp), 0);
		status = resp.status;
		attempts++;
		if (status == 200)
			e2e_assert_counts(&resp, 4, 0);
		else
			fprintf(stderr, "[e2e] attempt %d: %ld %s\n", attempts, status, resp.body);
		harness_response_free(&resp);
	}
	assert_int_equal(status, 200);
	assert_int_equal(attempts, 1);

	snprintf(path, sizeof path, "%s/sms/sms_send.jsonl", t->h.output_dir);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "{\"action\":\"sms_send\",\"n\":1}\n{\"action\":\"sms_send\",\"n\":2}\n");
	free(text);
	snprintf(path, sizeof path, "%s/sms/sms_click.jsonl", t->h.output_dir);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "{\"action\":\"sms_click\"}\n");
	free(text);

	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 1);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters WHERE "
						 "kind = 'write' AND event_index = 2 AND "
						 "length(target) = 310"), 1);
	char *reason = harness_sql_text(&t->h, "SELECT reason FROM dead_letters");

	assert_non_null(reason);
	if (strstr(reason, "too long") == NULL)
		fprintf(stderr, "[e2e] reason: %s\n", reason);
	assert_non_null(strstr(reason, "too long"));
	free(reason);
	char *payload = harness_sql_text(&t->h, "SELECT payload FROM dead_letters");

	assert_non_null(payload);
	assert_non_null(strstr(payload, action));
	free(payload);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/*
 * \ud800 without its low half names no character; yajl would have made it
 * '?' silently. The batch gets a 400 naming the escape and its offset, and
 * nothing of it is written; a proper pair still passes byte for byte.
 */
static void lone_surrogate_is_a_400(void **state)
{
	struct e2e *t = *state;
	static const char bad[] = "{\"events\":[{\"action\":\"ok\"},{\"action\":\"a\\ud800b\"}]}";
	static const char good[] = "{\"events\":[{\"action\":\"\\ud83d\\ude00\"}]}";
	char path[HARNESS_PATH + 32], *text;
	struct harness_response resp;

	e2e_boot(t, "function route(e, m) write('all.jsonl') end\n", NULL);
	resp = e2e_post_expect(t, bad, sizeof bad - 1, 400);
	if (strstr(resp.body, "lone UTF-16 surrogate") == NULL)
		fprintf(stderr, "[e2e] 400 body: %s\n", resp.body);
	assert_non_null(strstr(resp.body, "lone UTF-16 surrogate"));
	assert_non_null(strstr(resp.body, "byte 39"));
	harness_response_free(&resp);
	snprintf(path, sizeof path, "%s/all.jsonl", t->h.output_dir);
	assert_null(harness_read_file(path, NULL));

	resp = e2e_post_expect(t, good, sizeof good - 1, 200);
	e2e_assert_counts(&resp, 1, 0);
	harness_response_free(&resp);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "{\"action\":\"\\ud83d\\ude00\"}\n");
	free(text);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* An action that clears the screen, moves the cursor and breaks the line
 * (ESC, CSI, DEL, C1, U+2028, U+2029), as JSON escapes in the body. */
static const char hostile_batch[] =
	"{\"events\":[{\"action\":\"\\u001b[2J\\u001b[Hfake\\u007f\\u0085x\\u2028y\\u2029z\"}]}";

/* Posts hostile_batch to rules that log the action and then fail on it;
 * returns the daemon log after both lines are there (caller frees). */
static char *log_of_hostile_action(struct e2e *t, const char *conf, size_t *len)
{
	struct harness_response resp;
	char *log = NULL;

	e2e_boot(t, "function route(e, m) log.warn('got ' .. e.action); error('bad ' .. e.action) end\n",
		 conf);
	resp = e2e_post_expect(t, hostile_batch, sizeof hostile_batch - 1, 200);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	log = harness_read_file(t->h.log, len);
	assert_non_null(log);
	return log;
}

/* Nothing a terminal or log viewer acts on may come through raw. */
static void assert_no_raw_controls(const char *log, size_t len)
{
	assert_false(has_bytes(log, len, "\x1b", 1));
	assert_false(has_bytes(log, len, "\x7f", 1));
	assert_false(has_bytes(log, len, "\xc2\x85", 2));
	assert_false(has_bytes(log, len, "\xe2\x80\xa8", 3));
	assert_false(has_bytes(log, len, "\xe2\x80\xa9", 3));
}

static void text_log_escapes_event_data(void **state)
{
	struct e2e *t = *state;
	size_t len = 0;
	char *log = log_of_hostile_action(t, NULL, &len);

	assert_no_raw_controls(log, len);
	/* the rule's log line (log.* itself blanks C0 controls) and the rule
	 * error line, each one line, escaped */
	assert_non_null(strstr(log, "rules: got  [2J [Hfake\\x7f\\u0085x\\u2028y\\u2029z\n"));
	assert_non_null(strstr(log, "rule error on event 1 (\\x1b[2J\\x1b[Hfake\\x7f\\u0085x"));
	free(log);
	e2e_pass(t);
}

static void json_log_stays_valid_json(void **state)
{
	struct e2e *t = *state;
	size_t len = 0, lines = 0, seen = 0, seen_rules = 0;
	char *log = log_of_hostile_action(t, "log_format = json\n", &len), *save = NULL;

	assert_no_raw_controls(log, len);
	for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] != '{')
			continue;   /* the harness's own notes */
		yajl_val v = e2e_json(line);
		const char *msg = e2e_str(v, "msg");

		assert_non_null(msg);
		/* decoded, the message holds the action exactly */
		if (strstr(msg, "rule error on event 1 (\x1b[2J\x1b[Hfake\x7f\xc2\x85x\xe2\x80\xa8y"
				"\xe2\x80\xa9z)"))
			seen++;
		if (strstr(msg, "rules: got  [2J [Hfake\x7f\xc2\x85x\xe2\x80\xa8y\xe2\x80\xa9z"))
			seen_rules++;
		yajl_tree_free(v);
		lines++;
	}
	assert_true(lines > 2);
	assert_int_equal(seen, 1);
	assert_int_equal(seen_rules, 1);
	free(log);
	e2e_pass(t);
}

/* `check -c /dev/zero` used to grow one line buffer to gigabytes and never
 * return: now it stops at the first NUL byte (and a line or file cap). */
static void check_dev_zero_fails_fast(void **state)
{
	struct e2e *t = *state;
	const char *argv[] = { harness_bin(), "check", "-c", "/dev/zero", NULL };
	char *out = NULL, *err = NULL;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	int rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);

	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(rc, 1);
	assert_non_null(err);
	assert_non_null(strstr(err, "/dev/zero:1: line contains a NUL byte"));
	/* generous: it takes milliseconds; the old code never ended */
	assert_true(b.tv_sec - a.tv_sec < 5);
	free(out);
	free(err);
	e2e_pass(t);
}

/* Runs `egoi-router dlq ARGS -c router.conf`; returns its exit code. */
static int run_dlq(struct e2e *t, const char *sub, const char *opt, char **out, char **err)
{
	const char *argv[] = { harness_bin(), "dlq", sub, "-c", t->h.conf, opt, NULL };

	return harness_run(&t->h, argv, NULL, 20000, out, err);
}

/*
 * A malformed row in a real outbox (put there with SQLite beside the
 * running daemon: a time that is not a number, a payload that is not JSON)
 * is named on stderr and skipped; the good dead letters before and after it
 * are listed and replayed, and the exit code is 1.
 */
static void dlq_skips_malformed_rows(void **state)
{
	struct e2e *t = *state;
	static const char batch[] = "{\"events\":[{\"action\":\"a\"},{\"action\":\"b\"}]}";
	char *out = NULL, *err = NULL, *msg = NULL;
	struct harness_response resp;
	sqlite3 *db = NULL;

	e2e_boot(t, "function route(e, m) error('not yet') end\n", NULL);
	resp = e2e_post_expect(t, batch, sizeof batch - 1, 200);
	harness_response_free(&resp);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM dead_letters", 2, 10000), 0);
	assert_int_equal(sqlite3_open(t->h.db, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db,
			 "INSERT INTO dead_letters(id, kind, reason, payload, created_at, died_at)"
			 " VALUES (100, 'rule_error', 'x', '{\"action\":\"c\"}', 'soon', 1);"
			 "INSERT INTO dead_letters(id, kind, reason, payload, created_at, died_at)"
			 " VALUES (101, 'rule_error', 'x', X'7b6e6f', 1, 1);"
			 "INSERT INTO dead_letters(id, kind, reason, payload, request_id, event_index,"
			 " created_at, died_at)"
			 " VALUES (102, 'rule_error', 'x', '{\"action\":\"d\"}', 'r', 1, 1, 1);",
			 NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("insert: %s", msg ? msg : "?");
	sqlite3_close(db);

	assert_int_equal(run_dlq(t, "list", NULL, &out, &err), 1);
	assert_int_equal(count_lines(out), 4);   /* the two of the batch, 101 and 102 */
	assert_null(strstr(out, "\"id\":100,"));
	assert_non_null(strstr(out, "\"id\":102,"));
	assert_non_null(strstr(err, "dead letter 100 skipped"));
	assert_null(strstr(err, "out of memory"));
	free(out);
	free(err);

	assert_int_equal(harness_write_rules(&t->h, "function route(e, m) write('ok.jsonl') end\n",
					     NULL), 0);
	assert_int_equal(run_dlq(t, "replay", "--all", &out, &err), 1);
	assert_string_equal(out, "{\"replayed\":3,\"skipped\":2,\"failed\":0}\n");
	assert_non_null(strstr(err, "dead letter 100 skipped"));
	assert_non_null(strstr(err, "dead letter 101 skipped"));
	free(out);
	free(err);
	char path[HARNESS_PATH + 32];

	snprintf(path, sizeof path, "%s/ok.jsonl", t->h.output_dir);
	out = harness_read_file(path, NULL);
	assert_non_null(out);
	assert_string_equal(out, "{\"action\":\"a\"}\n{\"action\":\"b\"}\n{\"action\":\"d\"}\n");
	free(out);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_input_tests[] = {
	E2E_TEST(name_too_long_is_a_write_dead_letter),
	E2E_TEST(lone_surrogate_is_a_400),
	E2E_TEST(text_log_escapes_event_data),
	E2E_TEST(json_log_stays_valid_json),
	E2E_TEST(check_dev_zero_fails_fast),
	E2E_TEST(dlq_skips_malformed_rows),
};
const size_t e2e_input_count = sizeof(e2e_input_tests) / sizeof(e2e_input_tests[0]);
