/*
 * json_lua_lazy_meta.c — a batch's metatable (json_lua_lazy.h): fields
 * built from the tape when a rule reads them, and the whole event when
 * something needs it.
 *
 * Design: the metatable's C closures share three upvalues: the tape, a
 * table proxy → event index, and a table proxy → {key → built container}.
 * A proxy stays empty (raw) until it is materialised, so every assignment
 * reaches __newindex, and a container built for __index is handed back
 * again when the whole event is built (the same table, as a rule that kept
 * it expects).
 *
 * Threads: see json_lua_lazy.h.
 */
#include "json_lua_lazy.h"

#include <string.h>

#include <lauxlib.h>

#include "batch.h"
#include "json_lua.h"
#include "json_lua_lazy_internal.h"

/* Registry keys (by address): the marker under which a batch metatable
 * holds its materialise function, and the original next (for __pairs). */
static const char jz_lazy_key = 'z';
static const char jz_next_key = 'x';

struct jz_view {
	const unsigned *first;
	const struct jz_tok *toks;
	const char *strs;
	size_t nevents;
};

static void json_lua_lazy_meta_view(const struct jz_tape *t, struct jz_view *v)
{
	const char *base = (const char *)t;

	v->nevents = t->nevents;
	v->first = (const unsigned *)(base + sizeof *t);
	v->toks = (const struct jz_tok *)(base + json_lua_lazy_toks_offset(t->nevents));
	v->strs = (const char *)(v->toks + t->ntok);
}

/* Pushes the value at token t (a whole subtree); returns the token after it. */
static unsigned json_lua_lazy_meta_build(lua_State *L, const struct jz_view *v, unsigned t)
{
	const struct jz_tok *k = &v->toks[t];
	unsigned n;

	switch (k->kind) {
	case JZ_NULL:
		json_lua_push_null(L);
		return t + 1;
	case JZ_FALSE:
	case JZ_TRUE:
		lua_pushboolean(L, k->kind == JZ_TRUE);
		return t + 1;
	case JZ_INT:
		lua_pushinteger(L, (lua_Integer)k->v.i);
		return t + 1;
	case JZ_NUM:
		lua_pushnumber(L, (lua_Number)k->v.d);
		return t + 1;
	case JZ_STR:
	case JZ_KEY:
		lua_pushlstring(L, v->strs + k->v.off, k->len);
		return t + 1;
	case JZ_ARR:
		lua_createtable(L, (int)k->len, 0);
		t++;
		for (n = 1; n <= k->len; n++) {
			t = json_lua_lazy_meta_build(L, v, t);
			lua_rawseti(L, -2, n);
		}
		return t;
	default:   /* JZ_MAP */
		lua_createtable(L, 0, (int)k->len);
		t++;
		for (n = 0; n < k->len; n++) {
			lua_pushlstring(L, v->strs + v->toks[t].v.off, v->toks[t].len);
			t = json_lua_lazy_meta_build(L, v, t + 1);
			lua_rawset(L, -3);
		}
		return t;
	}
}

static void json_lua_lazy_meta_room(lua_State *L)
{
	if (!lua_checkstack(L, 2 * (BATCH_MAX_DEPTH + 2) + 8))
		luaL_error(L, "not enough memory");
}

/* Upvalues of every batch closure. */
#define JZ_UV_TAPE lua_upvalueindex(1)
#define JZ_UV_INDEX lua_upvalueindex(2)   /* proxy → event index (0-based) */
#define JZ_UV_BUILT lua_upvalueindex(3)   /* proxy → { key → container built by __index } */

/* The event index of the proxy at idx, or -1 when it is no (longer a) proxy. */
static lua_Integer json_lua_lazy_meta_event_of(lua_State *L, int idx)
{
	lua_Integer i;

	lua_pushvalue(L, idx);
	if (lua_rawget(L, JZ_UV_INDEX) != LUA_TNUMBER) {
		lua_pop(L, 1);
		return -1;
	}
	i = lua_tointeger(L, -1);
	lua_pop(L, 1);
	return i;
}

/* __index(proxy, key) */
static int json_lua_lazy_meta_index(lua_State *L)
{
	struct jz_view v;
	lua_Integer i = json_lua_lazy_meta_event_of(L, 1);
	const char *key;
	size_t klen;
	unsigned found;

	if (i < 0 || lua_type(L, 2) != LUA_TSTRING)
		return 0;
	json_lua_lazy_meta_view(lua_touserdata(L, JZ_UV_TAPE), &v);
	key = lua_tolstring(L, 2, &klen);
	found = json_lua_lazy_find(v.toks, v.strs, v.first[i], key, klen);
	if (found == JZ_NONE)
		return 0;
	json_lua_lazy_meta_room(L);
	if (v.toks[found].kind != JZ_MAP && v.toks[found].kind != JZ_ARR) {
		json_lua_lazy_meta_build(L, &v, found);
		return 1;
	}
	/* a container: built once, the same table for every read */
	lua_pushvalue(L, 1);
	if (lua_rawget(L, JZ_UV_BUILT) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_createtable(L, 0, 2);
		lua_pushvalue(L, 1);
		lua_pushvalue(L, -2);
		lua_rawset(L, JZ_UV_BUILT);
	} else {
		lua_pushvalue(L, 2);
		if (lua_rawget(L, -2) == LUA_TTABLE)
			return 1;
		lua_pop(L, 1);
	}
	json_lua_lazy_meta_build(L, &v, found);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, -4);
	return 1;
}

/* materialise(proxy): the proxy becomes the event's real table. */
static int json_lua_lazy_meta_materialize(lua_State *L)
{
	struct jz_view v;
	lua_Integer i = json_lua_lazy_meta_event_of(L, 1);
	unsigned t, n;
	int built;

	if (i < 0)
		return 0;
	json_lua_lazy_meta_view(lua_touserdata(L, JZ_UV_TAPE), &v);
	json_lua_lazy_meta_room(L);
	lua_settop(L, 1);
	lua_pushvalue(L, 1);
	if (lua_rawget(L, JZ_UV_BUILT) != LUA_TTABLE) {
		lua_pop(L, 1);
		lua_pushnil(L);
	}
	built = 2;
	t = v.first[i];
	n = v.toks[t].len;
	for (t++; n > 0; n--) {
		lua_pushlstring(L, v.strs + v.toks[t].v.off, v.toks[t].len);
		if (lua_istable(L, built)) {
			lua_pushvalue(L, -1);
			if (lua_rawget(L, built) != LUA_TNIL) {
				t = json_lua_lazy_skip(v.toks, t + 1);
				lua_rawset(L, 1);
				continue;
			}
			lua_pop(L, 1);
		}
		t = json_lua_lazy_meta_build(L, &v, t + 1);
		lua_rawset(L, 1);
	}
	lua_pushnil(L);
	lua_setmetatable(L, 1);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	lua_rawset(L, JZ_UV_INDEX);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	lua_rawset(L, JZ_UV_BUILT);
	return 0;
}

/* __newindex(proxy, key, value) */
static int json_lua_lazy_meta_newindex(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(4));   /* materialise */
	lua_pushvalue(L, 1);
	lua_call(L, 1, 0);
	lua_rawset(L, 1);
	return 0;
}

/* __pairs(proxy): next, the real table, nil */
static int json_lua_lazy_meta_pairs(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(4));
	lua_pushvalue(L, 1);
	lua_call(L, 1, 0);
	lua_rawgetp(L, LUA_REGISTRYINDEX, &jz_next_key);
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	return 3;
}

int json_lua_lazy_materialize(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
		return 0;
	if (lua_rawgetp(L, -1, &jz_lazy_key) != LUA_TFUNCTION) {
		lua_pop(L, 2);
		return 0;
	}
	lua_remove(L, -2);
	lua_pushvalue(L, idx);
	lua_call(L, 1, 0);
	return 1;
}

static int json_lua_lazy_meta_materialize_arg(lua_State *L)
{
	json_lua_lazy_materialize(L, 1);
	return 0;
}

int json_lua_lazy_materialize_protected(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	if (lua_type(L, idx) != LUA_TTABLE)
		return 0;
	if (!lua_checkstack(L, 3))
		return -1;
	lua_pushcfunction(L, json_lua_lazy_meta_materialize_arg);
	lua_pushvalue(L, idx);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* A wrapped global (upvalue 1): its first argument is materialised first. */
static int json_lua_lazy_meta_guarded(lua_State *L)
{
	int n = lua_gettop(L);

	if (n > 0)
		json_lua_lazy_materialize(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

void json_lua_lazy_guard(lua_State *L)
{
	static const char *const names[] = {
		"next", "rawget", "rawset", "rawlen", "getmetatable", "setmetatable", NULL,
	};

	lua_getglobal(L, "next");
	lua_rawsetp(L, LUA_REGISTRYINDEX, &jz_next_key);
	for (int i = 0; names[i]; i++) {
		if (lua_getglobal(L, names[i]) != LUA_TFUNCTION) {
			lua_pop(L, 1);
			continue;
		}
		lua_pushcclosure(L, json_lua_lazy_meta_guarded, 1);
		lua_setglobal(L, names[i]);
	}
}


void json_lua_lazy_meta_push(lua_State *L, int tape, int index, int built)
{
	static const char *const names[] = { "__index", "__newindex", "__pairs" };
	static const lua_CFunction fns[] = {
		json_lua_lazy_meta_index, json_lua_lazy_meta_newindex, json_lua_lazy_meta_pairs,
	};
	int mt, mat;

	tape = lua_absindex(L, tape);
	index = lua_absindex(L, index);
	built = lua_absindex(L, built);
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &jz_next_key) == LUA_TNIL) {
		lua_getglobal(L, "next");   /* json_lua_lazy_guard was not run (tests) */
		lua_rawsetp(L, LUA_REGISTRYINDEX, &jz_next_key);
	}
	lua_pop(L, 1);
	lua_createtable(L, 0, 4);
	mt = lua_gettop(L);
	lua_pushvalue(L, tape);
	lua_pushvalue(L, index);
	lua_pushvalue(L, built);
	lua_pushcclosure(L, json_lua_lazy_meta_materialize, 3);
	mat = lua_gettop(L);
	lua_pushvalue(L, mat);
	lua_rawsetp(L, mt, &jz_lazy_key);
	for (int k = 0; k < 3; k++) {
		lua_pushvalue(L, tape);
		lua_pushvalue(L, index);
		lua_pushvalue(L, built);
		lua_pushvalue(L, mat);
		lua_pushcclosure(L, fns[k], 4);
		lua_setfield(L, mt, names[k]);
	}
	lua_pop(L, 1);   /* the materialise closure: the metatable is on top */
}
