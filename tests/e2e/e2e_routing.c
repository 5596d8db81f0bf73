/*
 * e2e_routing.c — end-to-end scenarios of what rules do:
 * default forwards carry the original bytes, custom forwards, retries and
 * dead letters of deliveries, written lines (whole lines on a full disk,
 * write_sync = batch), rule errors that cost only their own event, and the
 * metrics that count all of it.
 */
#include "e2e/e2e.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static void default_forward_is_byte_exact(void **state)
{
	struct e2e *t = *state;
	size_t len, pick[] = { 0, 1 };
	char *batch = e2e_fixture("batch-example.json", &len);
	struct harness_span spans[4];

	assert_int_equal(harness_event_spans(batch, len, spans, 4), 2);
	char *want = e2e_events_body(batch, spans, pick, 2);
	e2e_boot(t, "function route(e, m) forward('@RECV@/exact') end\n", NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);

	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 1);
	const struct recv_request *q = receiver_get(t->r, 0);
	assert_string_equal(q->method, "POST");
	assert_string_equal(q->uri, "/exact");
	assert_non_null(recv_header(q, "Content-Type"));
	assert_non_null(strstr(recv_header(q, "Content-Type"), "application/json"));
	assert_int_equal(q->body_len, strlen(want));
	assert_string_equal(q->body, want);
	free(want);
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* Odd but valid bytes (big integers, exponents, escapes, raw UTF-8, odd
 * spacing) arrive untouched, and each url gets its own request. */
static void default_forward_groups_per_url_keeping_raw_bytes(void **state)
{
	struct e2e *t = *state;
	static const char batch[] =
		"{ \"events\" : [\n"
		"  {\"action\":\"a\",\"n\":9007199254740993,\"f\":2.50e3,\"neg\":-0.0,"
		"\"s\":\"caf\\u00e9 \\\"q\\\" \\\\ \\/\",\"raw\":\"\xc3\xa9\xe2\x82\xac\","
		"\"nested\":{\"k\":[1, 2 ,{}], \"z\":null,\"t\":true}} ,\n"
		"  {\"action\":\"b\", \"list_id\":\"2\"},\n"
		"\t{ \"action\" : \"a\" ,\"x\":[ ] }\n"
		"] , \"extra\": 1}";
	static const char lua[] =
		"function route(e, m)\n"
		"  if m.index == 1 then\n"
		"    if e.n ~= 9007199254740993 or math.type(e.n) ~= 'integer' then error('n') end\n"
		"    if math.type(e.f) ~= 'float' or e.f ~= 2500.0 then error('f') end\n"
		"    if e.s ~= 'caf\\u{e9} \"q\" \\\\ /' then error('s') end\n"
		"    if e.nested.z ~= json.null or e.nested.t ~= true then error('nested') end\n"
		"  end\n"
		"  if e.action == 'b' then forward('@RECV@/b') else forward('@RECV@/a') end\n"
		"end\n";
	size_t len = sizeof(batch) - 1, pick_a[] = { 0, 2 }, pick_b[] = { 1 };
	struct harness_span spans[4];

	assert_int_equal(harness_event_spans(batch, len, spans, 4), 3);
	char *want_a = e2e_events_body(batch, spans, pick_a, 2);
	char *want_b = e2e_events_body(batch, spans, pick_b, 1);
	e2e_boot(t, lua, NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 3, 0);
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 2);
	assert_non_null(receiver_find(t->r, "/a"));
	assert_non_null(receiver_find(t->r, "/b"));
	assert_string_equal(receiver_find(t->r, "/a")->body, want_a);
	assert_string_equal(receiver_find(t->r, "/b")->body, want_b);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	free(want_a);
	free(want_b);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void custom_body_and_headers(void **state)
{
	struct e2e *t = *state;
	static const char lua[] =
		"function route(event, meta)\n"
		"  if meta.index == 1 then\n"
		"    forward('@RECV@/custom', {\n"
		"      method = 'PUT',\n"
		"      body = {kind = 'custom', action = event.action, date = event.action_date,\n"
		"              big = 9007199254740993, idx = meta.index},\n"
		"      headers = {['X-Custom-One'] = 'alpha', ['X-Custom-Two'] = 'beta'},\n"
		"      name = 'crm',\n"
		"    })\n"
		"  else\n"
		"    forward('@RECV@/text', {body = 'plain text for ' .. event.action,\n"
		"                            content_type = 'text/plain; charset=utf-8'})\n"
		"  end\n"
		"end\n";
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);

	e2e_boot(t, lua, NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 2);

	const struct recv_request *c = receiver_find(t->r, "/custom");
	assert_non_null(c);
	assert_string_equal(c->method, "PUT");
	assert_non_null(recv_header(c, "Content-Type"));
	assert_non_null(strstr(recv_header(c, "Content-Type"), "application/json"));
	assert_non_null(recv_header(c, "X-Custom-One"));
	assert_string_equal(recv_header(c, "X-Custom-One"), "alpha");
	assert_non_null(recv_header(c, "X-Custom-Two"));
	assert_string_equal(recv_header(c, "X-Custom-Two"), "beta");
	assert_non_null(recv_header(c, "X-Router-Delivery-Id"));
	assert_true(strlen(recv_header(c, "X-Router-Delivery-Id")) > 0);
	assert_non_null(recv_header(c, "X-Router-Attempt"));
	assert_string_equal(recv_header(c, "X-Router-Attempt"), "1");
	yajl_val body = e2e_json(c->body);
	assert_string_equal(e2e_str(body, "kind"), "custom");
	assert_string_equal(e2e_str(body, "action"), "email_send");
	yajl_val date = e2e_get(body, "date"), idx = e2e_get(body, "idx");
	assert_true(date != NULL && YAJL_IS_INTEGER(date));
	assert_int_equal(YAJL_GET_INTEGER(date), 631152000);
	assert_true(idx != NULL && YAJL_IS_INTEGER(idx));
	assert_int_equal(YAJL_GET_INTEGER(idx), 1);
	/* Integers beyond 2^53 are encoded exactly. */
	assert_non_null(strstr(c->body, "9007199254740993"));
	yajl_tree_free(body);

	const struct recv_request *p = receiver_find(t->r, "/text");
	assert_non_null(p);
	assert_string_equal(p->method, "POST");
	assert_non_null(recv_header(p, "Content-Type"));
	assert_string_equal(recv_header(p, "Content-Type"), "text/plain; charset=utf-8");
	assert_string_equal(p->body, "plain text for sms_send");
	assert_non_null(recv_header(p, "X-Router-Attempt"));
	assert_string_equal(recv_header(p, "X-Router-Attempt"), "1");
	assert_non_null(recv_header(p, "X-Router-Delivery-Id"));
	assert_string_not_equal(recv_header(p, "X-Router-Delivery-Id"),
				recv_header(c, "X-Router-Delivery-Id"));
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void retry_after_503_keeps_delivery_id(void **state)
{
	struct e2e *t = *state;
	const int script[] = { 503 };
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);

	receiver_script(t->r, script, 1);
	e2e_boot(t, "function route(e, m) forward('@RECV@/retry') end\n", NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	/* First retry waits at most 1 s (full jitter) — allow generously. */
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	const struct recv_request *a = receiver_get(t->r, 0), *b = receiver_get(t->r, 1);
	assert_int_equal(a->status, 503);
	assert_int_equal(b->status, 200);
	assert_non_null(recv_header(a, "X-Router-Delivery-Id"));
	assert_non_null(recv_header(b, "X-Router-Delivery-Id"));
	assert_string_equal(recv_header(a, "X-Router-Delivery-Id"),
			    recv_header(b, "X-Router-Delivery-Id"));
	assert_non_null(recv_header(a, "X-Router-Attempt"));
	assert_non_null(recv_header(b, "X-Router-Attempt"));
	assert_string_equal(recv_header(a, "X-Router-Attempt"), "1");
	assert_string_equal(recv_header(b, "X-Router-Attempt"), "2");
	assert_string_equal(a->body, b->body);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM deliveries", 0, 5000), 0);
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 2);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void forward_dead_letters_after_max_attempts(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);

	receiver_set_default(t->r, 503);
	e2e_boot(t, "function route(e, m) forward('@RECV@/down') end\n", "forward_max_attempts = 3\n");
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	/* Backoff before attempts 2 and 3 is at most 1 s + 2 s. */
	assert_int_equal(receiver_wait(t->r, 3, 10000), 0);
	assert_int_equal(harness_sql_wait(&t->h,
					  "SELECT count(*) FROM dead_letters WHERE kind = 'forward'",
					  1, 5000), 0);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM deliveries"), 0);
	char *payload = harness_sql_text(&t->h, "SELECT payload FROM dead_letters");
	assert_non_null(payload);
	assert_string_equal(payload, receiver_get(t->r, 0)->body);
	free(payload);
	char *reason = harness_sql_text(&t->h, "SELECT reason FROM dead_letters");
	assert_non_null(reason);
	if (strstr(reason, "503") == NULL)
		fprintf(stderr, "[e2e] forward dead letter reason lacks the status: %s\n", reason);
	assert_non_null(strstr(reason, "503"));
	free(reason);
	harness_sleep_ms(1500);
	assert_int_equal(receiver_count(t->r), 3);
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void forward_answered_404_is_not_retried(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);

	receiver_set_default(t->r, 404);
	e2e_boot(t, "function route(e, m) forward('@RECV@/gone') end\n", "forward_max_attempts = 10\n");
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	assert_int_equal(harness_sql_wait(&t->h,
					  "SELECT count(*) FROM dead_letters WHERE kind = 'forward'",
					  1, 5000), 0);
	harness_sleep_ms(1500);
	assert_int_equal(receiver_count(t->r), 1);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM deliveries"), 0);
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void written_lines(void **state)
{
	struct e2e *t = *state;
	static const char lua[] =
		"function route(event, meta)\n"
		"  write('engagement.jsonl')\n"
		"  write('sub/summary.txt', {line = meta.index .. ' ' .. event.action})\n"
		"  write('tables.jsonl', {line = {i = meta.index, a = event.action}})\n"
		"end\n";
	size_t len, flen;
	char *batch = e2e_fixture("batch-example.json", &len);
	struct harness_span spans[4];
	char path[HARNESS_PATH + 32];

	assert_int_equal(harness_event_spans(batch, len, spans, 4), 2);
	e2e_boot(t, lua, NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);

	/* No waiting: lines are appended before the 200. */
	snprintf(path, sizeof(path), "%s/engagement.jsonl", t->h.output_dir);
	char *text = harness_read_file(path, &flen);
	assert_non_null(text);
	char *want0 = harness_minify(batch + spans[0].off, spans[0].len);
	char *want1 = harness_minify(batch + spans[1].off, spans[1].len);
	char *want = malloc(strlen(want0) + strlen(want1) + 3);
	assert_non_null(want);
	sprintf(want, "%s\n%s\n", want0, want1);
	assert_string_equal(text, want);
	free(text);
	free(want);
	free(want0);
	free(want1);

	snprintf(path, sizeof(path), "%s/sub/summary.txt", t->h.output_dir);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "1 email_send\n2 sms_send\n");
	free(text);

	snprintf(path, sizeof(path), "%s/tables.jsonl", t->h.output_dir);
	text = harness_read_file(path, NULL);
	assert_non_null(text);
	char *nl = strchr(text, '\n');
	assert_non_null(nl);
	*nl = '\0';
	yajl_val l1 = e2e_json(text), l2 = e2e_json(nl + 1);
	yajl_val i1 = e2e_get(l1, "i"), i2 = e2e_get(l2, "i");
	assert_true(i1 != NULL && YAJL_IS_INTEGER(i1) && YAJL_GET_INTEGER(i1) == 1);
	assert_true(i2 != NULL && YAJL_IS_INTEGER(i2) && YAJL_GET_INTEGER(i2) == 2);
	assert_string_equal(e2e_str(l1, "a"), "email_send");
	assert_string_equal(e2e_str(l2, "a"), "sms_send");
	assert_non_null(strchr(nl + 1, '\n'));
	assert_null(strchr(strchr(nl + 1, '\n') + 1, '\n'));
	yajl_tree_free(l1);
	yajl_tree_free(l2);
	free(text);

	/* A second batch appends. */
	harness_response_free(&resp);
	resp = e2e_post_expect(t, batch, len, 200);
	snprintf(path, sizeof(path), "%s/sub/summary.txt", t->h.output_dir);
	text = harness_read_file(path, NULL);
	assert_string_equal(text, "1 email_send\n2 sms_send\n1 email_send\n2 sms_send\n");
	free(text);
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* Every line of text is a JSON object; returns how many there are. */
static size_t assert_json_lines(const char *path)
{
	size_t len = 0, n = 0;
	char *text = harness_read_file(path, &len), *line, *nl;

	assert_non_null(text);
	if (len > 0 && text[len - 1] != '\n')
		fail_msg("%s ends in the middle of a line", path);
	for (line = text; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		yajl_val v = e2e_json(line);   /* fails the test on two events glued together */

		assert_true(YAJL_IS_OBJECT(v));
		yajl_tree_free(v);
		n++;
	}
	free(text);
	return n;
}

static void written_lines_synced_with_write_sync_batch(void **state)
{
	struct e2e *t = *state;
	static const char lua[] =
		"function route(event, meta)\n"
		"  write('synced/deep/all.jsonl')\n"
		"  if event.action == 'email_send' then\n"
		"    write('synced/email.txt', {line = meta.index .. ' ' .. event.action})\n"
		"    forward('@RECV@/email')\n"
		"  end\n"
		"end\n";
	static const char only_lines[] = "{\"events\":[{\"action\":\"a\",\"i\":1},"
					 "{\"action\":\"b\",\"i\":2},{\"action\":\"c\",\"i\":3}]}";
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len), *text;
	char all[HARNESS_PATH + 32], email[HARNESS_PATH + 32];
	struct harness_response resp;

	snprintf(all, sizeof(all), "%s/synced/deep/all.jsonl", t->h.output_dir);
	snprintf(email, sizeof(email), "%s/synced/email.txt", t->h.output_dir);
	e2e_boot(t, lua, "write_sync = batch\n");
	/* lines and a forward: both durable before the 200, read right after it */
	resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);
	harness_response_free(&resp);
	assert_int_equal(assert_json_lines(all), 2);
	text = harness_read_file(email, NULL);
	assert_non_null(text);
	assert_string_equal(text, "1 email_send\n");
	free(text);
	/* batches of lines alone (no outbox rows) go through the group commit too */
	for (int i = 0; i < 10; i++) {
		resp = e2e_post_expect(t, only_lines, sizeof(only_lines) - 1, 200);
		e2e_assert_counts(&resp, 3, 0);
		harness_response_free(&resp);
		assert_int_equal(assert_json_lines(all), 2 + 3 * (i + 1));
	}
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	text = harness_read_file(t->h.log, NULL);
	assert_non_null(text);
	assert_null(strstr(text, "cannot sync"));
	assert_null(strstr(text, "not committed"));
	free(text);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* Writes path until its file system is full (bounded). */
static void fill_up(const char *path)
{
	static const char zeros[512];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	for (int i = 0; i < 1 << 20; i++)
		if (write(fd, zeros, sizeof(zeros)) < (ssize_t)sizeof(zeros))
			break;
	close(fd);
}

/* The incident this guards against: a full disk cut a line short, and the
 * next batch's first line was glued onto the fragment. */
static void full_output_dir_answers_503_and_keeps_whole_lines(void **state)
{
	struct e2e *t = *state;
	char path[HARNESS_PATH + 32], filler[HARNESS_PATH + 32];
	char *big, *p, *before, *after;
	size_t before_len, after_len;
	struct harness_response resp;

	if (geteuid() != 0) {
		fprintf(stderr, "[e2e] skipped: a full output_dir (tiny tmpfs) needs root\n");
		skip();
	}
	assert_int_equal(mkdir(t->h.output_dir, 0750), 0);
	if (mount("tmpfs", t->h.output_dir, "tmpfs", 0, "size=64k,mode=0750") != 0) {
		fprintf(stderr, "[e2e] skipped: cannot mount a tmpfs: %s\n", strerror(errno));
		skip();
	}
	snprintf(t->mnt, sizeof(t->mnt), "%s", t->h.output_dir);
	snprintf(path, sizeof(path), "%s/events.jsonl", t->h.output_dir);
	snprintf(filler, sizeof(filler), "%s/filler", t->h.output_dir);
	/* 30 events of ~300 bytes: 9 KiB, more than the page a full disk leaves */
	big = malloc(30 * 400 + 64);
	assert_non_null(big);
	p = big + sprintf(big, "{\"events\":[");
	for (int i = 0; i < 30; i++)
		p += sprintf(p, "%s{\"action\":\"a\",\"i\":%d,\"pad\":\"%0280d\"}", i ? "," : "", i, i);
	strcpy(p, "]}");

	e2e_boot(t, "function route(e, m) write('events.jsonl') end\n", NULL);
	resp = e2e_post_expect(t, "{\"events\":[{\"action\":\"first\"}]}", 31, 200);
	harness_response_free(&resp);
	fill_up(filler);
	resp = e2e_post_expect(t, big, strlen(big), 503);
	harness_response_free(&resp);
	before = harness_read_file(path, &before_len);
	assert_non_null(before);
	assert_string_equal(before, "{\"action\":\"first\"}\n");   /* nothing of the 503 batch */

	/* space comes back; E-goi's retry lands as 30 whole lines */
	assert_int_equal(unlink(filler), 0);
	resp = e2e_post_expect(t, big, strlen(big), 200);
	e2e_assert_counts(&resp, 30, 0);
	harness_response_free(&resp);
	assert_int_equal(assert_json_lines(path), 31);
	after = harness_read_file(path, &after_len);
	assert_memory_equal(after, before, before_len);
	free(before);
	free(after);
	free(big);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void write_outside_output_dir_is_refused(void **state)
{
	struct e2e *t = *state;
	static const char batch[] = "{\"events\":[{\"action\":\"up\"},{\"action\":\"abs\"},"
				    "{\"action\":\"link\"},{\"action\":\"fine\"}]}";
	char lua[2048], path[HARNESS_PATH + 32], link[HARNESS_PATH + 32];

	snprintf(lua, sizeof(lua),
		 "function route(e, m)\n"
		 "  if e.action == 'up' then write('../escape.txt')\n"
		 "  elseif e.action == 'abs' then write('%s/abs.txt')\n"
		 "  elseif e.action == 'link' then write('link/x.txt')\n"
		 "  else write('fine/ok.jsonl') end\n"
		 "end\n",
		 t->h.dir);
	/* output_dir/link points outside output_dir. */
	assert_int_equal(mkdir(t->h.output_dir, 0750), 0);
	snprintf(link, sizeof(link), "%s/link", t->h.output_dir);
	assert_int_equal(symlink(t->h.dir, link), 0);

	e2e_boot(t, lua, NULL);
	struct harness_response resp = e2e_post_expect(t, batch, sizeof(batch) - 1, 200);
	snprintf(path, sizeof(path), "%s/fine/ok.jsonl", t->h.output_dir);
	char *text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "{\"action\":\"fine\"}\n");
	free(text);
	snprintf(path, sizeof(path), "%s/escape.txt", t->h.dir);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/abs.txt", t->h.dir);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/x.txt", t->h.dir);
	assert_int_not_equal(access(path, F_OK), 0);
	/* Each refused write is a dead letter of its own event. */
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 3);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters WHERE "
						 "kind IN ('rule_error', 'write') AND "
						 "event_index IN (1, 2, 3)"), 3);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void rule_error_dead_letters_only_its_event(void **state)
{
	struct e2e *t = *state;
	static const char lua[] =
		"function route(event, meta)\n"
		"  if event.action == 'email_open' then error('boom: cannot route ' .. event.action) end\n"
		"  forward('@RECV@/ok')\n"
		"end\n";
	size_t len, elen, pick[37], k = 0;
	char *batch = e2e_fixture("batch-all-actions.json", &len);
	char *example = e2e_fixture("batch-example.json", &elen);
	struct harness_span spans[40];

	assert_int_equal(harness_event_spans(batch, len, spans, 40), 38);
	/* email_open is the 11th event of the fixture. */
	assert_non_null(strstr(batch + spans[10].off, "\"email_open\""));
	assert_true(strstr(batch + spans[10].off, "\"email_open\"") < batch + spans[10].off + spans[10].len);
	for (size_t i = 0; i < 38; i++)
		if (i != 10)
			pick[k++] = i;
	char *want = e2e_events_body(batch, spans, pick, 37);

	e2e_boot(t, lua, NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 38, 0);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	assert_string_equal(receiver_get(t->r, 0)->body, want);

	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 1);
	char *kind = harness_sql_text(&t->h, "SELECT kind FROM dead_letters");
	char *reason = harness_sql_text(&t->h, "SELECT reason FROM dead_letters");
	char *payload = harness_sql_text(&t->h, "SELECT payload FROM dead_letters");
	assert_int_equal(harness_sql_long(&t->h, "SELECT event_index FROM dead_letters"), 11);
	assert_non_null(kind);
	assert_string_equal(kind, "rule_error");
	assert_non_null(reason);
	assert_non_null(strstr(reason, "boom: cannot route email_open"));
	assert_non_null(payload);
	/* The event's original JSON: its exact bytes (or their compact form). */
	char *compact = harness_minify(batch + spans[10].off, spans[10].len);
	if (!(strlen(payload) == spans[10].len &&
	      memcmp(payload, batch + spans[10].off, spans[10].len) == 0))
		assert_string_equal(payload, compact);

	/* The worker is still healthy: the next batch routes normally. */
	harness_response_free(&resp);
	resp = e2e_post_expect(t, example, elen, 200);
	e2e_assert_counts(&resp, 2, 0);
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 1);
	free(compact);
	free(kind);
	free(reason);
	free(payload);
	free(want);
	free(batch);
	free(example);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void runaway_rules_are_stopped_and_dead_lettered(void **state)
{
	struct e2e *t = *state;
	static const char batch[] = "{\"events\":[{\"action\":\"ok\"},{\"action\":\"spin\"},"
				    "{\"action\":\"hog\"},{\"action\":\"ok\"}]}";
	static const char lua[] =
		"function route(e, m)\n"
		"  if e.action == 'spin' then while true do end end\n"
		"  if e.action == 'hog' then\n"
		"    local t = {}\n"
		"    for i = 1, 1e9 do t[i] = string.rep('x', 1024 * 1024) .. i end\n"
		"  end\n"
		"  forward('@RECV@/ok')\n"
		"end\n";

	e2e_boot(t, lua, "lua_instruction_limit = 1000000\nlua_memory_limit = 32M\n");
	struct harness_response resp = e2e_post_expect(t, batch, sizeof(batch) - 1, 200);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	assert_string_equal(receiver_get(t->r, 0)->body,
			    "{\"events\":[{\"action\":\"ok\"},{\"action\":\"ok\"}]}");
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters WHERE "
						 "kind = 'rule_error' AND event_index IN (2, 3)"), 2);
	/* And the same workers serve the next batch. */
	harness_response_free(&resp);
	resp = e2e_post_expect(t, batch, sizeof(batch) - 1, 200);
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 4);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* The value of the sample "series value" in a /metrics text; -1 if absent. */
static double metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *line = text; line && *line; line = strchr(line, '\n'), line += !!line)
		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			return strtod(line + n + 1, NULL);
	return -1;
}

/* GET /metrics over TLS, without the token; the body (caller frees). */
static char *scrape(struct e2e *t)
{
	struct harness_response resp;
	char *text;

	assert_int_equal(harness_request(&t->h, "GET", "/metrics", NULL, NULL, NULL, 0, 0, &resp),
			 0);
	assert_int_equal(resp.status, 200);
	assert_non_null(strstr(resp.body, "# TYPE egoi_router_requests_total counter\n"));
	text = resp.body;
	resp.body = NULL;
	harness_response_free(&resp);
	return text;
}

/*
 * lua_states = 1: three connections, each held by its own worker thread,
 * route through the one Lua state in turn, so a rule global counts across
 * them (one state per worker would start each connection's count at 1).
 */
static void connections_share_the_lua_states(void **state)
{
	struct e2e *t = *state;
	static const char batch[] = "{\"events\":[{\"action\":\"a\"}]}";
	struct harness_conn *k[3];
	struct harness_response resp;
	char path[HARNESS_PATH + 16];
	struct stat st;
	int reused;

	e2e_boot(t, "function route(e) n = (n or 0) + 1 write('n-' .. n .. '.jsonl') end\n",
		 "threads = 4\nlua_states = 1\n");
	for (int i = 0; i < 3; i++) {
		k[i] = harness_conn_new(&t->h);
		assert_non_null(k[i]);
		assert_int_equal(harness_conn_request(k[i], "/healthz", NULL, 0, &resp, &reused), 0);
		assert_int_equal(resp.status, 200);
		harness_response_free(&resp);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(harness_conn_request(k[i], "/hooks/egoi", batch, sizeof batch - 1,
						      &resp, &reused), 0);
		assert_int_equal(resp.status, 200);
		assert_true(reused);   /* the connection, and so the worker, it opened with */
		harness_response_free(&resp);
	}
	for (int i = 1; i <= 3; i++) {
		snprintf(path, sizeof path, "%s/n-%d.jsonl", t->h.output_dir, i);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_size, (off_t)sizeof batch - 1 - strlen("{\"events\":[]}") + 1);
	}
	for (int i = 0; i < 3; i++)
		harness_conn_free(k[i]);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/*
 * A Lua state shrinks (full collection, free lists back to malloc) once it
 * has been quiet for a second, and once per period of use: after each of
 * two batches, not before the first; its globals stay.
 */
static void quiet_lua_states_shrink_and_keep_globals(void **state)
{
	struct e2e *t = *state;
	static const char batch[] = "{\"events\":[{\"action\":\"a\"}]}";
	static const char quiet[] = "Lua state(s) quiet for 1 s: shrunk";
	char path[HARNESS_PATH + 16];
	struct harness_response resp;

	e2e_boot(t, "function route(e) n = (n or 0) + 1 write('n-' .. n .. '.jsonl') end\n",
		 "lua_states = 2\n");
	assert_int_equal(e2e_log_count(t, quiet), 0);   /* nothing built, nothing to shrink */
	resp = e2e_post_expect(t, batch, sizeof batch - 1, 200);
	harness_response_free(&resp);
	assert_true(e2e_log_wait(t, quiet, 1));
	resp = e2e_post_expect(t, batch, sizeof batch - 1, 200);
	harness_response_free(&resp);
	assert_true(e2e_log_wait(t, quiet, 2));
	snprintf(path, sizeof path, "%s/n-2.jsonl", t->h.output_dir);   /* the global survived */
	assert_int_equal(access(path, F_OK), 0);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/*
 * With one Lua state and four clients posting at once, batches queue for
 * the state; /metrics counts them and the time they waited, and every
 * batch is still answered 200.
 */
static void lua_state_waits_are_counted(void **state)
{
	struct e2e *t = *state;
	struct harness_load *l;
	double waits = -1, seconds = -1;
	long total = 0, failed = 0;

	e2e_boot(t, "function route(e) local x = 0 for i = 1, 200000 do x = x + i end drop('busy') end\n",
		 "lua_states = 1\n");
	l = harness_load_start(&t->h, 4, 5);
	assert_non_null(l);
	for (int i = 0; i < 400 && harness_load_ok(l) < 80; i++)
		harness_sleep_ms(25);
	harness_load_stop(l);
	failed = harness_load_not_200(l, &total);
	harness_load_free(l);
	assert_int_equal(failed, 0);
	assert_true(total >= 80);
	assert_int_equal(harness_metric(&t->h, "egoi_router_lua_state_waits_total", &waits), 0);
	assert_int_equal(harness_metric(&t->h, "egoi_router_lua_state_wait_seconds_total", &seconds), 0);
	fprintf(stderr, "[e2e] %ld batches, %.0f waited for the Lua state, %.3f s in all\n", total, waits,
		seconds);
	assert_true(waits >= 1 && waits < (double)total);
	assert_true(seconds > 0);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void metrics_count_requests_events_decisions_deliveries(void **state)
{
	struct e2e *t = *state;
	static const char lua[] =
		"function route(e, m)\n"
		"  local a = e.action\n"
		"  if a:sub(1, 6) == 'email_' then forward('@RECV@/crm', { name = 'crm' })\n"
		"  elseif a == 'goal_conversion' then forward('@RECV@/goal')\n"
		"  elseif a:sub(1, 4) == 'sms_' then write('sms.jsonl')\n"
		"  elseif a:sub(1, 5) == 'push_' then drop('push')\n"
		"  elseif a == 'new_order' then error('boom')\n"
		"  end\n"
		"end\n";
	size_t len;
	char *batch = e2e_fixture("batch-all-actions.json", &len), *text;
	struct harness_response resp;

	e2e_boot(t, lua, NULL);
	text = scrape(t);
	assert_true(metric(text, "egoi_router_requests_total{code=\"200\"}") == 0);
	free(text);

	resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 38, 0);
	harness_response_free(&resp);
	assert_int_equal(harness_request(&t->h, "POST", "/hooks/egoi", "application/json", NULL,
					 batch, len, 0, &resp), 0);
	assert_int_equal(resp.status, 401);
	harness_response_free(&resp);
	/* /metrics itself answers only GET, and is not an endpoint request */
	assert_int_equal(harness_request(&t->h, "POST", "/metrics", "application/json", NULL,
					 "{}", 2, 0, &resp), 0);
	assert_int_equal(resp.status, 405);
	harness_response_free(&resp);

	/* Both forwards delivered, and the gauges (refreshed each second) caught up. */
	assert_int_equal(receiver_wait(t->r, 2, 10000), 0);
	text = NULL;
	for (int i = 0; i < 100; i++) {
		free(text);
		text = scrape(t);
		if (metric(text, "egoi_router_deliveries_total{name=\"crm\",outcome=\"done\"}") == 1 &&
		    metric(text, "egoi_router_deliveries_total{name=\"127.0.0.1\",outcome=\"done\"}")
			    == 1 &&
		    metric(text, "egoi_router_outbox_pending") == 0 &&
		    metric(text, "egoi_router_dead_letters") == 1)
			break;
		harness_sleep_ms(100);
	}
	assert_true(metric(text, "egoi_router_deliveries_total{name=\"crm\",outcome=\"done\"}") ==
		    1);
	assert_true(metric(text,
			   "egoi_router_deliveries_total{name=\"127.0.0.1\",outcome=\"done\"}") == 1);
	assert_true(metric(text, "egoi_router_outbox_pending") == 0);
	assert_true(metric(text, "egoi_router_dead_letters") == 1);
	assert_true(metric(text, "egoi_router_delivery_seconds_count") == 2);

	assert_true(metric(text, "egoi_router_requests_total{code=\"200\"}") == 1);
	assert_true(metric(text, "egoi_router_requests_total{code=\"401\"}") == 1);
	assert_true(metric(text, "egoi_router_requests_total{code=\"405\"}") == 0);
	assert_true(metric(text, "egoi_router_request_seconds_count") == 2);
	assert_true(metric(text, "egoi_router_events_total{action=\"email_send\"}") == 1);
	assert_true(metric(text, "egoi_router_events_total{action=\"new_order\"}") == 1);
	assert_true(metric(text, "egoi_router_events_total{action=\"web_push_open\"}") == 1);
	assert_true(metric(text, "egoi_router_events_total{action=\"other\"}") == 0);
	assert_true(metric(text, "egoi_router_decisions_total{kind=\"forward\",name=\"crm\"}") ==
		    7);
	assert_true(metric(text,
			   "egoi_router_decisions_total{kind=\"forward\",name=\"127.0.0.1\"}") == 1);
	assert_true(metric(text,
			   "egoi_router_decisions_total{kind=\"write\",name=\"sms.jsonl\"}") == 2);
	assert_true(metric(text, "egoi_router_decisions_total{kind=\"drop\",name=\"push\"}") == 6);
	assert_true(metric(text, "egoi_router_decisions_total{kind=\"drop\",name=\"no_rule\"}") ==
		    21);
	assert_true(metric(text,
			   "egoi_router_decisions_total{kind=\"error\",name=\"rule_error\"}") == 1);
	assert_true(metric(text, "egoi_router_rule_errors_total") == 1);
	free(text);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_routing_tests[] = {
	E2E_TEST(default_forward_is_byte_exact),
	E2E_TEST(default_forward_groups_per_url_keeping_raw_bytes),
	E2E_TEST(custom_body_and_headers),
	E2E_TEST(retry_after_503_keeps_delivery_id),
	E2E_TEST(forward_dead_letters_after_max_attempts),
	E2E_TEST(forward_answered_404_is_not_retried),
	E2E_TEST(written_lines),
	E2E_TEST(written_lines_synced_with_write_sync_batch),
	E2E_TEST(full_output_dir_answers_503_and_keeps_whole_lines),
	E2E_TEST(write_outside_output_dir_is_refused),
	E2E_TEST(rule_error_dead_letters_only_its_event),
	E2E_TEST(runaway_rules_are_stopped_and_dead_lettered),
	E2E_TEST(connections_share_the_lua_states),
	E2E_TEST(quiet_lua_states_shrink_and_keep_globals),
	E2E_TEST(lua_state_waits_are_counted),
	E2E_TEST(metrics_count_requests_events_decisions_deliveries),
};
const size_t e2e_routing_count = sizeof(e2e_routing_tests) / sizeof(e2e_routing_tests[0]);
