/*
 * json_lua.c — JSON → Lua values with exact numbers, on yajl (json_lua.h).
 * Encoding (Lua → JSON) lives in json_lua_encode.c.
 *
 * One builder (struct jl) turns value events into Lua values on the stack.
 * Each open container is a table on the stack plus a frame here (array
 * counter or map); a finished value is stored into its parent with
 * lua_rawseti / lua_rawset. batch_parse drives it for request bodies; a
 * plain yajl handle drives it for json.decode.
 *
 * Lua raises its memory errors with longjmp, which must not cross our
 * callers. So every build runs inside lua_pcall of a C function, and
 * everything allocated with malloc during a build is owned outside it (the
 * yajl handle lives in struct batch / in the caller's frame) and released
 * after the pcall, whatever happened.
 *
 * Threads: a lua_State is used by one thread at a time; nothing global but
 * the address used as the registry key of json.null.
 */
#include "json_lua.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua-cjson.h>
#include <yajl/yajl_parse.h>

#include "batch.h"


/* Registry key (by address) of the cached cjson.null. */
static const char jl_null_key = 'n';

struct jl_frame {
	lua_Integer n;   /* elements stored so far (arrays) */
	int is_array;
};

/* The builder: Lua values on L's stack, one frame per open container. */
struct jl {
	lua_State *L;
	int null_idx;     /* absolute index of json.null */
	int events_idx;   /* absolute index of the events table (batches) */
	int depth;
	struct jl_frame frames[BATCH_MAX_DEPTH + 1];
};

/* Stores the value on top into the open container, if any. */
static int json_lua_build_store(struct jl *b)
{
	struct jl_frame *f;

	if (b->depth == 0)
		return 0;
	f = &b->frames[b->depth - 1];
	if (f->is_array)
		lua_rawseti(b->L, -2, ++f->n);
	else
		lua_rawset(b->L, -3);   /* key below the value, table below the key */
	return 0;
}

static int json_lua_build_open(struct jl *b, int is_array)
{
	if (b->depth > BATCH_MAX_DEPTH)
		return -1;
	/* Growing a hash part 1→2→4→8 costs a rehash each time; events have
	 * about 5 keys and their inner objects a few (measured ~15% faster). */
	lua_createtable(b->L, 0, is_array ? 0 : b->depth == 0 ? 8 : 4);
	b->frames[b->depth].n = 0;
	b->frames[b->depth].is_array = is_array;
	b->depth++;
	return 0;
}

static int json_lua_build_close(struct jl *b)
{
	b->depth--;
	return json_lua_build_store(b);
}

static int json_lua_build_event_begin(void *ud, size_t index)
{
	(void)ud;
	(void)index;
	return 0;
}

static int json_lua_build_null(void *ud)
{
	struct jl *b = ud;

	lua_pushvalue(b->L, b->null_idx);
	return json_lua_build_store(b);
}

static int json_lua_build_boolean(void *ud, int value)
{
	struct jl *b = ud;

	lua_pushboolean(b->L, value);
	return json_lua_build_store(b);
}

static int json_lua_build_integer(void *ud, long long value)
{
	struct jl *b = ud;

	lua_pushinteger(b->L, (lua_Integer)value);
	return json_lua_build_store(b);
}

static int json_lua_build_number(void *ud, double value)
{
	struct jl *b = ud;

	lua_pushnumber(b->L, (lua_Number)value);
	return json_lua_build_store(b);
}

static int json_lua_build_string(void *ud, const char *s, size_t len)
{
	struct jl *b = ud;

	lua_pushlstring(b->L, s, len);
	return json_lua_build_store(b);
}

static int json_lua_build_map_begin(void *ud)
{
	return json_lua_build_open(ud, 0);
}

static int json_lua_build_map_key(void *ud, const char *s, size_t len)
{
	struct jl *b = ud;

	lua_pushlstring(b->L, s, len);
	return 0;
}

static int json_lua_build_array_begin(void *ud)
{
	return json_lua_build_open(ud, 1);
}

static int json_lua_build_container_end(void *ud)
{
	return json_lua_build_close(ud);
}

static int json_lua_build_event_end(void *ud, size_t index, const char *reject)
{
	struct jl *b = ud;

	if (reject)
		lua_pop(b->L, 1);
	else
		lua_rawseti(b->L, b->events_idx, (lua_Integer)index + 1);
	return 0;
}

static const struct batch_builder jl_builder = {
	.event_begin = json_lua_build_event_begin,
	.null_value = json_lua_build_null,
	.boolean = json_lua_build_boolean,
	.integer = json_lua_build_integer,
	.number = json_lua_build_number,
	.string = json_lua_build_string,
	.map_begin = json_lua_build_map_begin,
	.map_key = json_lua_build_map_key,
	.map_end = json_lua_build_container_end,
	.array_begin = json_lua_build_array_begin,
	.array_end = json_lua_build_container_end,
	.event_end = json_lua_build_event_end,
};

/*
 * The first call in a state opens lua-cjson (without setting any global)
 * to take its null, and caches it in the registry; that call can raise a
 * Lua memory error, so make it in protected mode (state set-up is).
 */
void json_lua_push_null(lua_State *L)
{
	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &jl_null_key) != LUA_TNIL)
		return;
	lua_pop(L, 1);
	lua_pushcfunction(L, luaopen_cjson);
	lua_call(L, 0, 1);
	lua_getfield(L, -1, "null");
	lua_remove(L, -2);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &jl_null_key);
}

/* Sets up a builder on L: json.null at the top, room for the deepest value. */
static void json_lua_build_init(struct jl *b, lua_State *L)
{
	memset(b, 0, sizeof *b);
	b->L = L;
	/* Two slots per level (table + pending key), plus the value and slack. */
	if (!lua_checkstack(L, 2 * (BATCH_MAX_DEPTH + 2) + 8))
		luaL_error(L, "out of memory");
	json_lua_push_null(L);
	b->null_idx = lua_gettop(L);
}

/* ---- batches ---- */

struct jl_batch_args {
	const char *body;
	size_t len;
	size_t max_events;
	struct batch *out;
	char *err;
	size_t errlen;
	int rc;
};

/* lua_CFunction run under lua_pcall: [lightuserdata args] → events table. */
static int json_lua_push_batch_protected(lua_State *L)
{
	struct jl_batch_args *a = lua_touserdata(L, 1);
	struct jl b;

	json_lua_build_init(&b, L);
	lua_newtable(L);
	b.events_idx = lua_gettop(L);
	a->rc = batch_parse(a->out, a->body, a->len, a->max_events, &jl_builder, &b,
			    a->err, a->errlen);
	return a->rc == BATCH_OK ? 1 : 0;
}

/* Copies the message of a failed pcall (on top) into err and pops it. */
static void json_lua_pcall_error(lua_State *L, int status, char *err, size_t errlen)
{
	const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;

	if (err && errlen > 0)
		snprintf(err, errlen, "%s", status == LUA_ERRMEM ? "out of memory" :
			 msg ? msg : "Lua error");
	lua_pop(L, 1);
}

int json_lua_push_batch(lua_State *L, const char *body, size_t len, size_t max_events,
			struct batch *out, char *err, size_t errlen)
{
	struct jl_batch_args a = {
		.body = body, .len = len, .max_events = max_events, .out = out,
		.err = err, .errlen = errlen, .rc = BATCH_NOMEM,
	};
	int top = lua_gettop(L);
	int status;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!lua_checkstack(L, 2)) {
		if (err && errlen > 0)
			snprintf(err, errlen, "out of memory");
		return BATCH_NOMEM;
	}
	lua_pushcfunction(L, json_lua_push_batch_protected);
	lua_pushlightuserdata(L, &a);
	status = lua_pcall(L, 1, 1, 0);
	if (status != LUA_OK) {
		json_lua_pcall_error(L, status, err, errlen);
		batch_reset(out);   /* frees the yajl handle left by the longjmp */
		lua_settop(L, top);
		return BATCH_NOMEM;
	}
	if (a.rc != BATCH_OK)
		lua_settop(L, top);
	return a.rc;
}

/* ---- json.decode ---- */

struct jl_decode {
	struct jl b;
	yajl_handle h;
	const char *text;
	size_t len;
	int depth;
	int nomem;
	char *err;
	size_t errlen;
};

static int json_lua_decode_null(void *ctx)
{
	return json_lua_build_null(ctx) == 0;
}

static int json_lua_decode_boolean(void *ctx, int value)
{
	return json_lua_build_boolean(ctx, value) == 0;
}

/* Same rule as batch.c (batch_number): no '.', 'e', 'E' and within int64 → integer. */
static int json_lua_decode_number(void *ctx, const char *s, size_t len)
{
	struct jl_decode *d = ctx;
	long long iv = 0;
	double dv = 0;
	enum batch_number_kind kind = batch_number(s, len, &iv, &dv);

	if (kind == BATCH_NUMBER_NOMEM) {
		d->nomem = 1;
		return 0;
	}
	if (kind == BATCH_NUMBER_INTEGER)
		return json_lua_build_integer(&d->b, iv) == 0;
	return json_lua_build_number(&d->b, dv) == 0;
}

static int json_lua_decode_string(void *ctx, const unsigned char *s, size_t len)
{
	return json_lua_build_string(ctx, (const char *)s, len) == 0;
}

static int json_lua_decode_key(void *ctx, const unsigned char *s, size_t len)
{
	return json_lua_build_map_key(ctx, (const char *)s, len) == 0;
}

static int json_lua_decode_open(struct jl_decode *d, int is_array)
{
	if (++d->depth > BATCH_MAX_DEPTH) {
		if (d->err && d->errlen > 0)
			snprintf(d->err, d->errlen, "JSON nested deeper than %d levels at byte %zu",
				 BATCH_MAX_DEPTH, yajl_get_bytes_consumed(d->h) - 1);
		return 0;
	}
	return json_lua_build_open(&d->b, is_array) == 0;
}

static int json_lua_decode_start_map(void *ctx)
{
	return json_lua_decode_open(ctx, 0);
}

static int json_lua_decode_start_array(void *ctx)
{
	return json_lua_decode_open(ctx, 1);
}

static int json_lua_decode_end(void *ctx)
{
	struct jl_decode *d = ctx;

	d->depth--;
	return json_lua_build_close(&d->b) == 0;
}

/* The builder is the first member, so ctx works for both. */
static const yajl_callbacks jd_callbacks = {
	.yajl_null = json_lua_decode_null,
	.yajl_boolean = json_lua_decode_boolean,
	.yajl_number = json_lua_decode_number,
	.yajl_string = json_lua_decode_string,
	.yajl_start_map = json_lua_decode_start_map,
	.yajl_map_key = json_lua_decode_key,
	.yajl_end_map = json_lua_decode_end,
	.yajl_start_array = json_lua_decode_start_array,
	.yajl_end_array = json_lua_decode_end,
};

/* lua_CFunction run under lua_pcall: [lightuserdata decode] → value or nothing. */
static int json_lua_decode_protected(lua_State *L)
{
	struct jl_decode *d = lua_touserdata(L, 1);
	yajl_status st;
	int in_parse;

	json_lua_build_init(&d->b, L);
	st = yajl_parse(d->h, (const unsigned char *)d->text, d->len);
	in_parse = st != yajl_status_ok;
	if (st == yajl_status_ok)
		st = yajl_complete_parse(d->h);
	if (st == yajl_status_ok)
		return 1;
	if (st == yajl_status_client_canceled) {
		if (d->nomem && d->err && d->errlen > 0)
			snprintf(d->err, d->errlen, "out of memory");
		return 0;
	}
	batch_syntax_error(d->h, d->text, d->len, in_parse, d->err, d->errlen);
	return 0;
}

int json_lua_decode(lua_State *L, const char *text, size_t len, char *err, size_t errlen)
{
	struct jl_decode d;
	int top = lua_gettop(L);
	int status, rc = -1;
	size_t lone;

	memset(&d, 0, sizeof d);
	d.text = text;
	d.len = len;
	d.err = err;
	d.errlen = errlen;
	if (err && errlen > 0)
		snprintf(err, errlen, "invalid JSON");
	lone = batch_lone_surrogate(text, len);
	if (lone != (size_t)-1) {
		/* The same refusal as a batch's: yajl would decode it to '?'. */
		if (err && errlen > 0)
			snprintf(err, errlen, "invalid JSON at byte %zu: \\u%.4s is a lone UTF-16 "
				 "surrogate (not a character)", lone, text + lone + 2);
		goto out;
	}
	d.h = yajl_alloc(&jd_callbacks, NULL, &d);
	if (!d.h) {
		if (err && errlen > 0)
			snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (!lua_checkstack(L, 2)) {
		if (err && errlen > 0)
			snprintf(err, errlen, "out of memory");
		goto out;
	}
	lua_pushcfunction(L, json_lua_decode_protected);
	lua_pushlightuserdata(L, &d);
	status = lua_pcall(L, 1, LUA_MULTRET, 0);
	if (status != LUA_OK) {
		json_lua_pcall_error(L, status, err, errlen);
		lua_settop(L, top);
		goto out;
	}
	if (lua_gettop(L) != top + 1) {
		lua_settop(L, top);
		goto out;
	}
	rc = 0;
out:
	if (d.h)
		yajl_free(d.h);
	return rc;
}

/* Lua-callable json.decode; json.encode is in json_lua_encode.c. */
int json_lua_l_decode(lua_State *L)
{
	char err[160];
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);

	if (json_lua_decode(L, text, len, err, sizeof err) != 0)
		return luaL_error(L, "json.decode: %s", err);
	return 1;
}
