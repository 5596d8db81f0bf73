/*
 * e2e_logs.c — end-to-end scenarios of the log an operator reads: one
 * access line per answer (refusals included) whose request id is the
 * X-Request-Id header of the answer, the token never written, JSON lines
 * that parse with their fields typed, log_file reopened on SIGUSR1 after
 * logrotate's rename, and a line per delivery outcome (warn for a retry,
 * error for a dead letter).
 */
#include "e2e/e2e.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <curl/curl.h>

static const char logs_lua[] = "function route(event, meta)\n"
			       "  forward(\"@RECV@/in\")\n"
			       "end\n";

struct logs_answer {
	long status;
	char rid[80];        /* X-Request-Id of the answer, "" when none */
};

static size_t logs_header(char *buf, size_t size, size_t n, void *arg)
{
	struct logs_answer *a = arg;
	size_t len = size * n;

	if (len > 14 && strncasecmp(buf, "X-Request-Id: ", 14) == 0) {
		size_t v = len - 14;

		while (v > 0 && (buf[14 + v - 1] == '\r' || buf[14 + v - 1] == '\n'))
			v--;
		if (v < sizeof a->rid) {
			memcpy(a->rid, buf + 14, v);
			a->rid[v] = '\0';
		}
	}
	return len;
}

static size_t logs_discard(char *buf, size_t size, size_t n, void *arg)
{
	(void)buf;
	(void)arg;
	return size * n;
}

/* One request on a fresh connection; the answer's status and X-Request-Id. */
static struct logs_answer logs_request(struct e2e *t, const char *method, const char *path,
				       const char *body, size_t len, const char *header)
{
	struct logs_answer a = { 0, "" };
	struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *c = curl_easy_init();
	char url[1024];

	assert_non_null(c);
	if (header)
		hl = curl_slist_append(hl, header);
	snprintf(url, sizeof url, "https://127.0.0.1:%d%s", t->h.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, harness_cert());
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, logs_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &a);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, logs_discard);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hl);
	return a;
}

/* The JSON access line ("msg":"request") whose request_id is rid, or NULL
 * (each line is parsed; a line that is not JSON fails the test). */
static yajl_val logs_access_line(const char *log, const char *rid)
{
	const char *p = log;

	while (*p) {
		const char *end = strchr(p, '\n');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char *line = strndup(p, n);
		yajl_val v;

		assert_non_null(line);
		v = e2e_json(line);
		free(line);
		if (e2e_str(v, "msg") && strcmp(e2e_str(v, "msg"), "request") == 0 &&
		    e2e_str(v, "request_id") && strcmp(e2e_str(v, "request_id"), rid) == 0)
			return v;
		yajl_tree_free(v);
		p += n + (end != NULL);
	}
	return NULL;
}

/* Asserts the access line of rid: level info, status, method, and typed fields. */
static void logs_assert_access(const char *log, const char *rid, long status, const char *method)
{
	yajl_val v = logs_access_line(log, rid), f;

	if (!v)
		fail_msg("no access line with request_id %s", rid);
	assert_string_equal(e2e_str(v, "level"), "info");
	assert_string_equal(e2e_str(v, "method"), method);
	assert_non_null(e2e_str(v, "path"));
	f = e2e_get(v, "status");
	assert_true(f && YAJL_IS_INTEGER(f));
	assert_int_equal(YAJL_GET_INTEGER(f), status);
	const char *const ints[] = { "bytes_in", "bytes_out", "events", "rejected" };
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		f = e2e_get(v, ints[i]);
		assert_true(f && YAJL_IS_INTEGER(f));
	}
	f = e2e_get(v, "bytes_out");
	assert_true(YAJL_GET_INTEGER(f) > 0);
	f = e2e_get(v, "duration_ms");
	assert_true(f && YAJL_IS_NUMBER(f));
	yajl_tree_free(v);
}

static int logs_count(const char *log, const char *what)
{
	int n = 0;

	for (const char *s = log; (s = strstr(s, what)); s++)
		n++;
	return n;
}

/* 200, 405, 413, 401 and a client's own id: each answer carries an id, and
 * the JSON log has exactly one access line for it, with the answer's status;
 * the token, sent in the query, is in no line. */
static void access_line_per_answer_json(void **state)
{
	struct e2e *t = *state;
	struct logs_answer ok, m405, m413, m401, mine, none;
	char path[256], big[2048], *log;

	e2e_boot(t, logs_lua, "log_format = json\nmax_body = 1K\n");
	const char small[] = "{\"events\":[{\"action\":\"email_open\",\"bid\":\"1\"}]}";
	snprintf(path, sizeof path, "/hooks/egoi?token=%s&x=1", t->h.token);
	ok = logs_request(t, "POST", path, small, sizeof small - 1, NULL);
	m405 = logs_request(t, "GET", "/hooks/egoi", NULL, 0, NULL);
	memset(big, ' ', sizeof big);
	memcpy(big, "{\"events\":[]}", 13);
	m413 = logs_request(t, "POST", path, big, sizeof big, NULL);
	m401 = logs_request(t, "POST", "/hooks/egoi?token=wrong", small, sizeof small - 1, NULL);
	mine = logs_request(t, "POST", path, small, sizeof small - 1, "X-Request-Id: proxy-42.a");
	none = logs_request(t, "GET", "/no-route?token=x", NULL, 0, NULL);
	assert_int_equal(none.status, 404);   /* civetweb's own answer: a line all the same */
	assert_int_equal(ok.status, 200);
	assert_int_equal(m405.status, 405);
	assert_int_equal(m413.status, 413);
	assert_int_equal(m401.status, 401);
	assert_int_equal(mine.status, 200);
	assert_string_equal(mine.rid, "proxy-42.a");
	assert_true(ok.rid[0] && m405.rid[0] && m413.rid[0] && m401.rid[0]);
	assert_string_not_equal(ok.rid, m405.rid);
	e2e_stop_ok(t);
	log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	logs_assert_access(log, ok.rid, 200, "POST");
	logs_assert_access(log, m405.rid, 405, "GET");
	logs_assert_access(log, m413.rid, 413, "POST");
	logs_assert_access(log, m401.rid, 401, "POST");
	logs_assert_access(log, mine.rid, 200, "POST");
	{
		yajl_val v = logs_access_line(log, ok.rid);

		assert_string_equal(e2e_str(v, "path"), "/hooks/egoi?token=REDACTED&x=REDACTED");
		assert_int_equal(YAJL_GET_INTEGER(e2e_get(v, "events")), 1);
		assert_int_equal(YAJL_GET_INTEGER(e2e_get(v, "bytes_in")), (long long)sizeof small - 1);
		yajl_tree_free(v);
	}
	/* Exactly one access line per answer: 5 for the endpoint (+ /healthz
	 * probes of the harness, which have their own). */
	assert_int_equal(logs_count(log, "\"msg\":\"request\",\"method\":\"POST\",\"path\":\"/hooks"), 4);
	assert_int_equal(logs_count(log, "\"msg\":\"request\",\"method\":\"GET\",\"path\":\"/hooks"), 1);
	assert_int_equal(logs_count(log, "\"msg\":\"request\",\"method\":\"GET\","
					 "\"path\":\"/no-route?token=REDACTED\",\"status\":404,"), 1);
	assert_null(strstr(log, t->h.token));
	free(log);
	e2e_pass(t);
}

/* Text lines: key=value fields after the message; a 429 and a 400 for bad
 * framing, answered before any handler (begin_request), have their access
 * line and id too, and the 400's reason line carries the same id. */
static void access_line_text_and_early_answer(void **state)
{
	struct e2e *t = *state;
	struct logs_answer a, b, c;
	char line[160], *log;
	const char small[] = "{\"events\":[{\"action\":\"email_open\",\"bid\":\"1\"}]}";
	char hdr[128];

	e2e_boot(t, logs_lua, "rate_limit = 1/s\nrate_limit_burst = 1\nrate_limit_exempt = none\n");
	snprintf(hdr, sizeof hdr, "X-Router-Token: %s", t->h.token);
	a = logs_request(t, "POST", "/hooks/egoi", small, sizeof small - 1, hdr);
	b = logs_request(t, "POST", "/hooks/egoi", small, sizeof small - 1, hdr);
	assert_int_equal(a.status, 200);
	assert_int_equal(b.status, 429);
	assert_true(b.rid[0] != '\0');
	c = logs_request(t, "POST", "/hooks/egoi", small, sizeof small - 1, "Content-Length: 12x");
	assert_int_equal(c.status, 400);
	assert_true(c.rid[0] != '\0');
	e2e_stop_ok(t);
	log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	snprintf(line, sizeof line, " info [%s] request method=POST path=/hooks/egoi status=200 ",
		 a.rid);
	assert_non_null(strstr(log, line));
	snprintf(line, sizeof line, " info [%s] request method=POST path=/hooks/egoi status=429 ",
		 b.rid);
	assert_non_null(strstr(log, line));
	snprintf(line, sizeof line, " info [%s] request method=POST path=/hooks/egoi status=400 ",
		 c.rid);
	assert_non_null(strstr(log, line));
	snprintf(line, sizeof line, " info [%s] 400 from 127.0.0.1: invalid", c.rid);
	assert_non_null(strstr(log, line));
	free(log);
	e2e_pass(t);
}

/* log_file: logrotate renames it, SIGUSR1 makes the daemon open the path
 * again; the next lines go to the new file, none is lost to the old one. */
static void sigusr1_reopens_log_file(void **state)
{
	struct e2e *t = *state;
	char conf[HARNESS_PATH + 32], file[HARNESS_PATH + 16], rotated[HARNESS_PATH + 32];
	char *text;
	const char small[] = "{\"events\":[{\"action\":\"email_open\",\"bid\":\"1\"}]}";
	char hdr[128];
	struct logs_answer a, b;

	snprintf(file, sizeof file, "%s/router.log", t->h.dir);
	snprintf(rotated, sizeof rotated, "%s/router.log.1", t->h.dir);
	snprintf(conf, sizeof conf, "log_file = %s\n", file);
	e2e_boot(t, logs_lua, conf);
	snprintf(hdr, sizeof hdr, "X-Router-Token: %s", t->h.token);
	a = logs_request(t, "POST", "/hooks/egoi", small, sizeof small - 1, hdr);
	assert_int_equal(a.status, 200);
	assert_int_equal(rename(file, rotated), 0);
	assert_int_equal(kill(t->h.pid, SIGUSR1), 0);
	for (int i = 0; i < 100 && access(file, F_OK) != 0; i++)
		harness_sleep_ms(50);
	b = logs_request(t, "POST", "/hooks/egoi", small, sizeof small - 1, hdr);
	assert_int_equal(b.status, 200);
	e2e_stop_ok(t);
	text = harness_read_file(rotated, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, a.rid));
	assert_null(strstr(text, b.rid));
	free(text);
	text = harness_read_file(file, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "SIGUSR1: log file"));
	assert_non_null(strstr(text, b.rid));
	assert_non_null(strstr(text, " stopped"));
	free(text);
	e2e_pass(t);
}

/* Replaces the first `from` in text (malloc'ed) by `to`; fails when absent. */
static char *logs_replace(char *text, const char *from, const char *to)
{
	char *at = strstr(text, from), *out;
	size_t head, n;

	if (!at)
		fail_msg("'%s' not in the logrotate snippet", from);
	head = (size_t)(at - text);
	n = strlen(text) - strlen(from) + strlen(to) + 1;
	out = malloc(n);
	assert_non_null(out);
	snprintf(out, n, "%.*s%s%s", (int)head, text, to, at + strlen(from));
	free(text);
	return out;
}

/* scripts/egoi-router.logrotate as shipped, run by logrotate itself, with
 * its path moved into the test dir and its systemctl line (no systemd
 * here) replaced by the same signal sent to the daemon's PID: the file is
 * rotated, the daemon writes on in a new file at the path. */
static void logrotate_snippet_rotates_log_file(void **state)
{
	struct e2e *t = *state;
	char conf[HARNESS_PATH + 32], file[HARNESS_PATH + 16], rotated[HARNESS_PATH + 32];
	char glob[HARNESS_PATH + 16], lr[HARNESS_PATH + 16], st[HARNESS_PATH + 16], kill_cmd[64];
	const char small[] = "{\"events\":[{\"action\":\"email_open\",\"bid\":\"1\"}]}";
	char hdr[128], *snippet, *out = NULL, *err = NULL;
	struct logs_answer a, b;
	int rc;

	if (access("/usr/sbin/logrotate", X_OK) != 0)
		fail_msg("logrotate is not installed (scripts/deps.sh installs it)");
	snprintf(file, sizeof file, "%s/router.log", t->h.dir);
	snprintf(rotated, sizeof rotated, "%s/router.log.1", t->h.dir);
	snprintf(glob, sizeof glob, "%s/*.log", t->h.dir);
	snprintf(lr, sizeof lr, "%s/logrotate.conf", t->h.dir);
	snprintf(st, sizeof st, "%s/logrotate.state", t->h.dir);
	snprintf(conf, sizeof conf, "log_file = %s\n", file);
	e2e_boot(t, logs_lua, conf);
	snprintf(hdr, sizeof hdr, "X-Router-Token: %s", t->h.token);
	a = logs_request(t, "POST", "/hooks/egoi", small, sizeof small - 1, hdr);
	assert_int_equal(a.status, 200);

	snippet = harness_read_file("scripts/egoi-router.logrotate", NULL);
	assert_non_null(snippet);
	snippet = logs_replace(snippet, "/var/log/egoi-router/*.log", glob);
	snprintf(kill_cmd, sizeof kill_cmd, "kill -USR1 %ld", (long)t->h.pid);
	snippet = logs_replace(snippet,
			       "systemctl kill --signal=USR1 --kill-whom=main egoi-router.service",
			       kill_cmd);
	assert_int_equal(harness_write_file(lr, snippet, strlen(snippet)), 0);
	free(snippet);
	const char *const argv[] = { "/usr/sbin/logrotate", "-f", "-s", st, lr, NULL };
	rc = harness_run(&t->h, argv, NULL, 20000, &out, &err);
	if (rc != 0)
		fail_msg("logrotate exited %d: %s%s", rc, out ? out : "", err ? err : "");
	free(out);
	free(err);
	for (int i = 0; i < 100 && access(file, F_OK) != 0; i++)
		harness_sleep_ms(50);
	b = logs_request(t, "POST", "/hooks/egoi", small, sizeof small - 1, hdr);
	assert_int_equal(b.status, 200);
	e2e_stop_ok(t);
	char *text = harness_read_file(rotated, NULL);
	assert_non_null(text);   /* delaycompress: the first rotation stays plain */
	assert_non_null(strstr(text, a.rid));
	free(text);
	text = harness_read_file(file, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "SIGUSR1: log file"));
	assert_non_null(strstr(text, b.rid));
	free(text);
	e2e_pass(t);
}

/* 503 then 503: a warn line for the retry (attempt, status, when next),
 * an error line for the dead letter; the destination is scheme://host:port,
 * never the URL's path or query. */
static void delivery_outcome_lines(void **state)
{
	struct e2e *t = *state;
	char want[160], *log;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);

	receiver_set_default(t->r, 503);
	e2e_boot(t, "function route(e, m) if m.index == 1 then "
		    "forward('@RECV@/down?key=secret-in-url') end end\n",
		 "forward_max_attempts = 2\nlog_format = json\n");
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	assert_int_equal(harness_sql_wait(&t->h,
					  "SELECT count(*) FROM dead_letters WHERE kind = 'forward'",
					  1, 10000), 0);
	harness_response_free(&resp);
	free(batch);
	e2e_stop_ok(t);
	log = harness_read_file(t->h.log, NULL);
	assert_non_null(log);
	snprintf(want, sizeof want, "\"destination\":\"%s\"", t->url);
	assert_int_equal(logs_count(log, "\"level\":\"warn\""), logs_count(log, "\"retry_in_s\":"));
	assert_non_null(strstr(log, "\"attempt\":1,\"status\":503"));
	assert_non_null(strstr(log, "\"attempt\":2,\"status\":503"));
	assert_true(logs_count(log, want) >= 2);
	assert_int_equal(logs_count(log, "dead-lettered after 2 attempts"), 1);
	{
		const char *l = strstr(log, "dead-lettered after 2 attempts");
		const char *start = l;

		while (start > log && start[-1] != '\n')
			start--;
		assert_memory_equal(strstr(start, "\"level\":"), "\"level\":\"error\"", 15);
	}
	assert_null(strstr(log, "secret-in-url"));
	free(log);
	e2e_pass(t);
}

const struct CMUnitTest e2e_logs_tests[] = {
	E2E_TEST(access_line_per_answer_json),
	E2E_TEST(access_line_text_and_early_answer),
	E2E_TEST(sigusr1_reopens_log_file),
	E2E_TEST(logrotate_snippet_rotates_log_file),
	E2E_TEST(delivery_outcome_lines),
};
const size_t e2e_logs_count = sizeof e2e_logs_tests / sizeof e2e_logs_tests[0];
