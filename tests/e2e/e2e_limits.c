/*
 * e2e_limits.c — the daemon side of the rules' limits: SIGTERM with a
 * worker stuck in rules, a reload whose init() loops, a daemon whose init()
 * loops, and env() not reaching the daemon's own secrets.
 */
#include "e2e/e2e.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Each event runs to lua_time_limit; the message handler loops too. */
static const char stuck_lua[] =
	"function route(e, m)\n"
	"  xpcall(function() while true do end end, function(msg) while true do end end)\n"
	"end\n";

static const char looping_init_lua[] =
	"function route(e, m) write('v.txt', {line = 'v2'}) end\n"
	"function init()\n"
	"  xpcall(function() while true do end end, function(msg) while true do end end)\n"
	"end\n";

static int log_has(struct e2e *t, const char *needle, long timeout_ms)
{
	for (long waited = 0;; waited += 50) {
		char *text = harness_read_file(t->h.log, NULL);
		int found = text && strstr(text, needle);

		free(text);
		if (found)
			return 1;
		if (waited >= timeout_ms)
			return 0;
		harness_sleep_ms(50);
	}
}

struct post_job {
	struct e2e *t;
	char *body;
	size_t len;
	struct harness_response resp;
};

static void *post_thread(void *arg)
{
	struct post_job *j = arg;

	harness_post(&j->t->h, j->body, j->len, &j->resp);
	return NULL;
}

/* n copies of {"action":"email_open"} as one batch. */
static char *batch_of(size_t n, size_t *len)
{
	static const char ev[] = "{\"action\":\"email_open\"},";
	char *b = malloc(n * (sizeof(ev) - 1) + 32);

	assert_non_null(b);
	strcpy(b, "{\"events\":[");
	for (size_t i = 0; i < n; i++)
		strcat(b, ev);
	strcpy(b + strlen(b) - 1, "]}");
	*len = strlen(b);
	return b;
}

/*
 * A batch whose 200 events each run to the time limit (50 s of rules) is
 * in a worker when SIGTERM comes: the stop still ends within the drain
 * grace (10 s) plus the delivery stop, and exits 0.
 */
static void sigterm_with_a_worker_stuck_in_rules(void **state)
{
	struct e2e *t = *state;
	struct post_job job = { .t = t };
	pthread_t th;
	double secs = 0;
	int status;

	e2e_boot(t, stuck_lua, "lua_instruction_limit = 0\nlua_time_limit = 250ms\n");
	job.body = batch_of(200, &job.len);
	assert_int_equal(pthread_create(&th, NULL, post_thread, &job), 0);
	assert_true(log_has(t, "time limit exceeded (250 ms)", 10000));
	status = harness_stop(&t->h, 30000, &secs);
	pthread_join(th, NULL);
	fprintf(stderr, "[e2e] SIGTERM with a worker stuck in rules: status %d after %.1f s\n",
		status, secs);
	assert_int_not_equal(status, -1);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(secs < 15.0);
	/* the cut batch was not answered 200: E-goi sends it again */
	assert_true(job.resp.status != 200);
	harness_response_free(&job.resp);
	free(job.body);
	e2e_pass(t);
}

/* SIGHUP with rules whose init() never returns: refused within the limit, old rules serve. */
static void reload_with_a_looping_init_is_refused(void **state)
{
	struct e2e *t = *state;
	static const char one[] = "{\"events\":[{\"action\":\"email_open\"}]}";
	char path[HARNESS_PATH + 16];
	struct harness_response resp;

	e2e_boot(t, "function route(e, m) write('v.txt', {line = 'v1'}) end\n",
		 "lua_instruction_limit = 0\n");
	resp = e2e_post_expect(t, one, sizeof(one) - 1, 200);
	harness_response_free(&resp);
	assert_int_equal(harness_write_rules(&t->h, looping_init_lua, NULL), 0);
	assert_int_equal(kill(t->h.pid, SIGHUP), 0);
	assert_true(log_has(t, "reload refused", 5000));
	assert_true(log_has(t, "time limit exceeded (250 ms)", 0));
	resp = e2e_post_expect(t, one, sizeof(one) - 1, 200);
	harness_response_free(&resp);
	snprintf(path, sizeof(path), "%s/v.txt", t->h.output_dir);
	char *text = harness_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, "v1\nv1\n");
	free(text);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* `check` (and so the daemon's start) fails at once on an init() that loops. */
static void looping_init_fails_the_check(void **state)
{
	struct e2e *t = *state;
	const char *argv[] = { harness_bin(), "check", "-c", t->h.conf, NULL };
	char *out = NULL, *err = NULL;

	assert_int_equal(harness_write_rules(&t->h, looping_init_lua, NULL), 0);
	snprintf(t->h.extra, sizeof(t->h.extra), "lua_instruction_limit = 0\n");
	assert_int_equal(harness_write_config(&t->h), 0);
	int rc = harness_run(&t->h, argv, NULL, 10000, &out, &err);
	assert_int_equal(rc, 1);
	assert_non_null(err);
	if (!strstr(err, "time limit exceeded"))
		fprintf(stderr, "[e2e] check stderr: %s\n", err);
	assert_non_null(strstr(err, "time limit exceeded"));
	free(out);
	free(err);
	e2e_pass(t);
}

/* auth_token = env:E2E_TOKEN: rules cannot read it; rules_env names what they can. */
static void env_reads_only_rules_env(void **state)
{
	struct e2e *t = *state;
	static const char one[] = "{\"events\":[{\"action\":\"email_open\"}]}";
	char path[HARNESS_PATH + 16], want[128];
	struct harness_response resp;

	assert_int_equal(setenv("E2E_CRM_URL", "https://crm.example/x", 1), 0);
	e2e_boot(t, "function route(e, m)\n"
		    "  write('env.txt', {line = tostring(env('E2E_TOKEN')) .. ' ' .. "
		    "tostring(env('E2E_CRM_URL'))})\n"
		    "end\n",
		 "auth_token = env:E2E_TOKEN\nrules_env = E2E_CRM_URL\n");
	resp = e2e_post_expect(t, one, sizeof(one) - 1, 200);
	harness_response_free(&resp);
	e2e_stop_ok(t);
	unsetenv("E2E_CRM_URL");
	snprintf(path, sizeof(path), "%s/env.txt", t->h.output_dir);
	char *text = harness_read_file(path, NULL);
	assert_non_null(text);
	snprintf(want, sizeof(want), "nil https://crm.example/x\n");
	assert_string_equal(text, want);
	assert_null(strstr(text, t->h.token));
	free(text);
	e2e_pass(t);
}

const struct CMUnitTest e2e_limits_tests[] = {
	E2E_TEST(sigterm_with_a_worker_stuck_in_rules),
	E2E_TEST(reload_with_a_looping_init_is_refused),
	E2E_TEST(looping_init_fails_the_check),
	E2E_TEST(env_reads_only_rules_env),
};
const size_t e2e_limits_count = sizeof(e2e_limits_tests) / sizeof(e2e_limits_tests[0]);
