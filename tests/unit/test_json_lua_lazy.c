/*
 * test_json_lua_lazy.c — lazy event tables (json_lua_lazy.c) through the
 * rules engine: every way a rule can touch an event sees what an eagerly
 * built table showed: field reads (exact integers, floats, json.null,
 * booleans), nested reads, pairs, ipairs on contact.fields, #, assignment,
 * the raw functions (rawget, rawset, rawlen, next, getmetatable,
 * setmetatable), an event kept in a global and read in a later batch,
 * json.encode, duplicate keys; and a batch whose tables could not be
 * built is still refused at parse time. Memory: the parse scratch comes
 * from a bounded shared pool, and rules_idle shrinks a waiting state.
 *
 * Uses tests/rules/eval.lua through the shared rules fixture
 * (rules_fixture.h): the event's code runs with event in scope and its
 * result comes back as a drop reason. Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "decisions.h"
#include "json_lua_lazy.h"
#include "rules.h"
#include "rules_internal.h"
#include "unit/rules_fixture.h"

/* The members every test event carries besides action and code. */
#define FIELDS \
	"\"n\":9007199254740993,\"f\":1.5,\"z\":null,\"t\":true," \
	"\"contact\":{\"base\":[\"b1\"],\"fields\":[{\"email\":\"a@x\",\"id\":1},{\"email\":\"b@x\"}]}," \
	"\"action_data\":{\"order\":\"42\"}"

static int setup(void **state)
{
	struct rules_options opt = { .path = RFX_EVAL_LUA, .instruction_limit = 200000,
				     .memory_limit = (size_t)8 << 20 };

	*state = rfx_new(&opt);
	return 0;
}

/* Runs code on one event of FIELDS (plus extra members); its result. */
static const char *run(struct rules_fx *f, const char *code, const char *extra)
{
	static char got[512];
	char members[1024];

	assert_true((size_t)snprintf(members, sizeof members, "%s%s%s", FIELDS, extra ? "," : "",
				     extra ? extra : "") < sizeof members);
	if (rfx_eval(f, code, members) != RULES_ROUTE_RAN)
		fail_msg("%s: %s", code, f->decisions.count ? f->decisions.items[0].error : "?");
	assert_int_equal(f->decisions.count, 1);
	assert_int_equal(f->decisions.items[0].kind, DECISION_DROP);
	snprintf(got, sizeof got, "%s", f->decisions.items[0].reason);
	return got;
}

#define EXPECT(f, code, want) assert_string_equal(run(f, code, NULL), want)

static void test_read(void **state)
{
	struct rules_fx *f = *state;

	EXPECT(f, "return event.n", "9007199254740993");
	EXPECT(f, "return math.type(event.n) .. math.type(event.f) .. event.f", "integerfloat1.5");
	EXPECT(f, "return tostring(event.z == json.null) .. tostring(event.t)", "truetrue");
	EXPECT(f, "return tostring(event.missing) .. tostring(event[1]) .. event.action", "nilnileval");
	/* a string key that looks like a number is still a string key */
	assert_string_equal(run(f, "return tostring(event['7']) .. tostring(event[7])", "\"7\":\"s\""),
			    "snil");
}

static void test_nested_read(void **state)
{
	struct rules_fx *f = *state;

	EXPECT(f, "return event.contact.fields[2].email .. event.action_data.order", "b@x42");
	EXPECT(f, "return math.type(event.contact.fields[1].id)", "integer");
	/* a container is built once: the same table on every read */
	EXPECT(f, "return tostring(event.contact == event.contact and "
		  "event.contact.fields == event.contact.fields)", "true");
}

static void test_pairs(void **state)
{
	struct rules_fx *f = *state;

	EXPECT(f, "local k = {} for name in pairs(event) do k[#k + 1] = name end "
		  "table.sort(k) return table.concat(k, ',')",
	       "action,action_data,code,contact,f,n,t,z");
	/* a container read before pairs is the one pairs gives */
	EXPECT(f, "local c = event.contact local same for k, v in pairs(event) do "
		  "if k == 'contact' then same = v == c end end return tostring(same)", "true");
	EXPECT(f, "local n = 0 for k, v in pairs(event.contact.fields[1]) do n = n + 1 end return n",
	       "2");
}

static void test_ipairs_and_length(void **state)
{
	struct rules_fx *f = *state;

	EXPECT(f, "local s = '' for i, c in ipairs(event.contact.fields) do s = s .. i .. c.email end "
		  "return s", "1a@x2b@x");
	EXPECT(f, "local n = 0 for _ in ipairs(event) do n = n + 1 end return n", "0");
	EXPECT(f, "return #event .. #event.contact.fields .. #event.contact.base", "021");
}

static void test_assignment(void **state)
{
	struct rules_fx *f = *state;

	EXPECT(f, "event.action = 'x' event.new = 1 return event.action .. event.new .. "
		  "event.contact.fields[2].email .. event.n", "x1b@x9007199254740993");
	EXPECT(f, "local c = event.contact event.y = 1 return tostring(c == event.contact)", "true");
	EXPECT(f, "event.contact.fields[1].email = 'q' return event.contact.fields[1].email", "q");
	EXPECT(f, "event.contact = nil return tostring(event.contact)", "nil");
	EXPECT(f, "local c = event.contact event.contact = nil return tostring(event.contact) .. "
		  "c.base[1]", "nilb1");
	EXPECT(f, "event.n = nil local k = 0 for _ in pairs(event) do k = k + 1 end return k", "7");
	EXPECT(f, "table.insert(event, 'v') return event[1] .. #event", "v1");
}

static void test_raw_access(void **state)
{
	struct rules_fx *f = *state;

	EXPECT(f, "return rawget(event, 'action') .. rawget(event, 'n')", "eval9007199254740993");
	EXPECT(f, "local x = event.contact return tostring(rawget(event, 'contact') == x)", "true");
	EXPECT(f, "return tostring(next(event) ~= nil) .. rawlen(event)", "true0");
	EXPECT(f, "rawset(event, 'w', 5) return event.w .. event.action", "5eval");
	EXPECT(f, "return tostring(getmetatable(event))", "nil");
	EXPECT(f, "setmetatable(event, { __index = function() return 'd' end }) "
		  "return event.nosuch .. event.action .. tostring(getmetatable(event) ~= nil)",
	       "devaltrue");
	/* the raw functions still work on other values */
	EXPECT(f, "return rawget({ a = 1 }, 'a') .. tostring(next({})) .. rawlen('abc')", "1nil3");
}

/* The event outlives its batch: kept in a global, read after later batches. */
static void test_kept_across_batches(void **state)
{
	struct rules_fx *f = *state;
	char code[128];

	EXPECT(f, "kept = event kept_contact = event.contact return 'kept'", "kept");
	for (int i = 0; i < 50; i++) {
		snprintf(code, sizeof code, "local t = {} for i = 1, 2000 do t[i] = { i } end return %d",
			 i);
		assert_int_equal(atoi(run(f, code, NULL)), i);
	}
	EXPECT(f, "return kept.action .. kept.contact.fields[2].email .. kept.n .. "
		  "tostring(kept.contact == kept_contact)", "evalb@x9007199254740993true");
	EXPECT(f, "local k = 0 for _ in pairs(kept) do k = k + 1 end return k", "8");
	EXPECT(f, "return tostring(kept ~= event)", "true");
}

static void test_json_encode(void **state)
{
	struct rules_fx *f = *state;

	EXPECT(f, "local d = json.decode(json.encode(event)) return d.n .. d.f .. "
		  "d.contact.fields[2].email .. tostring(d.z == json.null) .. math.type(d.n) .. d.action",
	       "90071992547409931.5b@xtrueintegereval");
	EXPECT(f, "local d = json.decode(json.encode({ e = event })) return d.e.action_data.order",
	       "42");
	/* after encoding, the event is still the same event */
	EXPECT(f, "local c = event.contact json.encode(event) return tostring(c == event.contact) .. "
		  "event.action", "trueeval");
}

static void test_duplicate_keys(void **state)
{
	struct rules_fx *f = *state;

	assert_string_equal(run(f, "return event.k", "\"k\":1,\"k\":2"), "2");
	assert_string_equal(run(f, "local s = '' for k, v in pairs(event) do if k == 'k' then "
				   "s = s .. v end end return s", "\"k\":1,\"k\":{\"x\":2},\"k\":3"),
			    "3");
}

/* The host's copy of each action (logs, `egoi-router test`, metrics) is what
 * the batch said, decoded, the last when repeated, whatever the rule does. */
static void test_action_as_received(void **state)
{
	struct rules_fx *f = *state;
	const char *body = "{\"events\":[{\"action\":\"x\",\"action\":\"\\u0065val\","
			   "\"code\":\"event.action = 'changed' return event.action\"},"
			   "{\"action\":\"eval\",\"code\":\"return 'ok'\",\"action\":\"ev\\u00e1l\"}]}";
	struct rules_meta meta = { .index = 1, .batch_size = 2, .request_id = "t" };
	char err[256];

	decisions_clear(&f->decisions);
	assert_int_equal(rules_parse_batch(f->r, body, strlen(body), 10, &f->batch, err, sizeof err),
			 BATCH_OK);
	assert_string_equal(rules_event_action(f->r, 0), "eval");
	assert_string_equal(rules_event_action(f->r, 1), "ev\xc3\xa1l");
	assert_int_equal(rules_route(f->r, 0, &meta, &f->decisions), RULES_ROUTE_RAN);
	assert_string_equal(f->decisions.items[0].reason, "changed");
	assert_string_equal(rules_event_action(f->r, 0), "eval");   /* not the rule's */
	assert_null(rules_event_action(f->r, 2));                    /* past the batch */
	rules_end_batch(f->r);
	assert_null(rules_event_action(f->r, 0));                    /* between batches */
}

/* Tables that could not all be built do not pass the parse (413), as before. */
static void test_too_big_for_the_limit(void **state)
{
	struct rules_fx *f = *state;
	size_t n = 300000, len = 0;
	char *body = malloc(64 + n * 3), err[256];

	assert_non_null(body);
	len += (size_t)sprintf(body, "{\"events\":[{\"action\":\"eval\",\"x\":[");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(body + len, "%s{}", i ? "," : "");
	len += (size_t)sprintf(body + len, "]}]}");
	assert_int_equal(rules_parse_batch(f->r, body, len, 10, &f->batch, err, sizeof err),
			 BATCH_TOO_BIG);
	free(body);
	EXPECT(f, "return 'alive'", "alive");
}

/* An event without a string action is rejected and never reaches the rule. */
static void test_rejected_not_routable(void **state)
{
	struct rules_fx *f = *state;
	const char *body = "{\"events\":[{\"x\":1},7,{\"action\":\"eval\",\"code\":\"return event.y\","
			   "\"y\":\"third\"}]}";
	struct rules_meta meta = { .index = 3, .batch_size = 3, .request_id = "t" };
	char err[256];

	decisions_clear(&f->decisions);
	assert_int_equal(rules_parse_batch(f->r, body, strlen(body), 10, &f->batch, err, sizeof err),
			 BATCH_OK);
	assert_int_equal(f->batch.count, 3);
	assert_non_null(f->batch.events[0].reject);
	assert_non_null(f->batch.events[1].reject);
	assert_null(rules_event_action(f->r, 0));
	assert_string_equal(rules_event_action(f->r, 2), "eval");
	assert_int_equal(rules_route(f->r, 2, &meta, &f->decisions), RULES_ROUTE_RAN);
	assert_string_equal(f->decisions.items[0].reason, "third");
	rules_end_batch(f->r);
}

/* The pool keeps at most JSON_LUA_LAZY_POOL_KEEP scratches, none above the size cap. */
static void test_scratch_pool_bounded(void **state)
{
	struct json_lua_lazy_scratch *s[JSON_LUA_LAZY_POOL_KEEP + 3], *big;
	size_t n = sizeof s / sizeof s[0], count, before;

	(void)state;
	before = json_lua_lazy_pool_bytes(&count);
	assert_true(count <= JSON_LUA_LAZY_POOL_KEEP);
	for (size_t i = 0; i < n; i++) {
		s[i] = json_lua_lazy_scratch_take();
		assert_non_null(s[i]);
		for (size_t k = 0; k < i; k++)
			assert_ptr_not_equal(s[i], s[k]);   /* never handed out twice */
	}
	json_lua_lazy_pool_bytes(&count);
	assert_int_equal(count, 0);
	for (size_t i = 0; i < n; i++)
		json_lua_lazy_scratch_give(s[i]);
	json_lua_lazy_pool_bytes(&count);
	assert_int_equal(count, JSON_LUA_LAZY_POOL_KEEP);
	/* a scratch whose buffers grew past the cap is freed, not kept */
	for (size_t i = 0; i < JSON_LUA_LAZY_POOL_KEEP; i++)
		s[i] = json_lua_lazy_scratch_take();
	big = json_lua_lazy_scratch_take();
	assert_non_null(big);
	big->capstr = JSON_LUA_LAZY_SCRATCH_KEEP + 1;
	big->strs = malloc(big->capstr);
	assert_non_null(big->strs);
	json_lua_lazy_scratch_give(big);
	json_lua_lazy_pool_bytes(&count);
	assert_int_equal(count, 0);
	for (size_t i = 0; i < JSON_LUA_LAZY_POOL_KEEP; i++)
		json_lua_lazy_scratch_give(s[i]);
	assert_true(json_lua_lazy_pool_bytes(&count) <= before + JSON_LUA_LAZY_POOL_KEEP *
							   JSON_LUA_LAZY_SCRATCH_KEEP);
}

/* A parse borrows a scratch and gives it back: the state keeps none of its own. */
static void test_parse_uses_the_pool(void **state)
{
	struct rules_fx *f = *state;
	size_t count;

	EXPECT(f, "return 'one'", "one");
	json_lua_lazy_pool_bytes(&count);
	assert_true(count >= 1 && count <= JSON_LUA_LAZY_POOL_KEEP);
}

/* rules_idle: a full collection and the free lists emptied; globals stay. */
static void test_idle_shrinks_the_state(void **state)
{
	struct rules_fx *f = *state;
	size_t after_batch;

	/* garbage that lives long enough to be old, then dies */
	EXPECT(f, "keep = {} for i = 1, 1500 do keep[i] = { i } end return 'kept'", "kept");
	EXPECT(f, "local t = {} for i = 1, 1000 do t[i] = { i } end return #keep", "1500");
	EXPECT(f, "keep = nil counter = 41 return 'dropped'", "dropped");
	after_batch = f->r->mem_used;
	assert_true(f->r->pool_kept > 0);
	rules_idle(f->r);
	assert_int_equal(f->r->pool_kept, 0);
	assert_true(f->r->mem_used + 1500 * 56 < after_batch);
	EXPECT(f, "counter = counter + 1 return counter", "42");
}

/* A large batch's tape and tables do not wait for the heap to double. */
static void test_end_of_batch_bounds_old_garbage(void **state)
{
	struct rules_fx *f = *state;
	struct rules_meta meta = { .batch_size = 300, .request_id = "t" };
	size_t n = 300, len = 0, after_batch;
	char *body = malloc(64 + n * 2200), err[256];

	assert_non_null(body);
	len += (size_t)sprintf(body, "{\"events\":[");
	for (size_t i = 0; i < n; i++) {
		len += (size_t)sprintf(body + len, "%s{\"action\":\"eval\",\"code\":\"return "
				       "#json.encode(event)\",\"x\":[", i ? "," : "");
		for (int k = 0; k < 400; k++)
			len += (size_t)sprintf(body + len, "%s%d", k ? "," : "", k);
		len += (size_t)sprintf(body + len, "]}");
	}
	len += (size_t)sprintf(body + len, "]}");
	decisions_clear(&f->decisions);
	assert_int_equal(rules_parse_batch(f->r, body, len, n, &f->batch, err, sizeof err), 0);
	for (size_t i = 0; i < n; i++) {
		meta.index = i + 1;
		assert_int_equal(rules_route(f->r, i, &meta, &f->decisions), RULES_ROUTE_RAN);
	}
	rules_end_batch(f->r);
	after_batch = f->r->mem_used;
	rules_idle(f->r);   /* what is live */
	assert_true(after_batch <= f->r->mem_used + RULES_GC_SLACK);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_nested_read, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_pairs, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_ipairs_and_length, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_assignment, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_raw_access, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_kept_across_batches, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_json_encode, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_action_as_received, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_too_big_for_the_limit, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_rejected_not_routable, setup, rfx_teardown),
		cmocka_unit_test(test_scratch_pool_bounded),
		cmocka_unit_test_setup_teardown(test_parse_uses_the_pool, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_idle_shrinks_the_state, setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_end_of_batch_bounds_old_garbage, setup, rfx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
