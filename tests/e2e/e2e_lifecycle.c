/*
 * e2e_lifecycle.c — end-to-end scenarios across the daemon's life:
 * undelivered forwards survive a stop and a crash, SIGTERM exits 0 in
 * time and answers every batch it committed while stopping, and the
 * `check` / `test` commands.
 */
#include "e2e/e2e.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The first request the receiver answered 200, waiting up to timeout_ms. */
static const struct recv_request *wait_for_ok(struct e2e *t, long timeout_ms)
{
	for (long waited = 0; waited <= timeout_ms; waited += 50) {
		size_t n = receiver_count(t->r);
		for (size_t i = 0; i < n; i++) {
			const struct recv_request *q = receiver_get(t->r, i);
			if (q->status == 200)
				return q;
		}
		harness_sleep_ms(50);
	}
	return NULL;
}

static void restart_resumes_undelivered(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);
	char id[128];

	receiver_set_default(t->r, 503);
	e2e_boot(t, "function route(e, m) forward('@RECV@/later') end\n",
		 "forward_max_attempts = 50\n");
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	const struct recv_request *first = receiver_get(t->r, 0);
	assert_non_null(recv_header(first, "X-Router-Delivery-Id"));
	snprintf(id, sizeof(id), "%s", recv_header(first, "X-Router-Delivery-Id"));
	e2e_stop_ok(t);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM deliveries"), 1);

	receiver_set_default(t->r, 200);
	assert_int_equal(harness_start(&t->h), 0);
	const struct recv_request *ok = wait_for_ok(t, 10000);
	assert_non_null(ok);
	assert_string_equal(ok->uri, "/later");
	assert_string_equal(ok->body, first->body);
	assert_non_null(recv_header(ok, "X-Router-Delivery-Id"));
	assert_string_equal(recv_header(ok, "X-Router-Delivery-Id"), id);
	assert_non_null(recv_header(ok, "X-Router-Attempt"));
	assert_true(atoi(recv_header(ok, "X-Router-Attempt")) >= 2);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM deliveries", 0, 5000), 0);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* A 200 means durable: killing the daemon right after it loses nothing. */
static void crash_after_200_loses_nothing(void **state)
{
	struct e2e *t = *state;
	size_t len, pick[] = { 0, 1 };
	char *batch = e2e_fixture("batch-example.json", &len);
	struct harness_span spans[4];

	assert_int_equal(harness_event_spans(batch, len, spans, 4), 2);
	char *want = e2e_events_body(batch, spans, pick, 2);
	receiver_set_default(t->r, 503);
	e2e_boot(t, "function route(e, m) forward('@RECV@/durable') end\n",
		 "forward_max_attempts = 50\n");
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	harness_kill(&t->h);

	receiver_set_default(t->r, 200);
	assert_int_equal(harness_start(&t->h), 0);
	const struct recv_request *ok = wait_for_ok(t, 10000);
	assert_non_null(ok);
	assert_string_equal(ok->body, want);
	assert_int_equal(harness_sql_wait(&t->h, "SELECT count(*) FROM deliveries", 0, 5000), 0);
	free(want);
	free(batch);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	e2e_pass(t);
}

static void sigterm_exits_zero(void **state)
{
	struct e2e *t = *state;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);
	double secs = 0;

	e2e_boot(t, "function route(e, m) forward('@RECV@/bye') end\n", NULL);
	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	int status = harness_stop(&t->h, 15000, &secs);
	assert_int_not_equal(status, -1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	if (secs >= 10.0)
		fprintf(stderr, "[e2e] SIGTERM took %.1f s\n", secs);
	assert_true(secs < 10.0);
	free(batch);
	harness_response_free(&resp);
	e2e_pass(t);
}

/* Line number (1-based) of the first line of path containing needle, or -1. */
static int line_of(const char *path, const char *needle)
{
	char *text = harness_read_file(path, NULL);
	int line = 1, found = -1;

	if (text == NULL)
		return -1;
	char *at = strstr(text, needle);
	if (at != NULL) {
		for (char *p = text; p < at; p++)
			line += *p == '\n';
		found = line;
	}
	free(text);
	return found;
}

static void check_command_validates_config_and_rules(void **state)
{
	struct e2e *t = *state;
	const char *argv[] = { harness_bin(), "check", "-c", t->h.conf, NULL };
	char *out = NULL, *err = NULL, want[HARNESS_PATH + 32];

	assert_int_equal(harness_write_rules(&t->h, "function route(e, m) drop('x') end\n", NULL), 0);
	assert_int_equal(harness_write_config(&t->h), 0);
	int rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);
	if (rc != 0)
		fprintf(stderr, "[e2e] check of a good config: %d, stderr: %s\n", rc, err);
	assert_int_equal(rc, 0);
	free(out);
	free(err);

	/* An unknown key: exit 1, "file:line: ..." on stderr. */
	snprintf(t->h.extra, sizeof(t->h.extra), "bogus_key = 1\n");
	assert_int_equal(harness_write_config(&t->h), 0);
	int line = line_of(t->h.conf, "bogus_key");
	assert_true(line > 1);
	snprintf(want, sizeof(want), "%s:%d", t->h.conf, line);
	rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);
	assert_int_equal(rc, 1);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fprintf(stderr, "[e2e] want \"%s\" in: %s\n", want, err);
	assert_non_null(strstr(err, want));
	free(out);
	free(err);

	/* Rules that do not compile: exit 1, the rules file named. */
	t->h.extra[0] = '\0';
	assert_int_equal(harness_write_config(&t->h), 0);
	assert_int_equal(harness_write_rules(&t->h, "function route(e, m)\n  forward(\n", NULL), 0);
	rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);
	assert_int_equal(rc, 1);
	assert_non_null(err);
	assert_non_null(strstr(err, "rules.lua"));
	free(out);
	free(err);

	/* Rules without route(): exit 1. */
	assert_int_equal(harness_write_rules(&t->h, "local x = 1\n", NULL), 0);
	rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);
	assert_int_equal(rc, 1);
	free(out);
	free(err);
	e2e_pass(t);
}

static void usage_errors_exit_2(void **state)
{
	struct e2e *t = *state;
	const char *bogus[] = { harness_bin(), "frobnicate", NULL };
	const char *toofew[] = { harness_bin(), "test", NULL };
	char *out = NULL, *err = NULL;

	assert_int_equal(harness_run(&t->h, bogus, NULL, 10000, &out, &err), 2);
	free(out);
	free(err);
	assert_int_equal(harness_run(&t->h, toofew, NULL, 10000, &out, &err), 2);
	free(out);
	free(err);
	e2e_pass(t);
}

/* POSTs body n times, each answered 200. */
static void post_ok_times(struct e2e *t, const char *body, size_t len, int n)
{
	for (int i = 0; i < n; i++) {
		struct harness_response resp = e2e_post_expect(t, body, len, 200);

		harness_response_free(&resp);
	}
}

static void test_command_prints_decisions(void **state)
{
	struct e2e *t = *state;
	static const char lua[] =
		"function route(e, m)\n"
		"  if e.action == 'boom' then error('kaboom') end\n"
		"  if e.action == 'email_send' then\n"
		"    forward('@RECV@/dry')\n"
		"    write('e2e-dry-run.jsonl')\n"
		"  end\n"
		"end\n";
	const char *argv[] = { harness_bin(), "test", t->h.rules,
			       "tests/fixtures/batch-example.json", NULL };
	char *out = NULL, *err = NULL, url[96], stdin_path[HARNESS_PATH + 16];

	snprintf(url, sizeof(url), "%s/dry", t->url);
	assert_int_equal(harness_write_rules(&t->h, lua, t->url), 0);
	int rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);
	if (rc != 0)
		fprintf(stderr, "[e2e] test command: %d, stderr: %s\n", rc, err);
	assert_int_equal(rc, 0);
	assert_non_null(out);

	/* Exactly two lines, one per event. */
	char *nl1 = strchr(out, '\n');
	assert_non_null(nl1);
	*nl1 = '\0';
	char *nl2 = strchr(nl1 + 1, '\n');
	assert_non_null(nl2);
	*nl2 = '\0';
	assert_string_equal(nl2 + 1, "");
	yajl_val l1 = e2e_json(out), l2 = e2e_json(nl1 + 1);
	yajl_val i1 = e2e_get(l1, "index"), i2 = e2e_get(l2, "index");
	assert_true(i1 != NULL && YAJL_IS_INTEGER(i1) && YAJL_GET_INTEGER(i1) == 1);
	assert_true(i2 != NULL && YAJL_IS_INTEGER(i2) && YAJL_GET_INTEGER(i2) == 2);
	assert_string_equal(e2e_str(l1, "action"), "email_send");
	assert_string_equal(e2e_str(l2, "action"), "sms_send");
	yajl_val d1 = e2e_get(l1, "decisions"), d2 = e2e_get(l2, "decisions");
	assert_true(d1 != NULL && YAJL_IS_ARRAY(d1) && YAJL_GET_ARRAY(d1)->len == 2);
	assert_string_equal(e2e_str(YAJL_GET_ARRAY(d1)->values[0], "kind"), "forward");
	assert_string_equal(e2e_str(YAJL_GET_ARRAY(d1)->values[0], "url"), url);
	assert_string_equal(e2e_str(YAJL_GET_ARRAY(d1)->values[1], "kind"), "write");
	assert_string_equal(e2e_str(YAJL_GET_ARRAY(d1)->values[1], "path"), "e2e-dry-run.jsonl");
	assert_true(d2 != NULL && YAJL_IS_ARRAY(d2) && YAJL_GET_ARRAY(d2)->len == 1);
	assert_string_equal(e2e_str(YAJL_GET_ARRAY(d2)->values[0], "kind"), "drop");
	assert_string_equal(e2e_str(YAJL_GET_ARRAY(d2)->values[0], "reason"), "no_rule");
	yajl_tree_free(l1);
	yajl_tree_free(l2);
	free(out);
	free(err);

	/* '-' reads the batch from stdin; a rule error is reported, and exits 1. */
	snprintf(stdin_path, sizeof(stdin_path), "%s/stdin.json", t->h.dir);
	static const char one[] = "{\"events\":[{\"action\":\"boom\"}]}";
	assert_int_equal(harness_write_file(stdin_path, one, sizeof(one) - 1), 0);
	argv[3] = "-";
	rc = harness_run(&t->h, argv, stdin_path, 10000, &out, &err);
	assert_int_equal(rc, 1);
	assert_non_null(out);
	assert_non_null(strstr(err, "1 event(s) failed"));
	yajl_val l = e2e_json(out);
	yajl_val d = e2e_get(l, "decisions");
	assert_true(d != NULL && YAJL_IS_ARRAY(d) && YAJL_GET_ARRAY(d)->len == 1);
	assert_string_equal(e2e_str(YAJL_GET_ARRAY(d)->values[0], "kind"), "error");
	assert_non_null(e2e_str(YAJL_GET_ARRAY(d)->values[0], "message"));
	assert_non_null(strstr(e2e_str(YAJL_GET_ARRAY(d)->values[0], "message"), "kaboom"));
	yajl_tree_free(l);
	free(out);
	free(err);

	/* A dry run: no network, no files (cwd or the default output_dir). */
	harness_sleep_ms(300);
	assert_int_equal(receiver_count(t->r), 0);
	assert_int_not_equal(access("e2e-dry-run.jsonl", F_OK), 0);
	assert_int_not_equal(access("var/out/e2e-dry-run.jsonl", F_OK), 0);
	e2e_pass(t);
}

/*
 * The rules are loaded once (only SIGHUP recompiles): editing the
 * file on disk must not change what running workers do, nor break workers
 * whose Lua state is created later. Ten sequential requests on fresh
 * connections reach several of the eight workers.
 */
static void rules_file_edited_without_sighup_changes_nothing(void **state)
{
	struct e2e *t = *state;
	static const char one[] = "{\"events\":[{\"action\":\"email_open\"}]}";
	char path[HARNESS_PATH + 16];
	struct harness_response resp;

	e2e_boot(t, "function route(e, m) write('v.txt', {line = 'v1'}) end\n", NULL);
	resp = e2e_post_expect(t, one, sizeof(one) - 1, 200);
	harness_response_free(&resp);

	assert_int_equal(harness_write_rules(&t->h, "function route(e, m)\n  write(\n", NULL), 0);
	post_ok_times(t, one, sizeof(one) - 1, 10);
	assert_int_equal(harness_write_rules(&t->h,
					     "function route(e, m) write('v.txt', {line = 'v2'}) end\n",
					     NULL), 0);
	post_ok_times(t, one, sizeof(one) - 1, 10);
	snprintf(path, sizeof(path), "%s/v.txt", t->h.output_dir);
	char *text = harness_read_file(path, NULL);
	assert_non_null(text);
	char want[22 * 3 + 1] = "";
	for (int i = 0; i < 21; i++)
		strcat(want, "v1\n");
	assert_string_equal(text, want);
	free(text);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/*
 * Without the OpenSSL 3 shims beside it (a binary copied alone), civetweb
 * cannot load TLS; the daemon must say so and exit 3 instead of starting
 * and crashing on the first TLS connection.
 */
static void refuses_to_start_without_tls(void **state)
{
	struct e2e *t = *state;
	char lonely[HARNESS_PATH + 32];
	char *bin, *out = NULL, *err = NULL;
	size_t len = 0;
	int rc;

	snprintf(lonely, sizeof(lonely), "%s/egoi-router-alone", t->h.dir);
	bin = harness_read_file(harness_bin(), &len);
	assert_non_null(bin);
	assert_int_equal(harness_write_file(lonely, bin, len), 0);
	free(bin);
	assert_int_equal(chmod(lonely, 0700), 0);
	assert_int_equal(harness_write_rules(&t->h, "function route(e, m) drop('x') end\n", NULL), 0);
	assert_int_equal(harness_write_config(&t->h), 0);

	const char *argv[] = { lonely, "run", "-c", t->h.conf, NULL };
	rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);
	assert_int_equal(rc, 3);
	assert_non_null(err);
	assert_non_null(strstr(err, "TLS did not initialise"));
	free(out);
	free(err);
	e2e_pass(t);
}

/* SIGHUP recompiles the rules: every worker switches at its next batch;
 * rules that do not compile are refused and the old ones keep serving. */
static void sighup_reloads_rules_and_refuses_broken_ones(void **state)
{
	struct e2e *t = *state;
	static const char one[] = "{\"events\":[{\"action\":\"email_open\"}]}";
	char path[HARNESS_PATH + 16];

	e2e_boot(t, "function route(e, m) write('v.txt', {line = 'v1'}) end\n", NULL);
	post_ok_times(t, one, sizeof(one) - 1, 3);
	assert_int_equal(harness_write_rules(&t->h,
					     "function route(e, m) write('v.txt', {line = 'v2'}) end\n",
					     NULL), 0);
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	assert_true(e2e_log_wait(t, "reloaded (generation 2)", 1));
	post_ok_times(t, one, sizeof(one) - 1, 10);
	assert_int_equal(harness_write_rules(&t->h, "function route(e, m)\n  write(\n", NULL), 0);
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	assert_true(e2e_log_wait(t, "reload refused", 1));
	post_ok_times(t, one, sizeof(one) - 1, 2);
	snprintf(path, sizeof(path), "%s/v.txt", t->h.output_dir);
	char *text = harness_read_file(path, NULL);
	assert_non_null(text);
	char want[15 * 3 + 1] = "";
	for (int i = 0; i < 15; i++)
		strcat(want, i < 3 ? "v1\n" : "v2\n");
	assert_string_equal(text, want);
	free(text);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/*
 * SIGTERM while batches are in the pipeline: a 200 means committed, and a
 * committed batch must get its 200 before its connection closes (a cut one
 * would be sent again by E-goi, a duplicate). Four clients post
 * 4-event batches without pause (two over keep-alive, two on new
 * connections), each event holding its rule ~2 ms; a fifth batch holds
 * its rule 2 s, so the drain is still going on when we look at it. Then:
 * - a new connection made while draining is refused (or answered 503);
 *   on connections opened before, /healthz and a new batch answer 503 and
 *   the batch is not committed;
 * - the daemon exits 0 within its grace;
 * - every batch with lines in the output file was answered 200, and every
 *   200 has all its lines: no batch is committed and then cut.
 */
#define DRAIN_EVENTS 4
#define DRAIN_CLIENTS 4

static const char drain_lua[] =
	"local function hold(s) local t = now() while now() - t < s do end end\n"
	"function route(e, m)\n"
	"  if e.bid == 'slow' then log.info('slow batch started'); hold(2.0)\n"
	"  else hold(0.002) end\n"
	"  write('seen.txt', {line = e.bid})\n"
	"end\n";

struct drain_slow {
	struct harness *h;
	struct harness_response resp;
	atomic_int done;
};

static void *drain_slow_main(void *arg)
{
	struct drain_slow *s = arg;
	static const char body[] = "{\"events\":[{\"action\":\"email_open\",\"bid\":\"slow\"}]}";

	harness_post(s->h, body, sizeof(body) - 1, &s->resp);
	atomic_store(&s->done, 1);
	return NULL;
}

/* Lines of seen.txt equal to bid. */
static long drain_lines(const char *text, const char *bid)
{
	size_t n = strlen(bid);
	long count = 0;

	for (const char *p = text; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		count += len == n && memcmp(p, bid, n) == 0;
		p += len + (nl != NULL);
	}
	return count;
}

/* 0 when a TCP connection to port is refused; 1 when it was accepted. */
static int drain_connects(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

	assert_true(fd >= 0);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (rc != 0 && errno != ECONNREFUSED)
		fprintf(stderr, "[e2e] connect while draining: %s\n", strerror(errno));
	close(fd);
	assert_true(rc == 0 || errno == ECONNREFUSED);
	return rc == 0;
}

static void sigterm_answers_every_committed_batch(void **state)
{
	struct e2e *t = *state;
	/* On the heap: should an assertion end the scenario early, the thread
	 * still running writes into memory that stays valid. */
	struct drain_slow *slow = calloc(1, sizeof(*slow));
	char path[HARNESS_PATH + 16], bid[32];
	pthread_t slow_thread;
	double secs = 0;
	long ok_at_term, ok = 0, other = 0;
	int reused = 0;
	struct harness_response resp;
	static const char late[] = "{\"events\":[{\"action\":\"email_open\",\"bid\":\"late\"}]}";

	assert_non_null(slow);
	slow->h = &t->h;
	/* the slow batch holds its rule 2 s: over the default lua_time_limit */
	e2e_boot(t, drain_lua, "lua_instruction_limit = 0\nlua_time_limit = 10s\n");
	struct harness_load *load = harness_load_start(&t->h, DRAIN_CLIENTS, DRAIN_EVENTS);
	assert_non_null(load);
	for (int i = 0; i < 200 && harness_load_ok(load) < 20; i++)
		harness_sleep_ms(50);
	assert_true(harness_load_ok(load) >= 20);
	assert_int_equal(pthread_create(&slow_thread, NULL, drain_slow_main, slow), 0);
	assert_true(e2e_log_wait(t, "slow batch started", 1));
	/* Two connections opened before the stop: a probe's, a sender's. */
	struct harness_conn *probe = harness_conn_new(&t->h), *sender = harness_conn_new(&t->h);
	assert_non_null(probe);
	assert_non_null(sender);
	assert_int_equal(harness_conn_request(probe, "/healthz", NULL, 0, &resp, &reused), 0);
	assert_int_equal(resp.status, 200);
	harness_response_free(&resp);
	assert_int_equal(harness_conn_request(sender, "/healthz", NULL, 0, &resp, &reused), 0);
	harness_response_free(&resp);

	ok_at_term = harness_load_ok(load);
	assert_int_equal(kill(t->h.pid, SIGTERM), 0);
	assert_true(e2e_log_wait(t, "requests in flight", 1));
	/* Still draining (the slow batch holds it): intake is closed. */
	if (drain_connects(t->h.port)) {
		assert_int_equal(harness_request(&t->h, "GET", "/healthz", NULL, NULL, NULL, 0, 0,
						 &resp), 0);
		assert_int_equal(resp.status, 503);
		harness_response_free(&resp);
	}
	/* A load balancer's probe on its open connection: 503. */
	assert_int_equal(harness_conn_request(probe, "/healthz", NULL, 0, &resp, &reused), 0);
	assert_true(reused);
	assert_int_equal(resp.status, 503);
	harness_response_free(&resp);
	/* A batch on an open connection: 503, a reason, not committed (below). */
	assert_int_equal(harness_conn_request(sender, "/hooks/egoi", late, sizeof(late) - 1,
					      &resp, &reused), 0);
	assert_true(reused);
	assert_int_equal(resp.status, 503);
	assert_non_null(strstr(resp.body, "shutting down"));
	harness_response_free(&resp);
	assert_int_equal(atomic_load(&slow->done), 0);
	harness_conn_free(probe);
	harness_conn_free(sender);

	int status = harness_stop(&t->h, 15000, &secs);
	harness_load_stop(load);
	pthread_join(slow_thread, NULL);
	assert_int_not_equal(status, -1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	snprintf(path, sizeof(path), "%s/seen.txt", t->h.output_dir);
	char *text = harness_read_file(path, NULL);
	assert_non_null(text);
	for (int k = 0; k < harness_load_threads(load); k++) {
		for (long n = 0; n < harness_load_count(load, k); n++) {
			long st = harness_load_status(load, k, n);

			snprintf(bid, sizeof(bid), "%d-%ld", k, n);
			long lines = drain_lines(text, bid);
			long want = st == 200 ? DRAIN_EVENTS : 0;

			if (lines != want || (st != 200 && st != 503 && st != 0))
				fprintf(stderr, "[e2e] batch %s: status %ld but %ld lines\n", bid, st,
					lines);
			assert_int_equal(lines, want);
			assert_true(st == 200 || st == 503 || st == 0);
			ok += st == 200;
			other += st != 200;
		}
	}
	if (slow->resp.status != 200 || drain_lines(text, "slow") != 1)
		fprintf(stderr, "[e2e] slow batch: status %ld, %ld lines\n", slow->resp.status,
			drain_lines(text, "slow"));
	assert_int_equal(slow->resp.status, 200);
	assert_int_equal(drain_lines(text, "slow"), 1);
	assert_int_equal(drain_lines(text, "late"), 0);
	fprintf(stderr, "[e2e] drain: %ld answered 200 (%ld after SIGTERM began), %ld refused, "
		"503 or cut before commit; exit after %.1f s\n", ok, ok - ok_at_term, other, secs);
	free(text);
	harness_response_free(&slow->resp);
	free(slow);
	harness_load_free(load);
	e2e_pass(t);
}

const struct CMUnitTest e2e_lifecycle_tests[] = {
	E2E_TEST(sighup_reloads_rules_and_refuses_broken_ones),
	E2E_TEST(refuses_to_start_without_tls),
	E2E_TEST(restart_resumes_undelivered),
	E2E_TEST(crash_after_200_loses_nothing),
	E2E_TEST(sigterm_exits_zero),
	E2E_TEST(sigterm_answers_every_committed_batch),
	E2E_TEST(rules_file_edited_without_sighup_changes_nothing),
	E2E_TEST(check_command_validates_config_and_rules),
	E2E_TEST(usage_errors_exit_2),
	E2E_TEST(test_command_prints_decisions),
};
const size_t e2e_lifecycle_count = sizeof(e2e_lifecycle_tests) / sizeof(e2e_lifecycle_tests[0]);
