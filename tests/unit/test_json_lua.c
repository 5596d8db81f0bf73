/*
 * test_json_lua.c — event tables built from batches, json.encode/decode with
 * exact numbers, json.null identity, encode errors, and the memory-error
 * path (a Lua allocator that runs out must give BATCH_NOMEM, not a crash).
 *
 * Assertions about Lua values are written in Lua and run in a test state
 * (luaL_openlibs is fine here: this is not a rule sandbox).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua-cjson.h>
#include <lualib.h>

#include "batch.h"
#include "json_lua.h"

/* Lua helpers shared by the snippets below. */
static const char *prelude =
	"function deq(a, b)\n"
	"  if type(a) ~= type(b) then return false end\n"
	"  if type(a) ~= 'table' then return a == b and math.type(a) == math.type(b) end\n"
	"  for k, v in pairs(a) do if not deq(v, b[k]) then return false end end\n"
	"  for k in pairs(b) do if a[k] == nil then return false end end\n"
	"  return true\n"
	"end\n"
	"function fails(f, want)\n"
	"  local ok, msg = pcall(f)\n"
	"  assert(not ok, 'expected an error containing ' .. want)\n"
	"  assert(tostring(msg):find(want, 1, true), 'error \"' .. tostring(msg) .. '\" lacks ' .. want)\n"
	"end\n";

static void run(lua_State *L, const char *code)
{
	int top = lua_gettop(L);

	if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 0, 0) != LUA_OK)
		fail_msg("Lua: %s", lua_tostring(L, -1));
	assert_int_equal(lua_gettop(L), top);
}

/* Global json = {encode, decode, null}, plus the prelude. */
static void install_json(lua_State *L)
{
	lua_newtable(L);
	lua_pushcfunction(L, json_lua_l_encode);
	lua_setfield(L, -2, "encode");
	lua_pushcfunction(L, json_lua_l_decode);
	lua_setfield(L, -2, "decode");
	json_lua_push_null(L);
	lua_setfield(L, -2, "null");
	lua_setglobal(L, "json");
	run(L, prelude);
}

static int setup(void **state)
{
	lua_State *L = luaL_newstate();

	if (!L)
		return -1;
	luaL_openlibs(L);
	install_json(L);
	*state = L;
	return 0;
}

static int teardown(void **state)
{
	lua_close(*state);
	return 0;
}

static void test_fixture_tables(void **state)
{
	lua_State *L = *state;
	struct batch b = {0};
	char err[256], *body;
	size_t len;
	int top = lua_gettop(L);

	body = tu_fixture("batch-all-actions.json", &len);
	assert_int_equal(json_lua_push_batch(L, body, len, 10000, &b, err, sizeof err), BATCH_OK);
	assert_int_equal(lua_gettop(L), top + 1);
	assert_int_equal(b.count, 38);
	lua_setglobal(L, "events");
	run(L, "assert(#events == 38)\n"
	       "local seen = {}\n"
	       "for i, ev in ipairs(events) do\n"
	       "  assert(type(ev.action) == 'string' and not seen[ev.action])\n"
	       "  seen[ev.action] = true\n"
	       "  assert(math.type(ev.action_date) == 'integer', ev.action)\n"
	       "  assert(type(ev.list_id) == 'string')\n"
	       "  assert(type(ev.action_data) == 'table')\n"
	       "  assert(ev.contact.fields[1].uid == ev.contact.base[1])\n"
	       "  assert(#ev.contact.base == 1)\n"
	       "end\n"
	       "assert(events[1].action == 'forget_subscription')\n"
	       "assert(events[1].action_date == 1778576400)\n"
	       "assert(events[1].contact.fields[1].email == 'ana.silva@example.com')\n");
	/* Each event's span decodes to the same table. */
	for (size_t i = 0; i < b.count; i++) {
		lua_getglobal(L, "events");
		lua_rawgeti(L, -1, (lua_Integer)i + 1);
		assert_int_equal(json_lua_decode(L, body + b.events[i].start,
						 b.events[i].end - b.events[i].start, err, sizeof err), 0);
		lua_setglobal(L, "alone");
		lua_setglobal(L, "built");
		lua_pop(L, 1);
		run(L, "assert(deq(alone, built))");
	}
	free(body);
	batch_free(&b);
}

static void test_numbers_and_values(void **state)
{
	lua_State *L = *state;
	struct batch b = {0};
	char err[256];
	const char *body =
		"{\"events\":[{\"action\":\"n\",\"d\":631152000,\"f\":2.5,\"e\":1e3,"
		"\"big\":9007199254740993,\"huge\":99999999999999999999,\"neg\":-0.5,"
		"\"s\":\"a\\\"\\u00e9\\n\",\"z\":null,\"t\":true,\"no\":false,\"l\":[1,[2,{}]],"
		"\"o\":{\"k\":[]}}]}";

	assert_int_equal(json_lua_push_batch(L, body, strlen(body), 10, &b, err, sizeof err),
			 BATCH_OK);
	lua_setglobal(L, "events");
	run(L, "local e = events[1]\n"
	       "assert(math.type(e.d) == 'integer' and e.d == 631152000)\n"
	       "assert(('order ' .. e.d) == 'order 631152000')\n"
	       "assert(math.type(e.f) == 'float' and e.f == 2.5)\n"
	       "assert(math.type(e.e) == 'float' and e.e == 1000.0)\n"
	       "assert(math.type(e.big) == 'integer' and e.big == 9007199254740993)\n"
	       "assert(math.type(e.huge) == 'float' and e.huge == 1e20)\n"
	       "assert(e.neg == -0.5)\n"
	       "assert(e.s == 'a\"\\u{e9}\\n')\n"
	       "assert(e.z == json.null and e.t == true and e.no == false)\n"
	       "assert(e.l[1] == 1 and e.l[2][1] == 2 and next(e.l[2][2]) == nil and #e.l == 2)\n"
	       "assert(next(e.o.k) == nil)\n");
	batch_free(&b);
}

static void test_rejected_and_errors(void **state)
{
	lua_State *L = *state;
	struct batch b = {0};
	char err[256];
	const char *body = "{\"events\":[1,{\"action\":\"a\"},{\"x\":1},[{\"action\":\"y\"}],{\"action\":\"b\"}]}";
	int top = lua_gettop(L);

	assert_int_equal(json_lua_push_batch(L, body, strlen(body), 10, &b, err, sizeof err),
			 BATCH_OK);
	assert_int_equal(b.count, 5);
	assert_int_equal(lua_gettop(L), top + 1);
	lua_setglobal(L, "events");
	run(L, "assert(events[1] == nil and events[2].action == 'a' and events[3] == nil)\n"
	       "assert(events[4] == nil and events[5].action == 'b')\n"
	       "local n = 0 for _ in pairs(events) do n = n + 1 end assert(n == 2)\n");

	lua_pushinteger(L, 7);   /* a marker the failures must leave alone */
	top = lua_gettop(L);
	assert_int_equal(json_lua_push_batch(L, "{\"events\":[}", 12, 10, &b, err, sizeof err),
			 BATCH_INVALID);
	assert_string_equal(err, "invalid JSON at byte 11: parse error: unallowed token at this point in JSON text");
	assert_int_equal(lua_gettop(L), top);
	assert_int_equal(json_lua_push_batch(L, body, strlen(body), 4, &b, err, sizeof err),
			 BATCH_TOO_MANY);
	assert_int_equal(lua_gettop(L), top);
	assert_int_equal(json_lua_push_batch(L, "[]", 2, 4, &b, err, sizeof err), BATCH_INVALID);
	assert_string_equal(err, "body is not a JSON object");
	assert_int_equal(lua_gettop(L), top);
	assert_int_equal(lua_tointeger(L, -1), 7);
	lua_pop(L, 1);
	batch_free(&b);
}

static void test_round_trips(void **state)
{
	run(*state,
	    "local function rt(s) return json.encode(json.decode(s)) end\n"
	    "assert(math.type(json.decode('9007199254740993')) == 'integer')\n"
	    "assert(json.decode('9007199254740993') == 9007199254740993)\n"
	    "assert(rt('9007199254740993') == '9007199254740993')\n"
	    "assert(json.encode((1 << 53) + 1) == '9007199254740993')\n"
	    "assert(rt('631152000') == '631152000')\n"
	    "assert(json.encode(631152000) == '631152000')\n"
	    "assert(rt('-0.5') == '-0.5')\n"
	    "assert(rt('1.0') == '1.0' and math.type(json.decode('1.0')) == 'float')\n"
	    "assert(json.encode(1.0) == '1.0' and json.encode(-0.0) == '-0.0')\n"
	    "assert(json.encode(0.1) == '0.1' and json.encode(1/3) == '0.3333333333333333')\n"
	    "assert(json.decode(json.encode(1/3)) == 1/3)\n"
	    "assert(json.encode(2^53) == '9007199254740992.0')\n"
	    "assert(json.encode(1e300) == '1e+300')\n"
	    "assert(json.encode(math.maxinteger) == '9223372036854775807')\n"
	    "assert(json.encode(math.mininteger) == '-9223372036854775808')\n"
	    "assert(json.decode('-9223372036854775808') == math.mininteger)\n"
	    "assert(math.type(json.decode('9223372036854775808')) == 'float')\n"
	    "local s = '{\"a\":[1,2.5,\"x\",true,false,null,{}]}'\n"
	    "assert(rt(s) == s)\n"
	    "local t = {n = 12, f = 1.5, list = {1, 'two', {x = json.null}}, yes = true}\n"
	    "assert(deq(json.decode(json.encode(t)), t))\n");
}

static void test_encode_forms(void **state)
{
	run(*state,
	    "assert(json.encode({}) == '{}')\n"
	    "assert(json.encode({1, 2, 3}) == '[1,2,3]')\n"
	    "assert(json.encode({a = {b = {1, 'x', true}}}) == '{\"a\":{\"b\":[1,\"x\",true]}}')\n"
	    "assert(json.encode('a\"b\\\\c\\n\\1/') == '\"a\\\\\"b\\\\\\\\c\\\\n\\\\u0001/\"')\n"
	    "assert(json.encode('ol\\u{e1}') == '\"ol\\u{e1}\"')\n"
	    "assert(json.encode(nil) == 'null' and json.encode(false) == 'false')\n"
	    "assert(json.encode('') == '\"\"')\n"
	    "assert(json.encode({[1] = 'a', [2] = 'b'}) == '[\"a\",\"b\"]')\n"
	    "assert(json.encode({[1.0] = 'a'}) == '[\"a\"]')\n"
	    /* object keys in byte order, whatever order the table was built in */
	    "assert(json.encode({b = 1, a = 2, B = 3, aa = 4, [''] = 5}) == "
	    "'{\"\":5,\"B\":3,\"a\":2,\"aa\":4,\"b\":1}')\n"
	    "local t = {} for i = 40, 1, -1 do t['k' .. i] = {z = i, y = {i}} end\n"
	    "local t2 = {} for i = 1, 40 do t2['k' .. i] = {y = {i}, z = i} end\n"
	    "local s = json.encode(t)\n"
	    "assert(s == json.encode(t2) and s:find('^{\"k1\":{\"y\":%[1%],\"z\":1},\"k10\":'))\n"
	    "assert(json.encode({{b = 1, a = 2}, {d = {c = 1, b = 2}}}) == "
	    "'[{\"a\":2,\"b\":1},{\"d\":{\"b\":2,\"c\":1}}]')\n");
}

static void test_encode_errors(void **state)
{
	lua_State *L = *state;
	char err[128], *out = (char *)1;
	size_t len = 99;
	int top;

	run(L, "fails(function() return json.encode(print) end, 'cannot encode a function')\n"
	       "fails(function() return json.encode({f = print}) end, 'cannot encode a function')\n"
	       "fails(function() return json.encode(0/0) end, 'NaN')\n"
	       "fails(function() return json.encode({x = math.huge}) end, 'infinity')\n"
	       "fails(function() return json.encode(-math.huge) end, 'infinity')\n"
	       "fails(function() return json.encode({1, a = 2}) end, 'non-string keys')\n"
	       "fails(function() return json.encode({[1] = 1, [3] = 3}) end, 'non-string keys')\n"
	       "fails(function() return json.encode({[1.5] = 1}) end, 'non-string keys')\n"
	       "fails(function() return json.encode({[true] = 1}) end, 'non-string keys')\n"
	       "fails(function() return json.encode({[0] = 'z'}) end, 'non-string keys')\n"
	       "fails(function() return json.encode(io.stdout) end, 'cannot encode a userdata')\n"
	       "fails(function() return json.encode(coroutine.create(print)) end, 'cannot encode a thread')\n"
	       "fails(function() return json.encode('bad \\xff') end, 'UTF-8')\n"
	       "local t = {} t.self = t\n"
	       "fails(function() return json.encode(t) end, 'deeper than 64')\n"
	       "local function nest(n) local v = {} for _ = 2, n do v = {v} end return v end\n"
	       "assert(#json.encode(nest(64)) == 64 + 63 + 1)\n"
	       "fails(function() return json.encode(nest(65)) end, 'deeper than 64')\n"
	       "fails(function() return json.encode() end, 'value expected')\n");
	/* The C interface: -1, err set, nothing allocated, stack as it was. */
	run(L, "bad = {1, 2, {print}}");
	lua_getglobal(L, "bad");
	top = lua_gettop(L);
	assert_int_equal(json_lua_encode(L, -1, &out, &len, err, sizeof err), -1);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_string_equal(err, "cannot encode a function");
	assert_int_equal(lua_gettop(L), top);
	lua_pop(L, 1);
	lua_pushinteger(L, 5);
	assert_int_equal(json_lua_encode(L, -1, &out, &len, err, sizeof err), 0);
	assert_string_equal(out, "5");
	assert_int_equal(len, 1);
	free(out);
	lua_pop(L, 1);
}

static void test_decode(void **state)
{
	lua_State *L = *state;
	char err[256], *deep;
	int top, i;

	run(L, "assert(json.decode('12') == 12 and json.decode('\"x\"') == 'x')\n"
	       "assert(json.decode(' true ') == true and json.decode('[]')[1] == nil)\n"
	       "assert(json.decode('{\"a\":{\"b\":[null]}}').a.b[1] == json.null)\n"
	       "fails(function() return json.decode('{') end, 'premature EOF')\n"
	       "fails(function() return json.decode('[1,]') end, 'invalid JSON at byte 3')\n"
	       "fails(function() return json.decode('1 2') end, 'trailing garbage')\n"
	       "fails(function() return json.decode('') end, 'invalid JSON at byte 0')\n"
	       "fails(function() return json.decode('\"\\xff\"') end, 'UTF8')\n"
	       "fails(function() return json.decode('// c\\n1') end, 'comment')\n"
	       "fails(function() return json.decode({}) end, 'string expected')\n"
	       /* yajl alone would give '?' for a lone surrogate half */
	       "fails(function() return json.decode('\"a\\\\ud800\"') end, 'lone UTF-16 surrogate')\n"
	       "fails(function() return json.decode('[\"\\\\udc00\"]') end, 'at byte 2')\n"
	       "assert(json.decode('\"\\\\ud83d\\\\ude00\"') == '\\240\\159\\152\\128')\n"
	       "assert(json.decode('\"\\\\\\\\ud800\"') == '\\\\ud800')\n");
	lua_pushinteger(L, 3);
	top = lua_gettop(L);
	assert_int_equal(json_lua_decode(L, "{\"a\":", 5, err, sizeof err), -1);
	assert_string_equal(err, "invalid JSON at byte 5: parse error: premature EOF");
	assert_int_equal(lua_gettop(L), top);

	deep = malloc(200);
	assert_non_null(deep);
	for (i = 0; i < 64; i++) {
		deep[i] = '[';
		deep[64 + i] = ']';
	}
	assert_int_equal(json_lua_decode(L, deep, 128, err, sizeof err), 0);
	assert_int_equal(lua_gettop(L), top + 1);
	lua_pop(L, 1);
	memmove(deep + 1, deep, 128);
	deep[129] = ']';
	assert_int_equal(json_lua_decode(L, deep, 130, err, sizeof err), -1);
	assert_string_equal(err, "JSON nested deeper than 64 levels at byte 64");
	assert_int_equal(lua_gettop(L), top);
	lua_pop(L, 1);
	free(deep);
}

static void test_null_identity(void **state)
{
	lua_State *L = *state;
	int top = lua_gettop(L);

	json_lua_push_null(L);
	json_lua_push_null(L);
	assert_true(lua_rawequal(L, -1, -2));
	assert_int_equal(lua_type(L, -1), LUA_TLIGHTUSERDATA);
	assert_null(lua_touserdata(L, -1));
	/* lua-cjson's own sentinel is the same value. */
	lua_pushcfunction(L, luaopen_cjson);
	lua_call(L, 0, 1);
	lua_getfield(L, -1, "null");
	assert_true(lua_rawequal(L, -1, -3));
	lua_setglobal(L, "cjson_null");
	lua_setglobal(L, "cjson");
	lua_pop(L, 2);
	assert_int_equal(lua_gettop(L), top);
	run(L, "assert(json.decode('null') == json.null)\n"
	       "assert(json.decode('null') == cjson_null)\n"
	       "assert(cjson.decode('null') == json.null)\n"
	       "assert(json.encode(json.null) == 'null')\n"
	       "assert(json.encode({a = json.null}) == '{\"a\":null}')\n"
	       "assert(json.encode({json.null, 1}) == '[null,1]')\n");
}

static void test_compact_event(void **state)
{
	lua_State *L = *state;
	struct batch b = {0};
	char err[256], *body, *out;
	size_t len, n;

	body = tu_fixture("batch-example.json", &len);
	assert_int_equal(json_lua_push_batch(L, body, len, 10, &b, err, sizeof err), BATCH_OK);
	lua_setglobal(L, "events");
	out = malloc(len);
	assert_non_null(out);
	n = batch_compact(body + b.events[0].start, b.events[0].end - b.events[0].start, out);
	assert_null(memchr(out, '\n', n));
	assert_int_equal(json_lua_decode(L, out, n, err, sizeof err), 0);
	lua_setglobal(L, "compact");
	lua_pushlstring(L, out, n);
	lua_setglobal(L, "compact_text");
	run(L, "assert(deq(compact, events[1]))\n"
	       "assert(not compact_text:find('\": ', 1, true))\n"
	       "assert(compact_text:find('\"action\":\"email_send\"', 1, true))\n");
	free(out);
	free(body);
	batch_free(&b);
}

/* ---- the memory-error path ---- */

struct lim {
	size_t used, limit;
};

static void *lim_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct lim *l = ud;
	void *p;

	if (!ptr)
		osize = 0;
	if (nsize == 0) {
		free(ptr);
		l->used -= osize;
		return NULL;
	}
	if (nsize > osize && l->used + (nsize - osize) > l->limit)
		return NULL;
	p = realloc(ptr, nsize);
	if (!p)
		return NULL;
	l->used = l->used - osize + nsize;
	return p;
}

static void test_memory_errors(void **state)
{
	struct lim lim = { 0, SIZE_MAX };
	struct batch b = {0};
	lua_State *L;
	char err[256], *body;
	size_t len, extra;
	int rc, failures = 0, top;

	(void)state;
	body = tu_fixture("batch-all-actions.json", &len);
	L = lua_newstate(lim_alloc, &lim);
	assert_non_null(L);
	luaL_openlibs(L);
	lua_pushinteger(L, 42);
	top = lua_gettop(L);
	/* json.null is not cached yet: the first failures hit luaopen_cjson. */
	for (extra = 0;; extra += 256) {
		lua_gc(L, LUA_GCCOLLECT);
		lim.limit = lim.used + extra;
		rc = json_lua_push_batch(L, body, len, 100, &b, err, sizeof err);
		lim.limit = SIZE_MAX;
		if (rc == BATCH_OK)
			break;
		assert_int_equal(rc, BATCH_NOMEM);
		assert_string_equal(err, "out of memory");
		assert_int_equal(lua_gettop(L), top);
		assert_int_equal(b.count, 0);
		assert_null(b.parser);
		failures++;
		assert_true(extra < 4 * 1024 * 1024);
	}
	assert_true(failures > 10);
	assert_int_equal(lua_gettop(L), top + 1);
	assert_int_equal(b.count, 38);
	lua_pop(L, 1);
	assert_int_equal(lua_tointeger(L, -1), 42);

	/* The state still works, and so do encode/decode under pressure. */
	install_json(L);
	lua_pushlstring(L, body, len);
	lua_setglobal(L, "body");
	run(L, "big = json.decode(body)");
	failures = 0;
	for (extra = 0;; extra += 1024) {
		lua_gc(L, LUA_GCCOLLECT);
		lim.limit = lim.used + extra;
		rc = luaL_loadstring(L, "local t = json.decode(body); return json.encode(t)");
		if (rc == LUA_OK)
			rc = lua_pcall(L, 0, 1, 0);
		lim.limit = SIZE_MAX;
		if (rc == LUA_OK)
			break;
		/* Errors caught inside json.* come back as "... out of memory". */
		if (rc != LUA_ERRMEM && !strstr(lua_tostring(L, -1), "memory"))
			fail_msg("unexpected error %d: %s", rc, lua_tostring(L, -1));
		lua_pop(L, 1);
		assert_int_equal(lua_gettop(L), top);
		failures++;
		assert_true(extra < 8 * 1024 * 1024);
	}
	assert_true(failures > 10);
	lua_setglobal(L, "again");
	run(L, "assert(deq(json.decode(again), big))\n"
	       "assert(#big.events == 38 and math.type(big.events[2].action_date) == 'integer')\n");

	/* The C decode reports the failure and leaves the stack alone. */
	lua_gc(L, LUA_GCCOLLECT);
	lim.limit = lim.used + 512;
	assert_int_equal(json_lua_decode(L, body, len, err, sizeof err), -1);
	lim.limit = SIZE_MAX;
	assert_string_equal(err, "out of memory");
	assert_int_equal(lua_gettop(L), top);
	assert_int_equal(json_lua_push_batch(L, body, len, 100, &b, err, sizeof err), BATCH_OK);
	lua_pop(L, 2);
	lua_close(L);
	free(body);
	batch_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fixture_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_numbers_and_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rejected_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encode_forms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_encode_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact_event, setup, teardown),
		cmocka_unit_test(test_memory_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
