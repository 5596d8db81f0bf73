/*
 * test_rules_time.c — lua_time_limit (rules.c's deadline, rules_budget.c's
 * bounded library calls, the sandbox's xpcall) and what env() may read
 * (rules_env.c, `egoi-router test --env`).
 *
 * The time-limit cases run with the instruction limit off, so only the time
 * limit can stop them. Each must end as a rule error within twice the limit
 * (the bound the limit promises), and the same state must then serve the
 * next event. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"
#include "unit/rules_fixture.h"

#include "decisions.h"
#include "batch.h"
#include "cli_test.h"
#include "rules.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EVAL_LUA RFX_EVAL_LUA
#define TLIMIT_MS 250L

/*
 * No assertion here measures how long anything took (that depends on the
 * machine's load). What proves the limit is that the call returns at all
 * with "time limit exceeded": every code below loops forever otherwise.
 * alarm() turns such a hang into a failure (SIGALRM ends the program)
 * rather than a CI run that never finishes; its 60 s is a hang detector,
 * not a speed bound.
 */
#define HANG_GUARD_S 60

static int setup(void **state)
{
	struct rules_options opt = {
		.path = EVAL_LUA,
		.time_limit_ms = TLIMIT_MS,
		.memory_limit = (size_t)64 << 20,
	};

	*state = rfx_new(&opt);
	return 0;
}

/* Runs code (no quotes or backslashes in it) as one eval event whose "data"
 * field is data (the same rules); returns rules_route's rc. */
static enum rules_route_result eval_data(struct rules_fx *f, const char *code, const char *data)
{
	char *extra;
	enum rules_route_result rc;

	assert_true(asprintf(&extra, "\"data\":\"%s\"", data) > 0);
	rc = rfx_eval(f, code, extra);
	free(extra);
	return rc;
}

static enum rules_route_result eval(struct rules_fx *f, const char *code)
{
	return eval_data(f, code, "");
}

static void expect_result(struct rules_fx *f, const char *code, const char *want)
{
	enum rules_route_result rc = eval(f, code);

	if (rc != RULES_ROUTE_RAN)
		fail_msg("%s: rc %d (%s)", code, rc, f->decisions.count ? f->decisions.items[0].reason : "");
	assert_int_equal(f->decisions.count, 1);
	assert_int_equal(f->decisions.items[0].kind, DECISION_DROP);
	if (strcmp(f->decisions.items[0].reason, want) != 0)
		fail_msg("%s: got '%s', want '%s'", code, f->decisions.items[0].reason, want);
}

/* code (event.data = data) must fail with want in its message within
 * 2 * TLIMIT_MS; then the state still works. */
static void expect_time_error_data(struct rules_fx *f, const char *code, const char *data,
				   const char *want)
{
	enum rules_route_result rc;

	alarm(HANG_GUARD_S);
	rc = eval_data(f, code, data);
	alarm(0);
	if (rc != RULES_ROUTE_RULE_FAILED)
		fail_msg("%s: rc %d, want a rule error", code, rc);
	assert_int_equal(f->decisions.count, 1);
	assert_int_equal(f->decisions.items[0].kind, DECISION_ERROR);
	if (!strstr(f->decisions.items[0].error, want))
		fail_msg("%s: error '%s' lacks '%s'", code, f->decisions.items[0].error, want);
	expect_result(f, "return 40 + 2", "42");
}

static void expect_time_error(struct rules_fx *f, const char *code, const char *want)
{
	expect_time_error_data(f, code, "", want);
}

static void test_xpcall_handler_loop(void **state)
{
	struct rules_fx *f = *state;

	expect_time_error(f, "xpcall(function() while true do end end, "
			     "function(m) while true do end end)", "time limit exceeded (250 ms)");
	/* the handler of an ordinary error runs under the limit too */
	expect_time_error(f, "xpcall(function() error('x') end, function(m) while true do end end)",
			  "time limit exceeded");
	expect_time_error(f, "while true do pcall(function() while true do end end) end",
			  "time limit exceeded");
	/* to-be-closed variables' __close run while the error unwinds: still hooked */
	expect_time_error(f, "local x <close> = setmetatable({}, { __close = function() "
			     "while true do end end }) error('x')", "time limit exceeded");
	expect_time_error(f, "error(setmetatable({}, { __tostring = function() "
			     "while true do end end }))", "time limit exceeded");
	/* handlers still work */
	expect_result(f, "local ok, e = xpcall(function() error('boom', 0) end, "
			 "function(m) return 'handled ' .. m end) return tostring(ok) .. ' ' .. e",
		      "false handled boom");
	expect_result(f, "local ok, a, b = xpcall(function(x, y) return x + y, 'r' end, print, 1, 2) "
			 "return tostring(ok) .. a .. b", "true3r");
}

static void test_patterns_bounded(void **state)
{
	struct rules_fx *f = *state;

	expect_time_error(f, "return ('@'):rep(2000):match('(.-)@(.-)%.com')",
			  "string.match refused");
	expect_time_error(f, "return ('a'):rep(200):find('.-.-.-.-b')", "string.find refused");
	expect_time_error(f, "for w in ('a'):rep(5000):gmatch('(a-)a-b') do end",
			  "string.gmatch refused");
	expect_time_error(f, "return (('a'):rep(3000):gsub('.-.-b', ''))", "string.gsub refused");
	/* pcall cannot catch the refusal */
	expect_time_error(f, "pcall(string.find, ('a'):rep(200), '.-.-.-.-b') return 'escaped'",
			  "refused");
	/* plausible rules on ordinary fields still run */
	expect_result(f, "return ('maria.silva@example.com'):match('^(.-)@(.-)%.com$')",
		      "maria.silva");
	expect_result(f, "return ('x'):rep(300):match('(.-)@(.-)%.com') or 'none'", "none");
	expect_result(f, "return (('  ' .. ('w '):rep(100) .. ' '):match('^%s*(.-)%s*$')):len()",
		      "199");
	expect_result(f, "return select(2, ('a,b,c'):gsub(',', ';'))", "2");
	expect_result(f, "return ('abc'):find('b', 1, true)", "2");
}

static void test_table_and_string_bounded(void **state)
{
	struct rules_fx *f = *state;

	expect_time_error(f, "table.move({}, 1, math.maxinteger - 1, 1, {})", "table.move refused");
	expect_time_error(f, "return (''):rep(math.maxinteger)", "string.rep refused");
	expect_time_error(f, "return ('x'):rep(1e9)", "string.rep refused");
	expect_time_error(f, "local t = setmetatable({}, { __index = function() return '' end }) "
			     "return table.concat(t, '', 1, math.maxinteger)", "table.concat refused");
	expect_time_error(f, "local t = setmetatable({}, { __len = function() return 1e15 end }) "
			     "table.sort(t)", "table.sort refused");
	expect_time_error(f, "return select('#', table.unpack({}, 1, 1e12))", "table.unpack refused");
	/* The 8 MB text comes with the event, so building it costs no rule time:
	 * what is refused is json.decode itself, however slow the machine is
	 * (valgrind) at making the string. */
	{
		size_t n = 4000000, len = 2 * n + 3;
		char *big = malloc(len + 1);

		assert_non_null(big);
		big[0] = '[';
		for (size_t i = 0; i < n; i++)
			memcpy(big + 1 + 2 * i, "1,", 2);
		memcpy(big + 1 + 2 * n, "1]", 3);
		expect_time_error_data(f, "return json.decode(event.data)", big,
				       "json.decode refused");
		free(big);
	}
	/* a loop of affordable calls is stopped at each call, not only every 1000 instructions */
	expect_time_error(f, "local s = ('x'):rep(1e6) while true do s:upper() end", "time limit");
	expect_time_error(f, "local t = {} for i = 1, 1e5 do t[i] = i end "
			     "while true do table.insert(t, 1, 0) table.remove(t, 1) end",
			  "time limit");
	expect_result(f, "return table.concat(table.move({1, 2, 3}, 1, 3, 2, {0}), ',')",
		      "0,1,2,3");
	expect_result(f, "local t = {3, 1, 2} table.sort(t) return table.concat(t)", "123");
	expect_result(f, "return json.decode('[1,2]')[2]", "2");
}

/* Writes text to a new file in dir; returns its path (static buffer). */
static const char *write_rules(const char *dir, const char *name, const char *text)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static void test_init_loop_fails_within_limit(void **state)
{
	char dir[] = "/tmp/test_rules_time.XXXXXX", err[512];
	struct rules_options opt = { .time_limit_ms = TLIMIT_MS };

	(void)state;
	assert_non_null(mkdtemp(dir));
	opt.path = write_rules(dir, "init.lua",
			       "function route(e, m) end\n"
			       "function init()\n"
			       "  xpcall(function() while true do end end, function(m) while true do end end)\n"
			       "end\n");
	alarm(HANG_GUARD_S);
	assert_null(rules_new(&opt, err, sizeof err));
	alarm(0);
	assert_non_null(strstr(err, "time limit exceeded (250 ms)"));
	/* the file's own code is under the limit too */
	opt.path = write_rules(dir, "chunk.lua", "function route(e, m) end\n"
						 "local x = ('a'):rep(200):find('.-.-.-.-b')\n");
	assert_null(rules_new(&opt, err, sizeof err));
	assert_non_null(strstr(err, "chunk.lua:2: string.find refused"));
	unlink(opt.path);
	unlink(write_rules(dir, "init.lua", ""));
	rmdir(dir);
}

/* ---- env() ---- */

static struct rules_fx *env_rules(const char *names, const char *const *pairs)
{
	struct rules_options opt = { .path = EVAL_LUA, .env_names = names, .env_pairs = pairs };

	return rfx_new(&opt);
}

static void test_env_only_listed_names(void **state)
{
	static const char *const pairs[] = { "GIVEN=v=1", "EMPTY=", NULL };
	struct rules_fx *f;

	(void)state;
	assert_int_equal(setenv("EGOI_T_SECRET", "hunter2", 1), 0);
	assert_int_equal(setenv("EGOI_T_ALLOWED", "ok", 1), 0);

	f = env_rules(NULL, NULL);  /* default: nothing */
	expect_result(f, "return tostring(env('EGOI_T_SECRET')) .. tostring(env('EGOI_T_ALLOWED'))",
		      "nilnil");
	rfx_free(f);

	f = env_rules("OTHER, EGOI_T_ALLOWED", NULL);
	expect_result(f, "return tostring(env('EGOI_T_SECRET')) .. env('EGOI_T_ALLOWED')", "nilok");
	expect_result(f, "return tostring(env('EGOI_T_ALLOWE')) .. tostring(env(''))", "nilnil");
	rfx_free(f);

	/* `test --env`: only the pairs, never the real environment */
	f = env_rules("EGOI_T_ALLOWED", pairs);
	expect_result(f, "return env('GIVEN') .. '|' .. env('EMPTY') .. '|' .. "
			  "tostring(env('EGOI_T_ALLOWED')) .. tostring(env('GIVEN=v'))",
		      "v=1||nilnil");
	rfx_free(f);
	unsetenv("EGOI_T_SECRET");
	unsetenv("EGOI_T_ALLOWED");
}

static void test_cli_test_env(void **state)
{
	static const char *const pairs[] = { "CRM_URL=https://crm.example/x", NULL };
	char dir[] = "/tmp/test_rules_cli.XXXXXX", out[256], buf[4096];
	const char *rules;
	char batch[256];
	int saved, fd, rc;
	FILE *fp;
	size_t n;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(setenv("EGOI_T_TOKEN", "hunter2", 1), 0);
	snprintf(batch, sizeof batch, "%s/batch.json", dir);
	fp = fopen(batch, "w");
	assert_non_null(fp);
	fputs("{\"events\":[{\"action\":\"email_open\"}]}", fp);
	fclose(fp);
	rules = write_rules(dir, "r.lua", "function route(e, m)\n"
					  "  drop(tostring(env('CRM_URL')) .. ' ' .. tostring(env('EGOI_T_TOKEN')))\n"
					  "end\n");
	snprintf(out, sizeof out, "%s/out.json", dir);
	fflush(stdout);
	saved = dup(1);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 1);
	rc = cli_test_run(&(struct cli_test_options){ .rules_path = rules, .batch_path = batch,
						      .env_pairs = pairs });
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(fd);
	assert_int_equal(rc, 0);
	fp = fopen(out, "r");
	assert_non_null(fp);
	n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	if (!strstr(buf, "\"reason\":\"https://crm.example/x nil\""))
		fail_msg("output: %s", buf);
	unlink(out);
	unlink(batch);
	unlink(rules);
	rmdir(dir);
	unsetenv("EGOI_T_TOKEN");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_xpcall_handler_loop, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_patterns_bounded, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_table_and_string_bounded, setup, rfx_teardown),
		cmocka_unit_test(test_init_loop_fails_within_limit),
		cmocka_unit_test(test_env_only_listed_names),
		cmocka_unit_test(test_cli_test_env),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
