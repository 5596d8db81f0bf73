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
 * object, which must have string keys only; {} is an object. An object's
 * keys are written in byte order (not Lua's traversal order, which
 * changes from one state to the next), everywhere a table is encoded:
 * json.encode, forward bodies, write lines. Depth is capped at
 * BATCH_MAX_DEPTH, which also stops cycles.
 *
 * Memory: everything the encoder allocates goes through the state's own
 * allocator (lua_getallocf), so a state with a memory limit bounds the
 * JSON text too. yajl does not check most of its allocations, so it is
 * never given a chance to fail: the text is collected by our print callback
 * in a buffer we grow ourselves (a refusal only sets a flag, checked after
 * each yajl_gen call), and of yajl's own two allocations the unchecked one
 * (the default output buffer's header, freed again when the callback is
 * installed) falls back to a spare area inside struct jl_encode.
 *
 * Threads: a lua_State is used by one thread at a time; no globals.
 */
#include "json_lua.h"
#include "json_lua_lazy.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yajl/yajl_gen.h>

#include "batch.h"

/* Size prefix of each block yajl gets: lua_Alloc needs the old size back. */
#define JE_HDR sizeof(max_align_t)

struct jl_encode {
	lua_State *L;
	yajl_gen g;
	char *err;
	size_t errlen;
	lua_Alloc alloc;
	void *ud;
	char *buf;                 /* the JSON text so far, through alloc */
	size_t len, cap;
	int nomem;                 /* an allocation was refused */
	int spare_used;
	union {
		max_align_t align;
		unsigned char bytes[128];
	} spare;
};

static int json_lua_encode_fail(struct jl_encode *e, const char *msg)
{
	if (e->err && e->errlen > 0)
		snprintf(e->err, e->errlen, "%s", msg);
	return -1;
}

/* yajl_alloc_funcs: blocks carry their size in front (JE_HDR bytes). */
static void *json_lua_encode_malloc(void *ctx, size_t sz)
{
	struct jl_encode *e = ctx;
	unsigned char *p = sz < SIZE_MAX - JE_HDR ? e->alloc(e->ud, NULL, 0, sz + JE_HDR) : NULL;

	if (!p) {
		e->nomem = 1;
		/* yajl_buf_alloc writes to what it gets without a check */
		if (sz <= sizeof e->spare && !e->spare_used) {
			e->spare_used = 1;
			return e->spare.bytes;
		}
		return NULL;   /* only the generator itself, which yajl checks */
	}
	memcpy(p, &sz, sizeof sz);
	return p + JE_HDR;
}

static void json_lua_encode_free(void *ctx, void *ptr)
{
	struct jl_encode *e = ctx;
	unsigned char *p = ptr;
	size_t sz;

	if (!ptr)
		return;
	if (ptr == e->spare.bytes) {
		e->spare_used = 0;
		return;
	}
	memcpy(&sz, p - JE_HDR, sizeof sz);
	e->alloc(e->ud, p - JE_HDR, sz + JE_HDR, 0);
}

/* Only yajl's own output buffer reallocates, and the print callback replaces it. */
static void *json_lua_encode_realloc(void *ctx, void *ptr, size_t sz)
{
	struct jl_encode *e = ctx;
	unsigned char *p = ptr, *q;
	size_t old;

	if (!ptr)
		return json_lua_encode_malloc(ctx, sz);
	if (ptr == e->spare.bytes || sz >= SIZE_MAX - JE_HDR) {
		e->nomem = 1;
		return NULL;
	}
	memcpy(&old, p - JE_HDR, sizeof old);
	q = e->alloc(e->ud, p - JE_HDR, old + JE_HDR, sz + JE_HDR);
	if (!q) {
		e->nomem = 1;
		return NULL;
	}
	memcpy(q, &sz, sizeof sz);
	return q + JE_HDR;
}

/* yajl's print callback: appends to e->buf; a refused growth sets e->nomem. */
static void json_lua_encode_print(void *ctx, const char *s, size_t n)
{
	struct jl_encode *e = ctx;
	size_t cap;
	char *p;

	if (e->nomem)
		return;
	if (n >= e->cap - e->len || !e->buf) {
		cap = e->cap ? e->cap : 256;
		while (cap - e->len <= n) {
			if (cap > SIZE_MAX / 2) {
				e->nomem = 1;
				return;
			}
			cap *= 2;
		}
		p = e->alloc(e->ud, e->buf, e->buf ? e->cap : 0, cap);
		if (!p) {
			e->nomem = 1;
			return;
		}
		e->buf = p;
		e->cap = cap;
	}
	memcpy(e->buf + e->len, s, n);
	e->len += n;
}

static int json_lua_encode_check(struct jl_encode *e, yajl_gen_status st)
{
	if (e->nomem)
		return json_lua_encode_fail(e, "not enough memory");
	if (st == yajl_gen_status_ok)
		return 0;
	if (st == yajl_gen_invalid_string)
		return json_lua_encode_fail(e, "string is not valid UTF-8");
	return json_lua_encode_fail(e, "JSON generation failed");
}

static int json_lua_encode_number(struct jl_encode *e, int idx)
{
	char buf[40];
	double d;
	int prec, n = 0;

	if (lua_isinteger(e->L, idx))
		return json_lua_encode_check(e, yajl_gen_integer(e->g, (long long)lua_tointeger(e->L, idx)));
	d = (double)lua_tonumber(e->L, idx);
	if (!isfinite(d))
		return json_lua_encode_fail(e, "cannot encode NaN or infinity");
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
	return json_lua_encode_check(e, yajl_gen_number(e->g, buf, (size_t)n));
}

static int json_lua_encode_value(struct jl_encode *e, int idx, int depth);

struct je_key {
	const char *k;   /* anchored by the table, which the walk never changes */
	size_t len;
	int slot;        /* stack index of the value */
};

/* Byte order, a prefix first: what sort(1) does with LC_ALL=C. */
static int json_lua_encode_key_cmp(const void *a, const void *b)
{
	const struct je_key *x = a, *y = b;
	int c = memcmp(x->k, y->k, x->len < y->len ? x->len : y->len);

	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/*
 * An object with its keys in byte order, so the same table always gives
 * the same text (golden files of `egoi-router test`, a signature computed
 * over json.encode's output, forwards merged by equal bodies). Each pair
 * is kept on the stack (lua_checkstack refuses instead of raising) and the
 * key list is allocated through the state's allocator like the text.
 */
static int json_lua_encode_object(struct jl_encode *e, int idx, size_t count, int depth)
{
	lua_State *L = e->L;
	struct je_key *keys = NULL;
	size_t n = 0, bytes = 0;
	int top = lua_gettop(L), rc = -1;

	if (count == 0)   /* {}: nothing to sort (and a 0-byte request would free) */
		return json_lua_encode_check(e, yajl_gen_map_open(e->g)) ||
		       json_lua_encode_check(e, yajl_gen_map_close(e->g)) ? -1 : 0;
	if (count > SIZE_MAX / sizeof *keys ||
	    !(keys = e->alloc(e->ud, NULL, 0, bytes = count * sizeof *keys))) {
		e->nomem = 1;
		return json_lua_encode_fail(e, "not enough memory");
	}
	lua_pushnil(L);
	while (n < count && lua_next(L, idx) != 0) {
		keys[n].k = lua_tolstring(L, -2, &keys[n].len);   /* a string: no conversion */
		keys[n].slot = lua_gettop(L);
		n++;
		/* k v k: the copy is the next call's key, the pair stays below it */
		if (!lua_checkstack(L, 4)) {
			json_lua_encode_fail(e, "object too large to encode");
			goto out;
		}
		lua_pushvalue(L, -2);
	}
	if (n == count)
		lua_pop(L, 1);   /* the last key copy (lua_next has not run past it) */
	qsort(keys, n, sizeof *keys, json_lua_encode_key_cmp);
	if (json_lua_encode_check(e, yajl_gen_map_open(e->g)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (json_lua_encode_check(e, yajl_gen_string(e->g, (const unsigned char *)keys[i].k,
						keys[i].len)) != 0 ||
		    json_lua_encode_value(e, keys[i].slot, depth) != 0)
			goto out;
	rc = json_lua_encode_check(e, yajl_gen_map_close(e->g));
out:
	lua_settop(L, top);
	e->alloc(e->ud, keys, bytes, 0);
	return rc;
}

/* Keys exactly 1..n (n > 0) → array; string keys → object; else an error. */
static int json_lua_encode_table(struct jl_encode *e, int idx, int depth)
{
	lua_State *L = e->L;
	lua_Integer count = 0, max = 0, i;
	int sequence = 1, strings = 1;

	if (depth > BATCH_MAX_DEPTH)
		return json_lua_encode_fail(e, "table nested deeper than 64 levels (or a cycle)");
	if (!lua_checkstack(L, 4))
		return json_lua_encode_fail(e, "out of memory");
	if (json_lua_lazy_materialize_protected(L, idx) < 0) {   /* an event: all of it */
		e->nomem = 1;
		return json_lua_encode_fail(e, "not enough memory");
	}
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
		if (json_lua_encode_check(e, yajl_gen_array_open(e->g)) != 0)
			return -1;
		for (i = 1; i <= count; i++) {
			lua_rawgeti(L, idx, i);
			if (json_lua_encode_value(e, lua_gettop(L), depth) != 0)
				return -1;
			lua_pop(L, 1);
		}
		return json_lua_encode_check(e, yajl_gen_array_close(e->g));
	}
	if (!strings)
		return json_lua_encode_fail(e, "table has non-string keys");
	return json_lua_encode_object(e, idx, (size_t)count, depth);
}

/* On error the stack may be left higher; json_lua_encode restores it. */
static int json_lua_encode_value(struct jl_encode *e, int idx, int depth)
{
	lua_State *L = e->L;
	const char *s;
	size_t len;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return json_lua_encode_check(e, yajl_gen_null(e->g));
	case LUA_TBOOLEAN:
		return json_lua_encode_check(e, yajl_gen_bool(e->g, lua_toboolean(L, idx)));
	case LUA_TNUMBER:
		return json_lua_encode_number(e, idx);
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		return json_lua_encode_check(e, yajl_gen_string(e->g, (const unsigned char *)s, len));
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) == NULL)   /* json.null */
			return json_lua_encode_check(e, yajl_gen_null(e->g));
		return json_lua_encode_fail(e, "cannot encode a userdata");
	case LUA_TTABLE:
		return json_lua_encode_table(e, idx, depth + 1);
	default:
		if (e->err && e->errlen > 0)
			snprintf(e->err, e->errlen, "cannot encode a %s",
				 lua_typename(L, lua_type(L, idx)));
		return -1;
	}
}

/*
 * The text of the value at idx in e->buf (e->len bytes, NUL-terminated,
 * e->cap allocated through e->alloc; the caller releases it with json_lua_encode_release).
 */
static int json_lua_encode_top(struct jl_encode *e, int idx)
{
	lua_State *L = e->L;
	yajl_alloc_funcs afs = { json_lua_encode_malloc, json_lua_encode_realloc, json_lua_encode_free, e };
	int top = lua_gettop(L);
	int rc = -1;

	e->alloc = lua_getallocf(L, &e->ud);
	idx = lua_absindex(L, idx);
	e->g = yajl_gen_alloc(&afs);
	if (!e->g || e->nomem) {
		json_lua_encode_fail(e, "not enough memory");
		goto out;
	}
	if (!yajl_gen_config(e->g, yajl_gen_print_callback, json_lua_encode_print, e) ||
	    !yajl_gen_config(e->g, yajl_gen_beautify, 0) ||
	    !yajl_gen_config(e->g, yajl_gen_validate_utf8, 1)) {
		json_lua_encode_fail(e, "cannot configure the JSON generator");
		goto out;
	}
	/* the spare held yajl's default buffer header, freed by the callback's set-up */
	e->nomem = 0;
	if (json_lua_encode_value(e, idx, 0) != 0)
		goto out;
	json_lua_encode_print(e, "", 1);   /* the NUL, not counted */
	if (e->nomem) {
		json_lua_encode_fail(e, "not enough memory");
		goto out;
	}
	e->len--;
	rc = 0;
out:
	lua_settop(L, top);
	if (e->g)
		yajl_gen_free(e->g);
	e->g = NULL;
	return rc;
}

static void json_lua_encode_release(struct jl_encode *e)
{
	if (e->buf)
		e->alloc(e->ud, e->buf, e->cap, 0);
	e->buf = NULL;
	e->len = e->cap = 0;
}

int json_lua_encode(lua_State *L, int idx, char **out, size_t *out_len, char *err, size_t errlen)
{
	struct jl_encode e = { .L = L, .err = err, .errlen = errlen };
	int rc;

	*out = NULL;
	*out_len = 0;
	rc = json_lua_encode_top(&e, idx);
	if (rc == 0) {
		*out = malloc(e.len + 1);
		if (*out) {
			memcpy(*out, e.buf, e.len + 1);
			*out_len = e.len;
		} else {
			e.nomem = 1;
			rc = json_lua_encode_fail(&e, "not enough memory");
		}
	}
	json_lua_encode_release(&e);
	return rc < 0 ? (e.nomem ? JSON_LUA_NOMEM : -1) : 0;
}

struct jl_push_args {
	const char *s;
	size_t len;
};

static int json_lua_encode_push_string_protected(lua_State *L)
{
	struct jl_push_args *a = lua_touserdata(L, 1);

	lua_pushlstring(L, a->s, a->len);
	return 1;
}

int json_lua_l_encode(lua_State *L)
{
	struct jl_encode e = { .L = L };
	struct jl_push_args a;
	char err[160];
	int status;

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	e.err = err;
	e.errlen = sizeof err;
	if (json_lua_encode_top(&e, 1) != 0) {
		json_lua_encode_release(&e);
		/* a refused allocation is a memory error (lua_error turns this message into one) */
		if (e.nomem) {
			lua_pushliteral(L, "not enough memory");   /* no position: rules see a memory error */
			return lua_error(L);
		}
		return luaL_error(L, "json.encode: %s", err);
	}
	/* Push under pcall so the buffer is freed even if the copy fails. */
	a.s = e.buf;
	a.len = e.len;
	lua_pushcfunction(L, json_lua_encode_push_string_protected);
	lua_pushlightuserdata(L, &a);
	status = lua_pcall(L, 1, 1, 0);
	json_lua_encode_release(&e);
	if (status != LUA_OK)
		return lua_error(L);
	return 1;
}
