/*
 * fuzz_json_lua_lazy.c — libFuzzer target: the lazy event tables
 * (json_lua_push_batch_lazy) against the eager builder (json_lua_push_batch).
 *
 * Purpose: for any byte string both builders agree on the outcome (same
 * result code, same routable events), and for every routable event:
 * - each field read through __index equals the eager table's field (scalars
 *   by value and subtype, containers by content), a missing or non-string
 *   key reads nil, and a container read twice is the same table;
 * - once the whole event is needed (json_lua_lazy_materialize, Lua's pairs,
 *   the sandbox's next, json_lua_encode or an assignment, chosen by event
 *   index so one input exercises several) the proxy has become a plain
 *   table equal to the eager event, with no metatable, and the containers
 *   handed out before are the ones in it.
 * A broken invariant calls abort(), which libFuzzer reports as a crash.
 *
 * Design: one lua_State with the base library and the lazy guard
 * (json_lua_lazy_guard, as the sandbox installs it), one scratch reused
 * across inputs as a worker's would be; a GC step every FUZZ_GC_EVERY
 * inputs so proxies and tapes of earlier inputs are collected.
 *
 * Threads: libFuzzer runs one input at a time; the state is static.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "batch.h"
#include "fuzz_equal.h"
#include "json_lua.h"
#include "json_lua_lazy.h"

#define FUZZ_MAX_EVENTS 100000
#define FUZZ_GC_EVERY 64
#define FUZZ_FULL_GC_EVERY 4096

enum { FZ_WHOLE_C, FZ_WHOLE_PAIRS, FZ_WHOLE_NEXT, FZ_WHOLE_ENCODE, FZ_WHOLE_ASSIGN, FZ_WHOLE_N };

/* Protected: pairs(proxy) copied into a new table, returned. */
static int fz_l_pairs_copy(lua_State *L)
{
	lua_newtable(L);                          /* 2: the copy */
	lua_getglobal(L, "pairs");
	lua_pushvalue(L, 1);
	lua_call(L, 1, 3);                        /* 3 next, 4 table, 5 nil */
	for (;;) {
		lua_pushvalue(L, 3);
		lua_pushvalue(L, 4);
		lua_pushvalue(L, 5);
		lua_call(L, 2, 2);                /* key, value */
		if (lua_isnil(L, -2)) {
			lua_pop(L, 2);
			break;
		}
		lua_pushvalue(L, -2);
		lua_replace(L, 5);                /* the control variable */
		lua_rawset(L, 2);
	}
	lua_settop(L, 2);
	return 1;
}

/* Protected: the sandbox's next(proxy) (the guard materialises first). */
static int fz_l_next(lua_State *L)
{
	lua_getglobal(L, "next");
	lua_pushvalue(L, 1);
	lua_call(L, 1, 0);
	return 0;
}

/* Protected: proxy.k = v through __newindex, then the key removed again raw. */
static int fz_l_assign(lua_State *L)
{
	lua_pushinteger(L, 7);
	lua_setfield(L, 1, "\001fuzz");           /* not a key JSON text can hold raw */
	FZ_CHECK(lua_getmetatable(L, 1) == 0);
	lua_pushnil(L);
	lua_setfield(L, 1, "\001fuzz");
	return 0;
}

static int fz_call(lua_State *L, lua_CFunction f, int proxy, int nret)
{
	lua_pushcfunction(L, f);
	lua_pushvalue(L, proxy);
	return lua_pcall(L, 1, nret, 0);
}

/* Turns the proxy at p into its table by one of the ways a rule can. */
static void fz_whole(lua_State *L, int p, int e, size_t i)
{
	char err[256];
	char *text = NULL;
	size_t n;
	int top = lua_gettop(L);

	switch (i % FZ_WHOLE_N) {
	case FZ_WHOLE_C:
		FZ_CHECK(json_lua_lazy_materialize_protected(L, p) == 0);
		break;
	case FZ_WHOLE_PAIRS:
		FZ_CHECK(fz_call(L, fz_l_pairs_copy, p, 1) == LUA_OK);
		FZ_CHECK(fuzz_equal(L, -1, e, 0));  /* what pairs saw is the whole event */
		break;
	case FZ_WHOLE_NEXT:
		FZ_CHECK(fz_call(L, fz_l_next, p, 0) == LUA_OK);
		break;
	case FZ_WHOLE_ENCODE:
		if (json_lua_encode(L, p, &text, &n, err, sizeof err) == 0) {
			FZ_CHECK(json_lua_decode(L, text, n, err, sizeof err) == 0);
			FZ_CHECK(fuzz_equal(L, -1, e, 0));
		} else {   /* 1e999 is inf: the eager event fails the same way */
			FZ_CHECK(strcmp(err, "cannot encode NaN or infinity") == 0);
			FZ_CHECK(json_lua_encode(L, e, &text, &n, err, sizeof err) != 0);
		}
		free(text);
		break;
	default:
		FZ_CHECK(fz_call(L, fz_l_assign, p, 0) == LUA_OK);
		break;
	}
	lua_settop(L, top);
}

/* One event: field reads through __index, then the whole of it. */
static void fz_event(lua_State *L, int p, int e, size_t i)
{
	int top = lua_gettop(L);
	int kept = top + 1;       /* key → container handed out by __index */

	FZ_CHECK(lua_checkstack(L, 8));
	lua_newtable(L);
	lua_pushnil(L);
	while (lua_next(L, e) != 0) {    /* eager: key at -2, value at -1 */
		lua_pushvalue(L, -2);
		lua_gettable(L, p);      /* __index */
		FZ_CHECK(fuzz_equal(L, -1, -2, 0));
		if (lua_istable(L, -1)) {
			lua_pushvalue(L, -3);
			lua_gettable(L, p);   /* again: the same table */
			FZ_CHECK(lua_rawequal(L, -1, -2));
			lua_pop(L, 1);
			lua_pushvalue(L, -3);
			lua_insert(L, -2);
			lua_rawset(L, kept);
		} else {
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	FZ_CHECK(lua_getfield(L, p, "\001absent") == LUA_TNIL);
	FZ_CHECK(lua_geti(L, p, 1) == LUA_TNIL);
	lua_pop(L, 2);
	FZ_CHECK(lua_rawlen(L, p) == 0);   /* a proxy is empty raw */

	fz_whole(L, p, e, i);
	FZ_CHECK(lua_getmetatable(L, p) == 0);
	FZ_CHECK(fuzz_equal(L, p, e, 0));
	lua_pushnil(L);
	while (lua_next(L, kept) != 0) {
		lua_pushvalue(L, -2);
		lua_rawget(L, p);
		FZ_CHECK(lua_rawequal(L, -1, -2));   /* the container it handed out */
		lua_pop(L, 2);
	}
	lua_settop(L, top);
}

static void fz_batch(lua_State *L, struct json_lua_lazy_scratch *s, const char *body,
		     size_t len)
{
	static struct batch be, bz;
	int top = lua_gettop(L);
	char err[256], errz[256];
	size_t i, table_bytes;
	int rc, rcz, e, z;

	rc = json_lua_push_batch(L, body, len, FUZZ_MAX_EVENTS, &be, err, sizeof err);
	rcz = json_lua_push_batch_lazy(L, body, len, FUZZ_MAX_EVENTS, &bz, s, &table_bytes, errz,
				       sizeof errz);
	FZ_CHECK(rc == rcz);
	if (rc != BATCH_OK) {
		FZ_CHECK(strcmp(err, errz) == 0);
		FZ_CHECK(lua_gettop(L) == top);
		return;
	}
	FZ_CHECK(lua_gettop(L) == top + 2);
	e = top + 1;
	z = top + 2;
	FZ_CHECK(be.count == bz.count);
	for (i = 0; i < be.count; i++) {
		int te = lua_rawgeti(L, e, (lua_Integer)i + 1);
		int tz = lua_rawgeti(L, z, (lua_Integer)i + 1);

		FZ_CHECK(te == tz);
		FZ_CHECK((be.events[i].reject == NULL) == (bz.events[i].reject == NULL));
		FZ_CHECK(be.events[i].start == bz.events[i].start);
		FZ_CHECK(be.events[i].end == bz.events[i].end);
		if (te == LUA_TTABLE)
			fz_event(L, lua_gettop(L), lua_gettop(L) - 1, i);
		lua_pop(L, 2);
	}
	lua_settop(L, top);
}

/* Protected set-up: the base library and the guard, as the sandbox has them. */
static int fz_l_setup(lua_State *L)
{
	luaL_requiref(L, "_G", luaopen_base, 1);
	lua_pop(L, 1);
	json_lua_lazy_guard(L);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lua_State *L;
	static struct json_lua_lazy_scratch scratch;
	static unsigned long runs;
	int top;

	if (!L) {
		L = luaL_newstate();
		FZ_CHECK(L != NULL);
		lua_pushcfunction(L, fz_l_setup);
		FZ_CHECK(lua_pcall(L, 0, 0, 0) == LUA_OK);
	}
	top = lua_gettop(L);
	fz_batch(L, &scratch, (const char *)data, size);
	FZ_CHECK(lua_gettop(L) == top);
	if (++runs % FUZZ_FULL_GC_EVERY == 0)
		lua_gc(L, LUA_GCCOLLECT, 0);
	else if (runs % FUZZ_GC_EVERY == 0)
		lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
