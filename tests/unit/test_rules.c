/*
 * test_rules.c — rules.c, rules_sandbox.c and rules_api.c on real rule
 * files (tests/rules/, plus generated ones in a mkdtemp() directory):
 * load errors, every kind of decision with its options, rule errors and the
 * recovery after them, instruction and memory limits, the sandbox, require,
 * exact numbers, json, hmac, meta, argument validation.
 *
 * Most cases use tests/rules/eval.lua: an event {"action":"eval","code":...}
 * runs its code and drops with the result as the reason, so a case is one
 * line of Lua and one expected string. Run from the repository root.
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
#include "log.h"
#include "rules.h"
#include "rules_source.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define RULES_DIR "tests/rules/"
#define ILIMIT 200000L
#define MLIMIT ((size_t)8 << 20)

static struct rules_options rules_opts(const char *file, long ilimit, size_t mlimit)
{
	struct rules_options opt = {
		.path = file,
		.instruction_limit = ilimit,
		.memory_limit = mlimit,
		.env_names = "EGOI_TEST_RULES_ENV",
	};

	return opt;
}

static struct rules *load(const char *file, long ilimit, size_t mlimit, char *err, size_t errlen)
{
	struct rules_options opt = rules_opts(file, ilimit, mlimit);

	err[0] = '\0';
	return rules_new(&opt, err, errlen);
}

static int setup_file(void **state, const char *file)
{
	struct rules_options opt = rules_opts(file, ILIMIT, MLIMIT);
	struct rules_fx *f = rfx_new(&opt);

	f->meta.received_at = 1712345678.5;
	f->meta.remote_addr = "192.0.2.7";
	f->meta.request_id = "req-test";
	*state = f;
	return 0;
}

static int setup_eval(void **state)
{
	return setup_file(state, RULES_DIR "eval.lua");
}

static int setup_kinds(void **state)
{
	return setup_file(state, RULES_DIR "kinds.lua");
}

static void expect_result(struct rules_fx *f, const char *code, const char *extra, const char *want)
{
	enum rules_route_result rc = rfx_eval(f, code, extra);

	if (rc != RULES_ROUTE_RAN)
		fail_msg("%s: rc %d (%s)", code, rc, f->decisions.count ? f->decisions.items[0].reason : "");
	assert_int_equal(f->decisions.count, 1);
	assert_int_equal(f->decisions.items[0].kind, DECISION_DROP);
	if (strcmp(f->decisions.items[0].reason, want) != 0)
		fail_msg("%s: got '%s', want '%s'", code, f->decisions.items[0].reason, want);
}

static void expect_error(struct rules_fx *f, const char *code, const char *want)
{
	enum rules_route_result rc = rfx_eval(f, code, NULL);

	if (rc != RULES_ROUTE_RULE_FAILED)
		fail_msg("%s: rc %d, want a rule error", code, rc);
	assert_int_equal(f->decisions.count, 1);
	assert_int_equal(f->decisions.items[0].kind, DECISION_ERROR);
	assert_int_equal(f->decisions.items[0].event, 0);
	if (!strstr(f->decisions.items[0].error, want))
		fail_msg("%s: error '%s' lacks '%s'", code, f->decisions.items[0].error, want);
	assert_null(strchr(f->decisions.items[0].error, '\n'));
	assert_int_equal(f->decisions.items[0].len, strlen(f->decisions.items[0].error));
}

/* ---- loading ---- */

static void expect_load_error(const char *file, long ilimit, size_t mlimit, const char *want)
{
	char err[512];
	struct rules *r = load(file, ilimit, mlimit, err, sizeof err);

	assert_null(r);
	if (!strstr(err, want))
		fail_msg("%s: error '%s' lacks '%s'", file, err, want);
	assert_null(strchr(err, '\n'));
}

static void test_load_errors(void **state)
{
	(void)state;
	expect_load_error(RULES_DIR "syntax_error.lua", 0, 0, "tests/rules/syntax_error.lua:4:");
	expect_load_error(RULES_DIR "no_route.lua", 0, 0, "route");
	expect_load_error(RULES_DIR "init_error.lua", 0, 0, "tests/rules/init_error.lua:5: init exploded");
	expect_load_error(RULES_DIR "init_forward.lua", 0, 0, "forward() is only valid inside route()");
	expect_load_error(RULES_DIR "missing.lua", 0, 0, "cannot open tests/rules/missing.lua");
	expect_load_error(RULES_DIR "load_loop.lua", 10000, 0, "instruction limit exceeded (10000)");
	expect_load_error(RULES_DIR "eval.lua", 0, 4096, "memory");
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* A rules file in its own directory requires a nested module beside it. */
static void test_require_beside_rules_file(void **state)
{
	char dir[] = "/tmp/test_rules.XXXXXX", path[256];
	struct rules_options opt;
	struct rules_fx *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/util", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "%s/util/fmt.lua", dir);
	write_file(path, "loads = (loads or 0) + 1\nreturn { tag = function(s) return '<' .. s .. '>' end }\n");
	snprintf(path, sizeof path, "%s/secret.lua", dir);
	write_file(path, "return 'outside'\n");
	snprintf(path, sizeof path, "%s/rules.lua", dir);
	write_file(path, "local fmt = require('util.fmt')\n"
			 "function route(event)\n"
			 "  require('util.fmt')\n"
			 "  drop(fmt.tag(event.action) .. loads)\n"
			 "end\n");

	opt = rules_opts(path, ILIMIT, MLIMIT);
	f = rfx_new(&opt);
	rfx_parse(f, "{\"events\":[{\"action\":\"email_open\"}]}");
	assert_int_equal(rfx_route(f, 0), 0);
	assert_int_equal(f->decisions.count, 1);
	assert_string_equal(f->decisions.items[0].reason, "<email_open>1");

	rules_end_batch(f->r);
	rfx_free(f);
	assert_int_equal(tu_rmtree(dir), 0);
}

/* A module required while main compiles is recorded; a state built from
 * the record takes it from there even after the file changed or broke. */
static void test_required_module_is_recorded_and_replayed(void **state)
{
	char dir[] = "/tmp/test_rules.XXXXXX", mod[256], path[256], err[512];
	struct rules_modules rec = { 0 };
	struct rules_options opt = { .instruction_limit = ILIMIT, .memory_limit = MLIMIT };
	struct rules *r;
	struct rules_fx *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(mod, sizeof mod, "%s/m.lua", dir);
	write_file(mod, "return { v = 'v1' }\n");
	snprintf(path, sizeof path, "%s/rules.lua", dir);
	write_file(path, "local m = require('m')\nfunction route(event) drop(m.v) end\n");
	opt.path = path;
	opt.record = &rec;
	r = rules_new(&opt, err, sizeof err);
	if (!r)
		fail_msg("%s", err);
	rules_free(r);
	assert_int_equal(rec.n, 1);
	assert_string_equal(rec.m[0].name, "m");
	assert_string_equal(rec.m[0].text, "return { v = 'v1' }\n");

	write_file(mod, "return { v = \n");   /* broken on disk */
	opt.record = NULL;
	opt.modules = &rec;
	f = rfx_new(&opt);
	rfx_parse(f, "{\"events\":[{\"action\":\"email_open\"}]}");
	assert_int_equal(rfx_route(f, 0), 0);
	assert_string_equal(f->decisions.items[0].reason, "v1");
	rules_end_batch(f->r);
	rfx_free(f);
	/* Without the record, the disk's broken text is what loads. */
	opt.modules = NULL;
	assert_null(rules_new(&opt, err, sizeof err));
	assert_non_null(strstr(err, "m.lua:"));

	for (size_t i = 0; i < rec.n; i++) {
		free(rec.m[i].name);
		free(rec.m[i].text);
	}
	free(rec.m);
	assert_int_equal(tu_rmtree(dir), 0);
}

/* ---- decisions ---- */

static const char kinds_batch[] =
	"{\"events\":["
	"{\"action\":\"email_open\"},"
	"{\"action\":\"email_click\",\"action_date\":9007199254740993,\"list_id\":\"12\"},"
	"{\"action\":\"email_send\"},"
	"{\"action\":\"sms_send\"},"
	"{\"action\":\"sms_delivered\"},"
	"{\"action\":\"voice_send\",\"action_date\":631152000},"
	"{\"action\":\"unsubscribe\"},"
	"{\"action\":\"subscription\"},"
	"{\"action\":\"product_view\"},"
	"{\"action\":\"several\"}"
	"]}";

static void test_every_kind_with_options(void **state)
{
	struct rules_fx *f = *state;
	const struct decision *a;

	rfx_parse(f, kinds_batch);
	assert_int_equal(f->batch.count, 10);
	for (size_t i = 0; i < f->batch.count; i++)
		assert_int_equal(rfx_route(f, i), 0);
	assert_int_equal(f->decisions.count, 10);  /* product_view: none; several: two */

	a = &f->decisions.items[0];
	assert_int_equal(a->kind, DECISION_FORWARD);
	assert_int_equal(a->event, 0);
	assert_string_equal(a->target, "https://a.example/hook");
	assert_null(a->body);
	assert_string_equal(a->method, "POST");
	assert_null(a->content_type);
	assert_null(a->headers);
	assert_null(a->name);

	a = &f->decisions.items[1];
	assert_int_equal(a->kind, DECISION_FORWARD);
	assert_int_equal(a->event, 1);
	assert_string_equal(a->target, "http://b.example/x");
	assert_string_equal(a->method, "PUT");
	assert_string_equal(a->content_type, "application/x-test");
	assert_string_equal(a->headers, "X-A: 1\nX-B: 2\n");
	assert_string_equal(a->name, "crm");
	assert_int_equal(a->is_json, 1);
	assert_non_null(a->body);
	assert_int_equal(a->len, strlen(a->body));
	/* Object key order is not fixed; both members must be exact. */
	assert_non_null(strstr(a->body, "\"id\":9007199254740993"));
	assert_non_null(strstr(a->body, "\"list\":\"12\""));

	a = &f->decisions.items[2];
	assert_string_equal(a->body, "plain text");
	assert_int_equal(a->len, 10);
	assert_int_equal(a->is_json, 0);
	assert_string_equal(a->method, "POST");

	a = &f->decisions.items[3];
	assert_int_equal(a->kind, DECISION_WRITE);
	assert_int_equal(a->event, 3);
	assert_string_equal(a->target, "sms/out.jsonl");
	assert_null(a->line);

	a = &f->decisions.items[4];
	assert_int_equal(a->kind, DECISION_WRITE);
	assert_string_equal(a->target, "a.txt");
	assert_string_equal(a->line, "hello");
	assert_int_equal(a->is_json, 0);

	a = &f->decisions.items[5];
	assert_int_equal(a->kind, DECISION_WRITE);
	assert_string_equal(a->line, "{\"n\":631152000}");
	assert_int_equal(a->is_json, 1);

	a = &f->decisions.items[6];
	assert_int_equal(a->kind, DECISION_DROP);
	assert_string_equal(a->reason, "unsub");
	a = &f->decisions.items[7];
	assert_int_equal(a->kind, DECISION_DROP);
	assert_string_equal(a->reason, "dropped");
	assert_int_equal(a->event, 7);

	assert_int_equal(f->decisions.items[8].kind, DECISION_DROP);
	assert_int_equal(f->decisions.items[8].event, 9);
	assert_int_equal(f->decisions.items[9].kind, DECISION_WRITE);
	assert_int_equal(f->decisions.items[9].event, 9);

	assert_string_equal(rules_event_action(f->r, 8), "product_view");
	assert_null(rules_event_action(f->r, 10));
	rules_end_batch(f->r);
	assert_null(rules_event_action(f->r, 0));
}

static void test_rule_error_discards_partial_decisions(void **state)
{
	struct rules_fx *f = *state;

	rfx_parse(f, "{\"events\":[{\"action\":\"unsubscribe\"},{\"action\":\"boom\"},"
		 "{\"action\":\"email_open\"}]}");
	assert_int_equal(rfx_route(f, 0), 0);
	assert_int_equal(rfx_route(f, 1), 1);
	assert_int_equal(f->decisions.count, 2);  /* the drop of event 0, then one error */
	assert_int_equal(f->decisions.items[0].kind, DECISION_DROP);
	assert_int_equal(f->decisions.items[1].kind, DECISION_ERROR);
	assert_int_equal(f->decisions.items[1].event, 1);
	assert_non_null(strstr(f->decisions.items[1].error, "tests/rules/kinds.lua:"));
	assert_non_null(strstr(f->decisions.items[1].error, ": boom"));
	assert_null(strstr(f->decisions.items[1].error, "traceback"));

	/* The state is still healthy for the next event of the batch. */
	assert_int_equal(rfx_route(f, 2), 0);
	assert_int_equal(f->decisions.count, 3);
	assert_int_equal(f->decisions.items[2].kind, DECISION_FORWARD);
	assert_int_equal(f->decisions.items[2].event, 2);
	rules_end_batch(f->r);
}

static void test_decision_cap(void **state)
{
	struct rules_fx *f = *state;

	rfx_parse(f, "{\"events\":[{\"action\":\"flood\"}]}");
	assert_int_equal(rfx_route(f, 0), 1);
	assert_int_equal(f->decisions.count, 1);
	assert_non_null(strstr(f->decisions.items[0].error, "too many decisions"));
	rules_end_batch(f->r);
}

static void test_default_is_no_decision(void **state)
{
	struct rules_fx *f = *state;

	assert_int_equal(rfx_eval(f, "local x = 1", NULL), RULES_ROUTE_RAN);
	assert_int_equal(f->decisions.count, 0);
	expect_result(f, "return initialized", NULL, "true");
}

static void test_all_actions_fixture(void **state)
{
	struct rules_fx *f = *state;
	FILE *fp = fopen("tests/fixtures/batch-all-actions.json", "rb");
	char *body, err[256];
	long len;
	size_t forwards = 0, writes = 0, drops = 0;

	assert_non_null(fp);
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	len = ftell(fp);
	assert_true(len > 0);
	rewind(fp);
	body = malloc((size_t)len + 1);
	assert_non_null(body);
	assert_int_equal(fread(body, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	body[len] = '\0';

	rules_free(f->r);
	f->r = load(RULES_DIR "all_actions.lua", ILIMIT, MLIMIT, err, sizeof err);
	assert_non_null(f->r);
	assert_int_equal(rules_parse_batch(f->r, body, (size_t)len, 1000, &f->batch, err, sizeof err), 0);
	assert_int_equal(f->batch.count, 38);
	for (size_t i = 0; i < 38; i++) {
		const char *action = rules_event_action(f->r, i);
		const struct decision *a;

		assert_null(f->batch.events[i].reject);
		assert_non_null(action);
		assert_int_equal(rfx_route(f, i), 0);
		assert_int_equal(f->decisions.count, i + 1);
		a = &f->decisions.items[i];
		assert_int_equal(a->event, i);
		if (strncmp(action, "email_", 6) == 0) {
			assert_int_equal(a->kind, DECISION_FORWARD);
			forwards++;
		} else if (strncmp(action, "sms_", 4) == 0) {
			assert_int_equal(a->kind, DECISION_WRITE);
			writes++;
		} else {
			assert_int_equal(a->kind, DECISION_DROP);
			assert_string_equal(a->reason, action);
			drops++;
		}
	}
	assert_string_equal(rules_event_action(f->r, 0), "forget_subscription");
	assert_string_equal(rules_event_action(f->r, 37), "product_view");
	assert_int_equal(forwards, 7);
	assert_int_equal(writes, 2);
	assert_int_equal(drops, 29);
	rules_end_batch(f->r);
	free(body);
}

/* ---- limits ---- */

static void test_instruction_limit(void **state)
{
	struct rules_fx *f = *state;

	expect_error(f, "while true do end", "instruction limit exceeded (200000)");
	expect_error(f, "while true do end", "eval:1:");
	/* pcall/xpcall cannot swallow it */
	expect_error(f, "pcall(function() while true do end end) return 'escaped'",
		     "instruction limit exceeded");
	expect_error(f, "while true do pcall(function() while true do end end) end",
		     "instruction limit exceeded");
	expect_error(f, "xpcall(function() while true do end end, function(e) return e end) "
			"return 'escaped'", "instruction limit exceeded");
	/* no finalizers: they would run outside any budget, inside another event */
	expect_error(f, "setmetatable({}, { __gc = function() while true do end end })",
		     "__gc metamethods are not allowed");
	expect_result(f, "return getmetatable(setmetatable({}, { __index = { k = 'v' } })).__index.k",
		      NULL, "v");
	expect_error(f, "local function deep(n) return 1 + deep(n + 1) end return deep(1)",
		     "eval:1:");
	/* a fresh budget for the next event */
	expect_result(f, "local n = 0 for i = 1, 10000 do n = n + i end return n", NULL, "50005000");
}

static void test_memory_limit(void **state)
{
	struct rules_fx *f = *state;
	const char *hog = "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 4096) .. i end";

	expect_error(f, hog, "memory limit exceeded");
	expect_error(f, "return string.rep('x', 64 * 1024 * 1024)", "memory limit exceeded");
	expect_error(f, "local ok = pcall(function() local t = {} for i = 1, 1e9 do t[i] = string.rep('z', 4096) .. i end end) "
			"return 'escaped'", "memory limit exceeded");
	/* the state recovers: the next event may use most of the budget again */
	expect_result(f, "return #string.rep('y', 2 * 1024 * 1024)", NULL, "2097152");
	expect_error(f, hog, "memory limit exceeded");
	expect_result(f, "return #string.rep('y', 2 * 1024 * 1024)", NULL, "2097152");
}

/* A batch whose event tables do not fit in lua_memory_limit is the sender's
 * problem (413), not a transient failure (500); the state stays usable. */
static void test_batch_over_memory_limit_is_too_big(void **state)
{
	struct rules_fx *f = *state;
	size_t n = 300000, len = 0;
	char *body = malloc(64 + n * 3), err[256];

	assert_non_null(body);
	len += (size_t)sprintf(body, "{\"events\":[{\"action\":\"eval\",\"x\":[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(body + len, "%s{}", i ? "," : "");
	len += (size_t)sprintf(body + len, "]}]}");
	assert_int_equal(rules_parse_batch(f->r, body, len, 1000, &f->batch, err, sizeof err),
			 BATCH_TOO_BIG);
	assert_non_null(strstr(err, "lua_memory_limit"));
	free(body);
	expect_result(f, "return 'alive'", NULL, "alive");
}

/* Logs and `egoi-router test` name the action E-goi sent, whatever the rule does. */
static void test_event_action_is_the_original(void **state)
{
	struct rules_fx *f = *state;

	decisions_clear(&f->decisions);
	rfx_parse(f, "{\"events\":[{\"action\":\"eval\",\"code\":\"event.action = 'changed'\"},"
		 "7,{\"action\":\"other\"}]}");
	assert_int_equal(rfx_route(f, 0), 0);
	assert_string_equal(rules_event_action(f->r, 0), "eval");
	assert_null(rules_event_action(f->r, 1));
	assert_string_equal(rules_event_action(f->r, 2), "other");
	rules_end_batch(f->r);
	assert_null(rules_event_action(f->r, 0));
}

/* ---- sandbox ---- */

static void test_sandbox_globals(void **state)
{
	struct rules_fx *f = *state;

	expect_result(f,
		      "local bad = {}\n"
		      "for _, n in ipairs{'io','debug','package','loadfile','dofile','collectgarbage',\n"
		      "  'coroutine','warn','loadstring','module','setfenv'} do\n"
		      "  if _G[n] ~= nil then bad[#bad + 1] = n end\n"
		      "end\n"
		      "for _, n in ipairs{'execute','exit','getenv','remove','rename','tmpname','setlocale'} do\n"
		      "  if os[n] ~= nil then bad[#bad + 1] = 'os.' .. n end\n"
		      "end\n"
		      "if string.dump ~= nil or ('').dump ~= nil then bad[#bad + 1] = 'string.dump' end\n"
		      "return #bad == 0 and 'ok' or table.concat(bad, ',')",
		      NULL, "ok");
	expect_result(f, "return type(os.time()) .. type(os.date('%Y')) .. type(os.clock())", NULL,
		      "numberstringnumber");
	expect_result(f, "return math.type(math.maxinteger) .. utf8.char(233) .. table.concat({1, 2})",
		      NULL, "integer\xc3\xa9" "12");
}

static void test_sandbox_load(void **state)
{
	struct rules_fx *f = *state;

	expect_result(f, "local fn, err = load('\\27LuaT\\0') return fn == nil and err", NULL,
		      "attempt to load a binary chunk (mode is 't')");
	expect_result(f, "local fn, err = load('\\27LuaT\\0', 'x', 'b') return fn == nil and err",
		      NULL, "attempt to load a binary chunk (mode is 't')");
	expect_result(f, "return load('return math.type(2)')()", NULL, "integer");
	expect_result(f, "return load('return x', 'c', 't', { x = 5 })()", NULL, "5");
	expect_result(f, "return select(2, pcall(load('return io.open', '=c', 't', nil)))", NULL,
		      "c:1: attempt to index a nil value (upvalue '_ENV')");
}

static void test_sandbox_require(void **state)
{
	struct rules_fx *f = *state;

	expect_result(f, "return require('lib.greet').hello('ana')", NULL, "hello ana");
	expect_result(f, "return require('lib.greet') == require('lib.greet')", NULL, "true");
	expect_error(f, "require('../x')", "invalid module name '../x'");
	expect_error(f, "require('lib..greet')", "invalid module name");
	expect_error(f, "require('/etc/passwd')", "invalid module name");
	expect_error(f, "require('nothere')", "module 'nothere' not found");
	expect_error(f, "require('cjson')", "not found");
}

static void test_pcall_still_catches_rule_errors(void **state)
{
	struct rules_fx *f = *state;

	expect_result(f, "local ok, e = pcall(error, 'x', 0) return tostring(ok) .. e", NULL, "falsex");
	expect_result(f, "return select(2, xpcall(error, function(e) return 'h:' .. e end, 'y', 0))",
		      NULL, "h:y");
	expect_result(f, "return select('#', pcall(function() return 1, 2, 3 end))", NULL, "4");
	expect_result(f, "return select(3, xpcall(function(a, b) return a, b end, print, 7, 8))", NULL,
		      "8");
}

/* ---- values ---- */

static void test_numbers_stay_exact(void **state)
{
	struct rules_fx *f = *state;

	expect_result(f, "return math.type(event.action_date) .. ' ' .. event.action_date",
		      "\"action_date\":1778576400", "integer 1778576400");
	expect_result(f, "return math.type(event.f) .. ' ' .. tostring(event.g) .. ' ' .. event.big",
		      "\"f\":2.5,\"g\":1.0,\"big\":9007199254740993", "float 1.0 9007199254740993");
	expect_result(f, "return 'order ' .. event.n", "\"n\":631152000", "order 631152000");
}

static void test_json_helpers(void **state)
{
	struct rules_fx *f = *state;

	expect_result(f, "return json.encode(json.decode('9007199254740993'))", NULL,
		      "9007199254740993");
	expect_result(f, "return math.type(json.decode('9007199254740993'))", NULL, "integer");
	expect_result(f, "return json.encode(631152000)", NULL, "631152000");
	expect_result(f, "return tostring(json.decode('null') == json.null) .. json.encode({ a = json.null })",
		      NULL, "true{\"a\":null}");
	expect_result(f, "return tostring(event.x == json.null)", "\"x\":null", "true");
	expect_result(f, "return json.encode({ 1, 'two', { three = 3 } })", NULL,
		      "[1,\"two\",{\"three\":3}]");
	expect_error(f, "json.decode('{bad')", "eval:1:");
}

static void test_hmac_sha256(void **state)
{
	struct rules_fx *f = *state;

	/* RFC 4231 test case 2 */
	expect_result(f, "return hmac_sha256('Jefe', 'what do ya want for nothing?')", NULL,
		      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* empty key and data: a well-known value */
	expect_result(f, "return hmac_sha256('', '')", NULL,
		      "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
	expect_error(f, "hmac_sha256('k')", "bad argument #2");
}

static void test_meta_env_now_log(void **state)
{
	struct rules_fx *f = *state;
	char levels[16];
	struct rules_meta meta = {
		.index = 7,
		.batch_size = 9,
		.received_at = 1712345678.25,
		.remote_addr = "10.0.0.1",
		.request_id = "req-1",
	};

	decisions_clear(&f->decisions);
	rfx_parse(f, "{\"events\":[{\"action\":\"eval\",\"code\":\"return table.concat({meta.index, "
		 "meta.batch_size, meta.remote_addr, meta.request_id, meta.received_at, "
		 "math.type(meta.index)}, ',')\"}]}");
	assert_int_equal(rules_route(f->r, 0, &meta, &f->decisions), RULES_ROUTE_RAN);
	assert_int_equal(f->decisions.count, 1);
	assert_string_equal(f->decisions.items[0].reason, "7,9,10.0.0.1,req-1,1712345678.25,integer");
	rules_end_batch(f->r);

	assert_int_equal(setenv("EGOI_TEST_RULES_ENV", "v4lue", 1), 0);
	expect_result(f, "return env('EGOI_TEST_RULES_ENV')", NULL, "v4lue");
	expect_result(f, "return tostring(env('EGOI_TEST_RULES_UNSET'))", NULL, "nil");
	expect_result(f, "local t = now() return math.type(t) .. tostring(t > 1.6e9 and t < 1e10)",
		      NULL, "floattrue");
	expect_result(f, "log.debug('d') log.info('i', 1, nil, {}) log.warn('w') log.error('e') "
			 "print('p') return 'ok'", NULL, "ok");
	/* log.NAME for exactly the levels log.h names (the names log_level = takes) */
	for (int lvl = 0; lvl < LOG_LEVELS; lvl++) {
		char code[96];

		snprintf(code, sizeof code, "return type(log['%s'])",
			 log_level_name((enum log_level)lvl));
		expect_result(f, code, NULL, "function");
	}
	snprintf(levels, sizeof levels, "%d", LOG_LEVELS);
	expect_result(f, "local n = 0 for _ in pairs(log) do n = n + 1 end return tostring(n)", NULL,
		      levels);
}

/* ---- API argument checks ---- */

static void test_forward_validation(void **state)
{
	struct rules_fx *f = *state;

	expect_error(f, "forward('ftp://x.example/')", "forward: url must be http(s)");
	expect_error(f, "forward('https://')", "url must be http(s)");
	expect_error(f, "forward('https://x.example/a b')", "url must be http(s)");
	expect_error(f, "forward(42)", "url must be http(s)");
	/* read by libcurl's parser, as delivery reads it: no host, or a URL
	 * libcurl refuses (it would only be dead-lettered when claimed) */
	expect_error(f, "forward('http:///path')", "url must be http(s)");
	expect_error(f, "forward('http:/host.example/')", "url must be http(s)");
	expect_error(f, "forward('http://a@b@host.example/')", "url must be http(s)");
	expect_error(f, "forward('https://x.example:99999/')", "url must be http(s)");
	expect_error(f, "forward('https://x.example/', 'opts')", "forward: opts must be a table");
	expect_error(f, "forward('https://x.example/', { headers = { ['Bad Name'] = 'v' } })",
		     "header 'Bad Name' has an invalid name");
	expect_error(f, "forward('https://x.example/', { headers = { ['X-A'] = 'v\\r\\nX-B: y' } })",
		     "header 'X-A' has a control character in its value");
	expect_error(f, "forward('https://x.example/', { headers = { ['X-A'] = 1 } })",
		     "must have a string value");
	expect_error(f, "forward('https://x.example/', { headers = { 'X-A: 1' } })",
		     "header names must be strings");
	expect_error(f, "forward('https://x.example/', { headers = { ['Content-Length'] = '1' } })",
		     "is set by the router");
	expect_error(f, "forward('https://x.example/', { headers = 'X-A: 1' })",
		     "headers must be a table");
	expect_error(f, "forward('https://x.example/', { method = 'GET' })",
		     "method must be POST or PUT");
	expect_error(f, "forward('https://x.example/', { body = 42 })",
		     "body must be a table or a string");
	expect_error(f, "forward('https://x.example/', { body = { f = print } })", "forward: body:");
	expect_error(f, "forward('https://x.example/', { name = string.rep('n', 65) })", "name");
	expect_error(f, "forward('https://x.example/', { content_type = 'a\\nb' })", "content_type");
	/* an accepted forward after all that */
	assert_int_equal(rfx_eval(f, "forward('HTTPS://x.example/', { method = 'Put', headers = {} })",
			      NULL), RULES_ROUTE_RAN);
	assert_int_equal(f->decisions.count, 1);
	assert_string_equal(f->decisions.items[0].method, "PUT");
	assert_null(f->decisions.items[0].headers);
}

/* A misspelt option is an error naming it, not a silently lost setting. */
static void test_unknown_options(void **state)
{
	struct rules_fx *f = *state;

	expect_error(f, "forward('https://x.example/', { nmae = 'crm' })",
		     "forward: unknown option 'nmae'");
	expect_error(f, "forward('https://x.example/', { header = { Authorization = 'Bearer t' } })",
		     "forward: unknown option 'header'");
	expect_error(f, "forward('https://x.example/', { name = 'crm', 'positional' })",
		     "forward: opts takes named options only (a number key)");
	expect_error(f, "write('a.jsonl', { lines = 'x' })", "write: unknown option 'lines'");
	expect_error(f, "write('a.jsonl', { [true] = 'x' })",
		     "write: opts takes named options only (a boolean key)");
	expect_error(f, "forward('https://x.example/', { ['a\\nb'] = 1 })",
		     "forward: unknown option (not printable)");
	/* every known option still passes */
	assert_int_equal(rfx_eval(f, "forward('https://x.example/', { name = 'n', method = 'PUT', "
				 "content_type = 'text/plain', headers = { ['X-A'] = 'b' }, "
				 "body = 'x' }) write('a.jsonl', { line = 'l' })", NULL),
			 RULES_ROUTE_RAN);
	assert_int_equal(f->decisions.count, 2);
}

static void test_write_and_drop_validation(void **state)
{
	struct rules_fx *f = *state;

	expect_error(f, "write('../x')", "write: ");
	expect_error(f, "write('/etc/passwd')", "write: ");
	expect_error(f, "write('a/../../x')", "write: ");
	expect_error(f, "write('')", "write: ");
	expect_error(f, "write(nil)", "write: path must be a string");
	expect_error(f, "write('x', { line = 'a\\nb' })", "must not contain a newline");
	expect_error(f, "write('x', { line = 5 })", "line must be a string or a table");
	expect_error(f, "drop(5)", "drop: reason must be a string");
	expect_error(f, "drop(string.rep('r', 200))", "drop: reason must be");
	assert_int_equal(rfx_eval(f, "write('ok/x.log', { line = { 1, 2 } })", NULL), RULES_ROUTE_RAN);
	assert_int_equal(f->decisions.count, 1);
	assert_string_equal(f->decisions.items[0].target, "ok/x.log");
	assert_string_equal(f->decisions.items[0].line, "[1,2]");
}

/* Every worker state runs init(); its log lines must appear once per process. */
static void test_init_log_once_per_process(void **state)
{
	char dir[] = "/tmp/test_rules_once.XXXXXX", path[256], logpath[256], buf[4096];
	struct rules_options opt = { 0 };
	struct rules *a, *b;
	char err[512];
	FILE *f;
	size_t n;
	int saved, fd;
	const char *p;
	int count = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/once.lua", dir);
	snprintf(logpath, sizeof logpath, "%s/stderr.log", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("function init() log.warn('once-marker-7d1e') end\n"
	      "function route(e, m) log.warn('per-event-marker') end\n", f);
	fclose(f);
	opt.path = path;

	fflush(stderr);
	saved = dup(2);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	a = rules_new(&opt, err, sizeof err);
	b = rules_new(&opt, err, sizeof err);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	assert_non_null(a);
	assert_non_null(b);
	rules_free(a);
	rules_free(b);

	f = fopen(logpath, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (p = buf; (p = strstr(p, "once-marker-7d1e")); p++)
		count++;
	assert_int_equal(count, 1);
	unlink(logpath);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_log_once_per_process),
		cmocka_unit_test_setup_teardown(test_batch_over_memory_limit_is_too_big, setup_eval,
						rfx_teardown),
		cmocka_unit_test_setup_teardown(test_event_action_is_the_original, setup_eval,
						rfx_teardown),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_require_beside_rules_file),
		cmocka_unit_test(test_required_module_is_recorded_and_replayed),
		cmocka_unit_test_setup_teardown(test_every_kind_with_options, setup_kinds, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_rule_error_discards_partial_decisions, setup_kinds,
						rfx_teardown),
		cmocka_unit_test_setup_teardown(test_decision_cap, setup_kinds, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_default_is_no_decision, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_all_actions_fixture, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_instruction_limit, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_memory_limit, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_sandbox_globals, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_sandbox_load, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_sandbox_require, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_pcall_still_catches_rule_errors, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_numbers_stay_exact, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_json_helpers, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_hmac_sha256, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_meta_env_now_log, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_forward_validation, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_options, setup_eval, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_write_and_drop_validation, setup_eval, rfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
