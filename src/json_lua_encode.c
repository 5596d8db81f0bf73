/*
 * json_lua_encode.c — Lua values → compact JSON with exact numbers
 * (json_lua.h: json_lua_encode, json_lua_l_encode).
 *
 * The walk uses raw access only (no metamethods, nothing that allocates in
 * Lua), so json_lua_encode never raises; yajl_gen writes the text, with
 * UTF-8 validation on. Integers are written as integers; floats as the
 * shortest of %.15g..%.17g that reads back exactly, always with a '.' or an
 * exponent so they decode as floats again (1.0 → "1.0", not "1").
 * A table is an array when its keys are exactly 1..n (n > 0), otherwise an
 * object, which must have string keys only; {} is an object. Depth is
 * capped at BATCH_MAX_DEPTH, which also stops cycles.
 *
 * Threads: a lua_State is used by one thread at a time; no globals.
 */
#include "json_lua.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yajl/yajl_gen.h>

#include "batch.h"

struct jl_encode {
	lua_State *L;
	yajl_gen g;
	char *err;
	size_t errlen;
};

static int je_fail(struct jl_encode *e, const char *msg)
{
	if (e->err && e->errlen > 0)
		snprintf(e->err, e->errlen, "%s", msg);
	return -1;
}

static int je_check(struct jl_encode *e, yajl_gen_status st)
{
	if (st == yajl_gen_status_ok)
		return 0;
	if (st == yajl_gen_invalid_string)
		return je_fail(e, "string is not valid UTF-8");
	return je_fail(e, "JSON generation failed");
}

static int je_number(struct jl_encode *e, int idx)
{
	char buf[40];
	double d;
	int prec, n = 0;

	if (lua_isinteger(e->L, idx))
		return je_check(e, yajl_gen_integer(e->g, (long long)lua_tointeger(e->L, idx)));
	d = (double)lua_tonumber(e->L, idx);
	if (!isfinite(d))
		return je_fail(e, "cannot encode NaN or infinity");
	/* The shortest text that reads back as the same double. */
	for (prec = 15; prec <= 17; prec++) {
		n = snprintf(buf, sizeof buf - 2, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (!strpbrk(buf, ".eE")) {   /* 1.0 stays a float: "1.0", not "1" */
		buf[n++] = '.';
		buf[n++] = '0';
		buf[n] = '\0';
	}
	return je_check(e, yajl_gen_number(e->g, buf, (size_t)n));
}

static int je_value(struct jl_encode *e, int idx, int depth);

/* Keys exactly 1..n (n > 0) → array; string keys → object; else an error. */
static int je_table(struct jl_encode *e, int idx, int depth)
{
	lua_State *L = e->L;
	lua_Integer count = 0, max = 0, i;
	int sequence = 1, strings = 1;
	size_t klen;
	const char *k;

	if (depth > BATCH_MAX_DEPTH)
		return je_fail(e, "table nested deeper than 64 levels (or a cycle)");
	if (!lua_checkstack(L, 4))
		return je_fail(e, "out of memory");
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1) {
			if (lua_tointeger(L, -2) > max)
				max = lua_tointeger(L, -2);
			strings = 0;
		} else {
			sequence = 0;
			if (lua_type(L, -2) != LUA_TSTRING)
				strings = 0;
		}
		count++;
		lua_pop(L, 1);
	}
	if (count > 0 && sequence && max == count) {
		if (je_check(e, yajl_gen_array_open(e->g)) != 0)
			return -1;
		for (i = 1; i <= count; i++) {
			lua_rawgeti(L, idx, i);
			if (je_value(e, lua_gettop(L), depth) != 0)
				return -1;
			lua_pop(L, 1);
		}
		return je_check(e, yajl_gen_array_close(e->g));
	}
	if (!strings)
		return je_fail(e, "table has non-string keys");
	if (je_check(e, yajl_gen_map_open(e->g)) != 0)
		return -1;
	lua_pushnil(L);
	while (lua_next(L, idx) != 0) {
		k = lua_tolstring(L, -2, &klen);   /* a string: no conversion */
		if (je_check(e, yajl_gen_string(e->g, (const unsigned char *)k, klen)) != 0 ||
		    je_value(e, lua_gettop(L), depth) != 0)
			return -1;
		lua_pop(L, 1);
	}
	return je_check(e, yajl_gen_map_close(e->g));
}

/* On error the stack may be left higher; json_lua_encode restores it. */
static int je_value(struct jl_encode *e, int idx, int depth)
{
	lua_State *L = e->L;
	const char *s;
	size_t len;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return je_check(e, yajl_gen_null(e->g));
	case LUA_TBOOLEAN:
		return je_check(e, yajl_gen_bool(e->g, lua_toboolean(L, idx)));
	case LUA_TNUMBER:
		return je_number(e, idx);
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		return je_check(e, yajl_gen_string(e->g, (const unsigned char *)s, len));
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL)   /* json.null */
			return je_check(e, yajl_gen_null(e->g));
		return je_fail(e, "cannot encode a userdata");
	case LUA_TTABLE:
		return je_table(e, idx, depth + 1);
	default:
		if (e->err && e->errlen > 0)
			snprintf(e->err, e->errlen, "cannot encode a %s",
				 lua_typename(L, lua_type(L, idx)));
		return -1;
	}
}

int json_lua_encode(lua_State *L, int idx, char **out, size_t *out_len, char *err, size_t errlen)
{
	struct jl_encode e = { .L = L, .g = NULL, .err = err, .errlen = errlen };
	int top = lua_gettop(L);
	const unsigned char *buf;
	size_t len;
	int rc = -1;

	*out = NULL;
	*out_len = 0;
	idx = lua_absindex(L, idx);
	e.g = yajl_gen_alloc(NULL);
	if (!e.g) {
		je_fail(&e, "out of memory");
		goto out;
	}
	if (!yajl_gen_config(e.g, yajl_gen_beautify, 0) ||
	    !yajl_gen_config(e.g, yajl_gen_validate_utf8, 1)) {
		je_fail(&e, "cannot configure the JSON generator");
		goto out;
	}
	if (je_value(&e, idx, 0) != 0)
		goto out;
	if (je_check(&e, yajl_gen_get_buf(e.g, &buf, &len)) != 0)
		goto out;
	*out = malloc(len + 1);
	if (!*out) {
		je_fail(&e, "out of memory");
		goto out;
	}
	memcpy(*out, buf, len);
	(*out)[len] = '\0';
	*out_len = len;
	rc = 0;
out:
	lua_settop(L, top);
	if (e.g)
		yajl_gen_free(e.g);
	return rc;
}

struct jl_push_args {
	const char *s;
	size_t len;
};

static int jl_push_string_protected(lua_State *L)
{
	struct jl_push_args *a = lua_touserdata(L, 1);

	lua_pushlstring(L, a->s, a->len);
	return 1;
}

int json_lua_l_encode(lua_State *L)
{
	struct jl_push_args a;
	char err[160];
	char *buf = NULL;
	size_t len = 0;
	int status;

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	if (json_lua_encode(L, 1, &buf, &len, err, sizeof err) != 0)
		return luaL_error(L, "json.encode: %s", err);
	/* Push under pcall so buf is freed even if the copy fails. */
	a.s = buf;
	a.len = len;
	lua_pushcfunction(L, jl_push_string_protected);
	lua_pushlightuserdata(L, &a);
	status = lua_pcall(L, 1, 1, 0);
	free(buf);
	if (status != LUA_OK)
		return lua_error(L);
	return 1;
}
