/*
 * json_lua_lazy.c — lazy event tables (json_lua_lazy.h).
 *
 * Design: batch_parse drives a builder that appends tokens to a C scratch
 * tape (no Lua call, so no longjmp during the parse). A protected call then
 * copies the tape into one userdata and makes, per batch, a metatable whose
 * C closures share three upvalues: the tape, a table proxy → event index,
 * and a table proxy → {key → built container}. A proxy stays empty (raw)
 * until it is materialised, so every assignment reaches __newindex, and a
 * container built for __index is handed back again when the whole event is
 * built (the same table, as a rule that kept it expects).
 *
 * Tape: a container token records how many entries it holds (len) and the
 * index of the token after its last descendant (next), so a top-level key
 * is found by skipping whole values; a map entry is a KEY token then the
 * value. Duplicate keys: the last one wins, as rawset did.
 *
 * Threads: see the header.
 */
#include "json_lua_lazy.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "batch.h"
#include "json_lua.h"

#define JZ_NONE UINT_MAX
/* Lua 5.4 on 64-bit: a Table, a hash Node, an array TValue; strings longer
 * than LUAI_MAXSHORTLEN (40) are never shared. Lower bounds for the estimate. */
#define JZ_TABLE_BYTES 56
#define JZ_NODE_BYTES 24
#define JZ_SLOT_BYTES 16
#define JZ_SHORT_MAX 40
#define JZ_STRING_BYTES 25

/* Registry keys (by address): the marker under which a batch metatable
 * holds its materialise function, and the original next (for __pairs). */
static const char jz_lazy_key = 'z';
static const char jz_next_key = 'x';

enum jz_kind { JZ_NULL, JZ_FALSE, JZ_TRUE, JZ_INT, JZ_NUM, JZ_STR, JZ_KEY, JZ_MAP, JZ_ARR };

/* 16 bytes (the tape is most of a batch's Lua memory): next shares the union. */
struct jz_tok {
	unsigned char kind;
	unsigned len;                 /* strings: bytes; containers: entries */
	union {
		long long i;
		double d;
		size_t off;           /* strings: offset in the string bytes */
		unsigned next;        /* containers: the token after the last descendant */
	} v;
};
_Static_assert(sizeof(struct jz_tok) == 16, "a tape token is 16 bytes");

/* The tape as stored in the batch's userdata. */
struct jz_tape {
	size_t nevents, ntok, nstr;
	/* then: unsigned first[nevents], padding, struct jz_tok toks[ntok], char strs[nstr] */
};

struct jz_view {
	const unsigned *first;
	const struct jz_tok *toks;
	const char *strs;
	size_t nevents;
};

static size_t jz_toks_offset(size_t nevents)
{
	size_t off = sizeof(struct jz_tape) + nevents * sizeof(unsigned);

	return (off + _Alignof(struct jz_tok) - 1) / _Alignof(struct jz_tok) * _Alignof(struct jz_tok);
}

static void jz_view(const struct jz_tape *t, struct jz_view *v)
{
	const char *base = (const char *)t;

	v->nevents = t->nevents;
	v->first = (const unsigned *)(base + sizeof *t);
	v->toks = (const struct jz_tok *)(base + jz_toks_offset(t->nevents));
	v->strs = (const char *)(v->toks + t->ntok);
}

void json_lua_lazy_scratch_free(struct json_lua_lazy_scratch *s)
{
	free(s->toks);
	free(s->strs);
	free(s->first);
	memset(s, 0, sizeof *s);
}

size_t json_lua_lazy_scratch_bytes(const struct json_lua_lazy_scratch *s)
{
	return s->captok * sizeof(struct jz_tok) + s->capstr + s->capfirst * sizeof *s->first;
}

/* ---- the builder (batch_parse callbacks, plain C) ---- */

struct jz_build {
	struct json_lua_lazy_scratch *s;
	unsigned open[BATCH_MAX_DEPTH + 2];   /* token index of each open container */
	int depth;
	size_t est;                            /* table bytes (lower bound) */
	size_t event_est, event_nstr;          /* at event_begin, to undo a rejected event */
};

static int jz_grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 256;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

/* Appends a token for a value (or key) and counts it in its container. */
static struct jz_tok *jz_tok(struct jz_build *b, enum jz_kind kind)
{
	struct json_lua_lazy_scratch *s = b->s;
	struct jz_tok *t, *parent;

	if (s->ntok >= JZ_NONE - 1 || jz_grow(&s->toks, &s->captok, s->ntok + 1, sizeof *t) < 0)
		return NULL;
	t = (struct jz_tok *)s->toks + s->ntok++;
	t->kind = (unsigned char)kind;
	t->len = 0;
	t->v.next = 0;
	if (kind != JZ_KEY && b->depth > 0) {
		parent = (struct jz_tok *)s->toks + b->open[b->depth - 1];
		parent->len++;
		b->est += parent->kind == JZ_MAP ? JZ_NODE_BYTES : JZ_SLOT_BYTES;
	}
	return t;
}

static int jz_text(struct jz_build *b, enum jz_kind kind, const char *str, size_t len)
{
	struct json_lua_lazy_scratch *s = b->s;
	struct jz_tok *t;

	if (len >= JZ_NONE || jz_grow((void **)&s->strs, &s->capstr, s->nstr + len + 1, 1) < 0)
		return -1;
	t = jz_tok(b, kind);
	if (!t)
		return -1;
	t->len = (unsigned)len;
	t->v.off = s->nstr;
	memcpy(s->strs + s->nstr, str, len);
	s->strs[s->nstr + len] = '\0';
	s->nstr += len + 1;
	if (len > JZ_SHORT_MAX)
		b->est += JZ_STRING_BYTES + len;
	return 0;
}

static int jz_event_begin(void *ud, size_t index)
{
	struct jz_build *b = ud;
	struct json_lua_lazy_scratch *s = b->s;

	if (jz_grow((void **)&s->first, &s->capfirst, index + 1, sizeof *s->first) < 0)
		return -1;
	while (s->nfirst < index)
		s->first[s->nfirst++] = JZ_NONE;
	s->first[index] = (unsigned)s->ntok;
	s->nfirst = index + 1;
	b->event_est = b->est;
	b->event_nstr = s->nstr;
	return 0;
}

static int jz_null(void *ud)
{
	return jz_tok(ud, JZ_NULL) ? 0 : -1;
}

static int jz_boolean(void *ud, int value)
{
	return jz_tok(ud, value ? JZ_TRUE : JZ_FALSE) ? 0 : -1;
}

static int jz_integer(void *ud, long long value)
{
	struct jz_tok *t = jz_tok(ud, JZ_INT);

	if (!t)
		return -1;
	t->v.i = value;
	return 0;
}

static int jz_number(void *ud, double value)
{
	struct jz_tok *t = jz_tok(ud, JZ_NUM);

	if (!t)
		return -1;
	t->v.d = value;
	return 0;
}

static int jz_string(void *ud, const char *s, size_t len)
{
	return jz_text(ud, JZ_STR, s, len);
}

static int jz_key(void *ud, const char *s, size_t len)
{
	return jz_text(ud, JZ_KEY, s, len);
}

static int jz_open(struct jz_build *b, enum jz_kind kind)
{
	if (b->depth > BATCH_MAX_DEPTH || !jz_tok(b, kind))
		return -1;
	b->open[b->depth++] = (unsigned)(b->s->ntok - 1);
	b->est += JZ_TABLE_BYTES;
	return 0;
}

static int jz_map_begin(void *ud)
{
	return jz_open(ud, JZ_MAP);
}

static int jz_array_begin(void *ud)
{
	return jz_open(ud, JZ_ARR);
}

static int jz_close(void *ud)
{
	struct jz_build *b = ud;
	struct jz_tok *t = (struct jz_tok *)b->s->toks + b->open[--b->depth];

	t->v.next = (unsigned)b->s->ntok;
	return 0;
}

static int jz_event_end(void *ud, size_t index, const char *reject)
{
	struct jz_build *b = ud;
	struct json_lua_lazy_scratch *s = b->s;

	if (reject) {   /* not routable: nothing of it reaches Lua */
		s->ntok = s->first[index];
		s->nstr = b->event_nstr;
		s->first[index] = JZ_NONE;
		b->est = b->event_est;
	}
	return 0;
}

static const struct batch_builder jz_builder = {
	.event_begin = jz_event_begin,
	.null_value = jz_null,
	.boolean = jz_boolean,
	.integer = jz_integer,
	.number = jz_number,
	.string = jz_string,
	.map_begin = jz_map_begin,
	.map_key = jz_key,
	.map_end = jz_close,
	.array_begin = jz_array_begin,
	.array_end = jz_close,
	.event_end = jz_event_end,
};

/* ---- tape → Lua ---- */

/* Pushes the value at token t (a whole subtree); returns the token after it. */
static unsigned jz_push(lua_State *L, const struct jz_view *v, unsigned t)
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
			t = jz_push(L, v, t);
			lua_rawseti(L, -2, n);
		}
		return t;
	default:   /* JZ_MAP */
		lua_createtable(L, 0, (int)k->len);
		t++;
		for (n = 0; n < k->len; n++) {
			lua_pushlstring(L, v->strs + v->toks[t].v.off, v->toks[t].len);
			t = jz_push(L, v, t + 1);
			lua_rawset(L, -3);
		}
		return t;
	}
}

/* The token after the value at t. */
static unsigned jz_skip(const struct jz_view *v, unsigned t)
{
	return v->toks[t].kind == JZ_MAP || v->toks[t].kind == JZ_ARR ? v->toks[t].v.next : t + 1;
}

static void jz_room(lua_State *L)
{
	if (!lua_checkstack(L, 2 * (BATCH_MAX_DEPTH + 2) + 8))
		luaL_error(L, "not enough memory");
}

/* Upvalues of every batch closure. */
#define JZ_UV_TAPE lua_upvalueindex(1)
#define JZ_UV_INDEX lua_upvalueindex(2)   /* proxy → event index (0-based) */
#define JZ_UV_BUILT lua_upvalueindex(3)   /* proxy → { key → container built by __index } */

/* The event index of the proxy at idx, or -1 when it is no (longer a) proxy. */
static lua_Integer jz_event_of(lua_State *L, int idx)
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
static int jz_l_index(lua_State *L)
{
	struct jz_view v;
	lua_Integer i = jz_event_of(L, 1);
	const char *key;
	size_t klen;
	unsigned t, n, found = JZ_NONE;

	if (i < 0 || lua_type(L, 2) != LUA_TSTRING)
		return 0;
	jz_view(lua_touserdata(L, JZ_UV_TAPE), &v);
	key = lua_tolstring(L, 2, &klen);
	t = v.first[i];
	n = v.toks[t].len;
	for (t++; n > 0; n--) {
		if (v.toks[t].len == klen && memcmp(v.strs + v.toks[t].v.off, key, klen) == 0)
			found = t + 1;
		t = jz_skip(&v, t + 1);
	}
	if (found == JZ_NONE)
		return 0;
	jz_room(L);
	if (v.toks[found].kind != JZ_MAP && v.toks[found].kind != JZ_ARR) {
		jz_push(L, &v, found);
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
	jz_push(L, &v, found);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, -2);
	lua_rawset(L, -4);
	return 1;
}

/* materialise(proxy): the proxy becomes the event's real table. */
static int jz_l_materialize(lua_State *L)
{
	struct jz_view v;
	lua_Integer i = jz_event_of(L, 1);
	unsigned t, n;
	int built;

	if (i < 0)
		return 0;
	jz_view(lua_touserdata(L, JZ_UV_TAPE), &v);
	jz_room(L);
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
				t = jz_skip(&v, t + 1);
				lua_rawset(L, 1);
				continue;
			}
			lua_pop(L, 1);
		}
		t = jz_push(L, &v, t + 1);
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
static int jz_l_newindex(lua_State *L)
{
	lua_pushvalue(L, lua_upvalueindex(4));   /* materialise */
	lua_pushvalue(L, 1);
	lua_call(L, 1, 0);
	lua_rawset(L, 1);
	return 0;
}

/* __pairs(proxy): next, the real table, nil */
static int jz_l_pairs(lua_State *L)
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

static int jz_l_materialize_arg(lua_State *L)
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
	lua_pushcfunction(L, jz_l_materialize_arg);
	lua_pushvalue(L, idx);
	if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* A wrapped global (upvalue 1): its first argument is materialised first. */
static int jz_l_guarded(lua_State *L)
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
		lua_pushcclosure(L, jz_l_guarded, 1);
		lua_setglobal(L, names[i]);
	}
}

/* ---- batches ---- */

struct jz_push_args {
	const struct json_lua_lazy_scratch *s;
	size_t nevents;
};

/* Protected: [lightuserdata args] → the table of event proxies. */
static int jz_push_batch_protected(lua_State *L)
{
	const struct jz_push_args *a = lua_touserdata(L, 1);
	const struct json_lua_lazy_scratch *s = a->s;
	size_t toff = jz_toks_offset(a->nevents);
	size_t size = toff + s->ntok * sizeof(struct jz_tok) + s->nstr;
	struct jz_tape *tape;
	unsigned *first;
	size_t routable = 0;
	static const char *const names[] = { "__index", "__newindex", "__pairs" };
	static const lua_CFunction fns[] = { jz_l_index, jz_l_newindex, jz_l_pairs };

	if (lua_rawgetp(L, LUA_REGISTRYINDEX, &jz_next_key) == LUA_TNIL) {
		lua_getglobal(L, "next");   /* json_lua_lazy_guard was not run (tests) */
		lua_rawsetp(L, LUA_REGISTRYINDEX, &jz_next_key);
	}
	lua_pop(L, 1);
	json_lua_push_null(L);   /* opens lua-cjson once, here where failing is allowed */
	lua_pop(L, 1);
	tape = lua_newuserdatauv(L, size, 0);          /* 2 */
	tape->nevents = a->nevents;
	tape->ntok = s->ntok;
	tape->nstr = s->nstr;
	first = (unsigned *)(tape + 1);
	for (size_t i = 0; i < a->nevents; i++) {
		first[i] = i < s->nfirst ? s->first[i] : JZ_NONE;
		routable += first[i] != JZ_NONE;
	}
	if (s->ntok)
		memcpy((char *)tape + toff, s->toks, s->ntok * sizeof(struct jz_tok));
	if (s->nstr)
		memcpy((char *)tape + toff + s->ntok * sizeof(struct jz_tok), s->strs, s->nstr);
	lua_createtable(L, 0, (int)routable);          /* 3: proxy → index */
	lua_newtable(L);                               /* 4: proxy → built containers */
	lua_createtable(L, 0, 4);                      /* 5: the metatable */
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 3);
	lua_pushvalue(L, 4);
	lua_pushcclosure(L, jz_l_materialize, 3);      /* 6 */
	lua_pushvalue(L, 6);
	lua_rawsetp(L, 5, &jz_lazy_key);
	for (int k = 0; k < 3; k++) {
		lua_pushvalue(L, 2);
		lua_pushvalue(L, 3);
		lua_pushvalue(L, 4);
		lua_pushvalue(L, 6);
		lua_pushcclosure(L, fns[k], 4);
		lua_setfield(L, 5, names[k]);
	}
	lua_createtable(L, (int)a->nevents, 0);        /* 7: the events */
	for (size_t i = 0; i < a->nevents; i++) {
		if (first[i] == JZ_NONE)
			continue;
		lua_createtable(L, 0, 0);
		lua_pushvalue(L, 5);
		lua_setmetatable(L, -2);
		lua_pushvalue(L, -1);
		lua_pushinteger(L, (lua_Integer)i);
		lua_rawset(L, 3);
		lua_rawseti(L, 7, (lua_Integer)i + 1);
	}
	return 1;
}

int json_lua_push_batch_lazy(lua_State *L, const char *body, size_t len, size_t max_events,
			     struct batch *out, struct json_lua_lazy_scratch *scratch,
			     size_t *table_bytes, char *err, size_t errlen)
{
	struct jz_build b = { .s = scratch };
	struct jz_push_args a = { .s = scratch };
	int top = lua_gettop(L);
	int rc, status;

	err[0] = '\0';   /* rules_parse_batch always passes a buffer */
	scratch->ntok = scratch->nstr = scratch->nfirst = 0;
	*table_bytes = 0;
	rc = batch_parse(out, body, len, max_events, &jz_builder, &b, err, errlen);
	if (rc != BATCH_OK)
		goto out;
	a.nevents = out->count;
	*table_bytes = b.est;
	rc = BATCH_NOMEM;
	if (!lua_checkstack(L, 2)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	lua_pushcfunction(L, jz_push_batch_protected);
	lua_pushlightuserdata(L, &a);
	status = lua_pcall(L, 1, 1, 0);
	if (status != LUA_OK) {
		lua_settop(L, top);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = BATCH_OK;
out:
	/* a scratch never keeps a huge buffer (one large batch must not pin it) */
	if (json_lua_lazy_scratch_bytes(scratch) > JSON_LUA_LAZY_SCRATCH_KEEP)
		json_lua_lazy_scratch_free(scratch);
	return rc;
}
