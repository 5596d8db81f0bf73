/*
 * e2e_intake.c — end-to-end scenarios of the intake (HTTP answers, auth,
 * limits, rejected elements): what E-goi sees when it posts a batch.
 */
#include "e2e/e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>


static const char forward_all_lua[] = "function route(event, meta)\n"
				      "  forward(\"@RECV@/in\")\n"
				      "end\n";

static void healthz_answers_ok_over_verified_tls(void **state)
{
	struct e2e *t = *state;
	struct harness_response resp;

	e2e_boot(t, forward_all_lua, NULL);
	assert_int_equal(harness_request(&t->h, "GET", "/healthz", NULL, NULL, NULL, 0, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	assert_non_null(strstr(resp.body, "ok"));
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* The rule checks what it is given (integers stay integers, meta is filled)
 * and errors otherwise, which would show as dead letters. */
static const char all_actions_lua[] =
	"function route(event, meta)\n"
	"  if math.type(event.action_date) ~= 'integer' then error('action_date not integer') end\n"
	"  if meta.batch_size ~= 38 then error('batch_size ' .. tostring(meta.batch_size)) end\n"
	"  if math.type(meta.index) ~= 'integer' or meta.index < 1 then error('index') end\n"
	"  if type(event.contact.base[1]) ~= 'string' then error('contact.base') end\n"
	"  if type(event.contact.fields[1].email) ~= 'string' then error('contact.fields') end\n"
	"  forward('@RECV@/all', {name = 'all'})\n"
	"end\n";

static void all_38_actions_accepted(void **state)
{
	struct e2e *t = *state;
	size_t len, alen, pick[38];
	char *batch = e2e_fixture("batch-all-actions.json", &len);
	char *actions = e2e_fixture("actions.json", &alen);
	struct harness_span spans[40];

	assert_int_equal(harness_event_spans(batch, len, spans, 40), 38);
	e2e_boot(t, all_actions_lua, NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 38, 0);

	/* One request per url per batch: exactly one, holding all 38 in order. */
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 1);
	const struct recv_request *q = receiver_get(t->r, 0);
	assert_string_equal(q->uri, "/all");
	yajl_val body = e2e_json(q->body), list = e2e_json(actions);
	yajl_val events = e2e_get(body, "events");
	assert_true(YAJL_IS_ARRAY(events));
	assert_int_equal(YAJL_GET_ARRAY(events)->len, 38);
	assert_true(YAJL_IS_ARRAY(list));
	assert_int_equal(YAJL_GET_ARRAY(list)->len, 38);
	for (size_t i = 0; i < 38; i++)
		assert_string_equal(e2e_str(YAJL_GET_ARRAY(events)->values[i], "action"),
				    e2e_str(YAJL_GET_ARRAY(list)->values[i], "action"));
	for (size_t i = 0; i < 38; i++)
		pick[i] = i;
	char *want = e2e_events_body(batch, spans, pick, 38);
	assert_string_equal(q->body, want);

	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM deliveries", 0, 5000), 0);
	free(want);
	yajl_tree_free(body);
	yajl_tree_free(list);
	harness_response_free(&resp);
	free(batch);
	free(actions);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void missing_or_wrong_token_gets_401(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);
	char wrong_q[128];
	const char *wrong_hdr[] = { "X-Router-Token: not-the-token", NULL };
	const char *wrong_bearer[] = { "Authorization: Bearer not-the-token", NULL };
	struct harness_response resp;

	snprintf(wrong_q, sizeof(wrong_q), "/hooks/egoi?token=%.8s", t->h.token);
	e2e_boot(t, forward_all_lua, NULL);
	struct {
		const char *path;
		const char *const *headers;
	} cases[] = {
		{ "/hooks/egoi", NULL },
		{ "/hooks/egoi", wrong_hdr },
		{ "/hooks/egoi", wrong_bearer },
		{ wrong_q, NULL }, /* a prefix of the real token is still wrong */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(harness_request(&t->h, "POST", cases[i].path, "application/json",
						 cases[i].headers, batch, len, 0, &resp), 0);
		if (resp.status != 401)
			fprintf(stderr, "[e2e] case %zu answered %ld\n", i, resp.status);
		assert_int_equal(resp.status, 401);
		assert_null(strstr(resp.body, t->h.token));
		harness_response_free(&resp);
	}
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 0);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void token_accepted_by_header_query_and_bearer_never_logged(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);
	char query[160], bearer[160];
	struct harness_response resp;

	snprintf(query, sizeof(query), "/hooks/egoi?token=%s", t->h.token);
	snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", t->h.token);
	const char *bearer_hdr[] = { bearer, NULL };

	/* The token comes from the environment (`env:NAME` secrets). */
	e2e_boot(t, forward_all_lua, "auth_token = env:E2E_TOKEN\n");
	resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);
	harness_response_free(&resp);
	assert_int_equal(harness_request(&t->h, "POST", query, "application/json", NULL, batch, len,
					 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);
	assert_int_equal(harness_request(&t->h, "POST", "/hooks/egoi", "application/json",
					 bearer_hdr, batch, len, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);

	assert_int_equal(receiver_wait(t->r, 3, 10000), 0);
	e2e_stop_ok(t);
	char *log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	if (strstr(log, t->h.token) != NULL)
		fprintf(stderr, "[e2e] the auth token appears in the daemon log\n");
	assert_null(strstr(log, t->h.token));
	free(log);
	free(batch);
	e2e_pass(t);
}

static void not_post_on_endpoint_gets_405(void **state)
{
	struct e2e *t = *state;
	const char *methods[] = { "GET", "PUT", "DELETE" };
	struct harness_response resp;

	e2e_boot(t, forward_all_lua, NULL);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(harness_request(&t->h, methods[i], "/hooks/egoi", "application/json",
						 NULL, "{\"events\":[]}", 13, 1, &resp), 0);
		if (resp.status != 405)
			fprintf(stderr, "[e2e] %s answered %ld\n", methods[i], resp.status);
		assert_int_equal(resp.status, 405);
		harness_response_free(&resp);
	}
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* --- bodies that arrive slowly or not at all --- */

struct slow_body {
	const char *data;
	size_t len, sent;
	size_t stall_at;        /* after this many bytes, pause stall_ms once */
	long stall_ms;
	size_t chunk;           /* send this much at a time, pausing chunk_ms before each (0 = no pacing) */
	long chunk_ms;
};

static size_t slow_read(char *buf, size_t size, size_t nitems, void *arg)
{
	struct slow_body *b = arg;
	size_t room = size * nitems, n;

	if (b->sent >= b->len || room == 0)
		return 0;
	if (b->chunk > 0) {
		harness_sleep_ms(b->chunk_ms);
		n = b->chunk < b->len - b->sent ? b->chunk : b->len - b->sent;
	} else if (b->sent == b->stall_at) {
		harness_sleep_ms(b->stall_ms);
		b->stall_at = (size_t)-1;
		n = 1;
	} else {
		n = b->len - b->sent;
		if (b->sent < b->stall_at && b->stall_at - b->sent < n)
			n = b->stall_at - b->sent;
	}
	if (n > room)
		n = room;
	memcpy(buf, b->data + b->sent, n);
	b->sent += n;
	return n;
}

static size_t slow_discard(char *d, size_t size, size_t n, void *arg)
{
	(void)d;
	(void)arg;
	return size * n;
}

/* POSTs b with its full Content-Length but paced as b says; returns the status. */
static long slow_post(struct e2e *t, struct slow_body *b, double *secs)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	char url[128], tok[128];
	long status = 0;
	struct timespec t0, t1;

	assert_non_null(c);
	snprintf(url, sizeof url, "https://127.0.0.1:%d/hooks/egoi", t->h.port);
	snprintf(tok, sizeof tok, "X-Router-Token: %s", t->h.token);
	hl = curl_slist_append(hl, "Content-Type: application/json");
	hl = curl_slist_append(hl, "Expect:");
	hl = curl_slist_append(hl, tok);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, harness_cert());
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, slow_read);
	curl_easy_setopt(c, CURLOPT_READDATA, b);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, slow_discard);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 40L);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	curl_easy_perform(c);   /* an early answer may end the upload with an error */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return status;
}

/* A body that stops short of its Content-Length is not a batch: 400, nothing
 * routed. min_body_rate = 0 lets civetweb's read time out (with the default
 * rate the stall is answered 408 sooner, see e2e_guard.c). */
static void body_shorter_than_declared_gets_400(void **state)
{
	struct e2e *t = *state;
	const char *body = "{\"events\":[{\"action\":\"email_open\"}]}      ";
	struct slow_body b = { .data = body, .len = strlen(body), .stall_at = strlen(body) - 6,
			       .stall_ms = 12000 };
	double secs;

	e2e_boot(t, "function route(e, m) write('seen.jsonl') end\n", "min_body_rate = 0\n");
	assert_int_equal(slow_post(t, &b, &secs), 400);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	e2e_stop_ok(t);
	{
		char path[HARNESS_PATH + 16];

		snprintf(path, sizeof path, "%s/seen.jsonl", t->h.output_dir);
		assert_int_equal(access(path, F_OK), -1);
	}
	e2e_pass(t);
}

/* A client trickling its body (a byte every 0.4 s) cannot hold a worker for
 * ever: past 10 s + 1 s per 64 KiB declared, it gets 408 and is cut off. */
static void trickled_body_gets_408(void **state)
{
	struct e2e *t = *state;
	static char body[64];
	struct slow_body b = { .data = body, .len = sizeof body, .chunk = 1, .chunk_ms = 400 };
	double secs;

	memset(body, ' ', sizeof body);
	e2e_boot(t, forward_all_lua, NULL);
	assert_int_equal(slow_post(t, &b, &secs), 408);
	assert_true(secs < 14.0);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void non_json_content_type_gets_415(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);
	const char *bad[] = { "text/plain", "application/x-www-form-urlencoded", NULL };
	struct harness_response resp;

	e2e_boot(t, forward_all_lua, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(harness_request(&t->h, "POST", "/hooks/egoi", bad[i], NULL, batch,
						 len, 1, &resp), 0);
		if (resp.status != 415)
			fprintf(stderr, "[e2e] Content-Type %s answered %ld\n",
				bad[i] != NULL ? bad[i] : "(none)", resp.status);
		assert_int_equal(resp.status, 415);
		harness_response_free(&resp);
	}
	/* A charset parameter is still JSON. */
	assert_int_equal(harness_request(&t->h, "POST", "/hooks/egoi",
					 "application/json; charset=utf-8", NULL, batch, len, 1,
					 &resp), 0);
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void body_over_max_body_gets_413(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);
	char big[2100];
	const char *chunked[] = { "Transfer-Encoding: chunked", NULL };
	struct harness_response resp;

	assert_true(len < 1024);
	/* Valid JSON, just too long: only the size can be the reason. */
	int n = snprintf(big, sizeof(big), "{\"events\":[{\"action\":\"email_send\",\"pad\":\"");
	memset(big + n, 'x', 2000);
	memcpy(big + n + 2000, "\"}]}", 5);
	e2e_boot(t, forward_all_lua, "max_body = 1k\n");
	resp = e2e_post_expect(t, big, strlen(big), 413);
	harness_response_free(&resp);
	/* Chunked, so no Content-Length to trust: the bytes read count. */
	assert_int_equal(harness_request(&t->h, "POST", "/hooks/egoi", "application/json", chunked,
					 big, strlen(big), 1, &resp), 0);
	assert_int_equal(resp.status, 413);
	harness_response_free(&resp);
	resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);
	harness_response_free(&resp);
	free(batch);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static char *events_batch(int n)
{
	char *out = malloc(64 + (size_t)n * 48);
	size_t len = 0;

	assert_non_null(out);
	len += (size_t)sprintf(out, "{\"events\":[");
	for (int i = 0; i < n; i++)
		len += (size_t)sprintf(out + len, "%s{\"action\":\"email_open\",\"list_id\":\"%d\"}",
				       i > 0 ? "," : "", i + 1);
	sprintf(out + len, "]}");
	return out;
}

static void events_over_max_events_gets_413(void **state)
{
	struct e2e *t = *state;
	char *six = events_batch(6), *five = events_batch(5);
	struct harness_response resp;

	e2e_boot(t, forward_all_lua, "max_events = 5\n");
	resp = e2e_post_expect(t, six, strlen(six), 413);
	harness_response_free(&resp);
	resp = e2e_post_expect(t, five, strlen(five), 200);
	e2e_assert_counts(&resp, 5, 0);
	harness_response_free(&resp);
	/* Only the accepted batch reaches the receiver. */
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 1);
	assert_string_equal(receiver_get(t->r, 0)->body, five);
	free(six);
	free(five);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* True when text holds a decimal number within [lo, hi]. */
static int mentions_number_in(const char *text, long lo, long hi)
{
	for (const char *p = text; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9' && (p == text || p[-1] < '0' || p[-1] > '9')) {
			long v = strtol(p, NULL, 10);
			if (v >= lo && v <= hi)
				return 1;
		}
	}
	return 0;
}

static void malformed_batches_get_400_with_reason(void **state)
{
	struct e2e *t = *state;
	char deep[400];
	size_t n = 0;
	struct harness_response resp;
	struct {
		const char *body;
		long off_lo, off_hi; /* expected byte offset range, -1 = not checked */
	} cases[] = {
		{ "{\"events\":[{\"action\":\"a\"},]}", 24, 28 }, /* trailing comma at 26 */
		{ "{\"events\":[{\"action\":\"a\"}", -1, -1 },     /* truncated */
		{ "not json", -1, -1 },
		{ "", -1, -1 },
		{ "[{\"action\":\"a\"}]", -1, -1 },               /* not an object */
		{ "\"events\"", -1, -1 },
		{ "{}", -1, -1 },                                 /* no events */
		{ "{\"foo\":[]}", -1, -1 },
		{ "{\"events\":{\"action\":\"a\"}}", -1, -1 },    /* events not an array */
		{ "{\"events\":\"x\"}", -1, -1 },
		{ "{\"events\":[{\"action\":\"\xff\xfe\"}]}", -1, -1 }, /* invalid UTF-8 */
	};

	e2e_boot(t, forward_all_lua, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(harness_post(&t->h, cases[i].body, strlen(cases[i].body), &resp), 0);
		if (resp.status != 400)
			fprintf(stderr, "[e2e] case %zu (%s) answered %ld: %s\n", i, cases[i].body,
				resp.status, resp.body);
		assert_int_equal(resp.status, 400);
		/* One line of reason (a trailing newline allowed). */
		assert_true(resp.len > 0);
		char *nl = strchr(resp.body, '\n');
		assert_true(nl == NULL || nl[1] == '\0');
		if (cases[i].off_lo >= 0) {
			if (!mentions_number_in(resp.body, cases[i].off_lo, cases[i].off_hi))
				fprintf(stderr, "[e2e] no byte offset in: %s\n", resp.body);
			assert_true(mentions_number_in(resp.body, cases[i].off_lo, cases[i].off_hi));
		}
		harness_response_free(&resp);
	}

	/* Nesting deeper than 64 is refused with a 4xx, and the daemon lives on. */
	n += (size_t)sprintf(deep, "{\"events\":[{\"action\":\"a\",\"x\":");
	for (int d = 0; d < 70; d++)
		deep[n++] = '[';
	for (int d = 0; d < 70; d++)
		deep[n++] = ']';
	memcpy(deep + n, "}]}", 4);
	assert_int_equal(harness_post(&t->h, deep, strlen(deep), &resp), 0);
	assert_true(resp.status >= 400 && resp.status < 500);
	harness_response_free(&resp);

	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 0);
	assert_int_equal(harness_request(&t->h, "GET", "/healthz", NULL, NULL, NULL, 0, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void rejected_elements_are_dead_lettered_others_routed(void **state)
{
	struct e2e *t = *state;
	static const char ev1[] = "{\"action\":\"email_send\",\"list_id\":\"1\"}";
	static const char ev5[] = "{\"action\":\"sms_send\",\"list_id\":\"5\"}";
	char batch[512], want[512];
	struct harness_response resp;
	const char *bad[] = { "42", "{\"action_date\":1}", "{\"action\":7}" };

	snprintf(batch, sizeof(batch), "{\"events\":[%s,%s,%s,%s,%s]}", ev1, bad[0], bad[1], bad[2],
		 ev5);
	snprintf(want, sizeof(want), "{\"events\":[%s,%s]}", ev1, ev5);
	e2e_boot(t, forward_all_lua, NULL);
	resp = e2e_post_expect(t, batch, strlen(batch), 200);
	e2e_assert_counts(&resp, 2, 3);
	harness_response_free(&resp);

	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	assert_string_equal(receiver_get(t->r, 0)->body, want);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 3);
	for (int i = 0; i < 3; i++) {
		char sql[160];
		snprintf(sql, sizeof(sql),
			 "SELECT payload FROM dead_letters WHERE kind = 'rejected' AND event_index = %d",
			 i + 2);
		char *payload = harness_sql_text(&t->h, sql);
		assert_non_null(payload);
		assert_string_equal(payload, bad[i]);
		free(payload);
		snprintf(sql, sizeof(sql),
			 "SELECT length(reason) FROM dead_letters WHERE event_index = %d", i + 2);
		assert_true(harness_sql_long(&t->h, sql) > 0);
	}
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_intake_tests[] = {
	E2E_TEST(healthz_answers_ok_over_verified_tls),
	E2E_TEST(all_38_actions_accepted),
	E2E_TEST(missing_or_wrong_token_gets_401),
	E2E_TEST(token_accepted_by_header_query_and_bearer_never_logged),
	E2E_TEST(not_post_on_endpoint_gets_405),
	E2E_TEST(non_json_content_type_gets_415),
	E2E_TEST(body_shorter_than_declared_gets_400),
	E2E_TEST(trickled_body_gets_408),
	E2E_TEST(body_over_max_body_gets_413),
	E2E_TEST(events_over_max_events_gets_413),
	E2E_TEST(malformed_batches_get_400_with_reason),
	E2E_TEST(rejected_elements_are_dead_lettered_others_routed),
};
const size_t e2e_intake_count = sizeof(e2e_intake_tests) / sizeof(e2e_intake_tests[0]);
