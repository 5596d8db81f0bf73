/*
 * json_lua_lazy.c — lazy event tables (json_lua_lazy.h): the parse into a
 * tape and a batch's proxies.
 *
 * Design: batch_parse drives a builder that appends tokens to a C scratch
 * tape (no Lua call, so no longjmp during the parse). A protected call then
 * copies the tape into one userdata and makes, per batch, one metatable
 * (json_lua_lazy_meta.c) and an empty table (a proxy) per routable event.
 * The tape's layout is in json_lua_lazy_internal.h.
 *
 * Threads: see the header.
 */
#include "json_lua_lazy.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "json_lua.h"
#include "json_lua_lazy_internal.h"

/* Lua 5.4 on 64-bit: a Table, a hash Node, an array TValue; strings longer
 * than LUAI_MAXSHORTLEN (40) are never shared. Lower bounds for the estimate. */
#define JZ_TABLE_BYTES 56
#define JZ_NODE_BYTES 24
#define JZ_SLOT_BYTES 16
#define JZ_SHORT_MAX 40
#define JZ_STRING_BYTES 25

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

static int json_lua_lazy_grow(void **p, size_t *cap, size_t need, size_t size)
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
static struct jz_tok *json_lua_lazy_tok(struct jz_build *b, enum jz_kind kind)
{
	struct json_lua_lazy_scratch *s = b->s;
	struct jz_tok *t, *parent;

	if (s->ntok >= JZ_NONE - 1 ||
	    json_lua_lazy_grow(&s->toks, &s->captok, s->ntok + 1, sizeof *t) < 0)
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

static int json_lua_lazy_text(struct jz_build *b, enum jz_kind kind, const char *str, size_t len)
{
	struct json_lua_lazy_scratch *s = b->s;
	struct jz_tok *t;

	if (len >= JZ_NONE || json_lua_lazy_grow((void **)&s->strs, &s->capstr, s->nstr + len + 1, 1) < 0)
		return -1;
	t = json_lua_lazy_tok(b, kind);
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

static int json_lua_lazy_event_begin(void *ud, size_t index)
{
	struct jz_build *b = ud;
	struct json_lua_lazy_scratch *s = b->s;

	if (json_lua_lazy_grow((void **)&s->first, &s->capfirst, index + 1, sizeof *s->first) < 0)
		return -1;
	while (s->nfirst < index)
		s->first[s->nfirst++] = JZ_NONE;
	s->first[index] = (unsigned)s->ntok;
	s->nfirst = index + 1;
	b->event_est = b->est;
	b->event_nstr = s->nstr;
	return 0;
}

static int json_lua_lazy_null(void *ud)
{
	return json_lua_lazy_tok(ud, JZ_NULL) ? 0 : -1;
}

static int json_lua_lazy_boolean(void *ud, int value)
{
	return json_lua_lazy_tok(ud, value ? JZ_TRUE : JZ_FALSE) ? 0 : -1;
}

static int json_lua_lazy_integer(void *ud, long long value)
{
	struct jz_tok *t = json_lua_lazy_tok(ud, JZ_INT);

	if (!t)
		return -1;
	t->v.i = value;
	return 0;
}

static int json_lua_lazy_number(void *ud, double value)
{
	struct jz_tok *t = json_lua_lazy_tok(ud, JZ_NUM);

	if (!t)
		return -1;
	t->v.d = value;
	return 0;
}

static int json_lua_lazy_string(void *ud, const char *s, size_t len)
{
	return json_lua_lazy_text(ud, JZ_STR, s, len);
}

static int json_lua_lazy_key(void *ud, const char *s, size_t len)
{
	return json_lua_lazy_text(ud, JZ_KEY, s, len);
}

static int json_lua_lazy_open(struct jz_build *b, enum jz_kind kind)
{
	if (b->depth > BATCH_MAX_DEPTH || !json_lua_lazy_tok(b, kind))
		return -1;
	b->open[b->depth++] = (unsigned)(b->s->ntok - 1);
	b->est += JZ_TABLE_BYTES;
	return 0;
}

static int json_lua_lazy_map_begin(void *ud)
{
	return json_lua_lazy_open(ud, JZ_MAP);
}

static int json_lua_lazy_array_begin(void *ud)
{
	return json_lua_lazy_open(ud, JZ_ARR);
}

static int json_lua_lazy_close(void *ud)
{
	struct jz_build *b = ud;
	struct jz_tok *t = (struct jz_tok *)b->s->toks + b->open[--b->depth];

	t->v.next = (unsigned)b->s->ntok;
	return 0;
}

static int json_lua_lazy_event_end(void *ud, size_t index, const char *reject)
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
	.event_begin = json_lua_lazy_event_begin,
	.null_value = json_lua_lazy_null,
	.boolean = json_lua_lazy_boolean,
	.integer = json_lua_lazy_integer,
	.number = json_lua_lazy_number,
	.string = json_lua_lazy_string,
	.map_begin = json_lua_lazy_map_begin,
	.map_key = json_lua_lazy_key,
	.map_end = json_lua_lazy_close,
	.array_begin = json_lua_lazy_array_begin,
	.array_end = json_lua_lazy_close,
	.event_end = json_lua_lazy_event_end,
};

/* ---- batches ---- */

struct jz_push_args {
	const struct json_lua_lazy_scratch *s;
	size_t nevents;
};

/* Protected: [lightuserdata args] → the table of event proxies. */
static int json_lua_lazy_push_batch_protected(lua_State *L)
{
	const struct jz_push_args *a = lua_touserdata(L, 1);
	const struct json_lua_lazy_scratch *s = a->s;
	size_t toff = json_lua_lazy_toks_offset(a->nevents);
	size_t size = toff + s->ntok * sizeof(struct jz_tok) + s->nstr;
	struct jz_tape *tape;
	unsigned *first;
	size_t routable = 0;

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
	json_lua_lazy_meta_push(L, 2, 3, 4);           /* 5: the metatable */
	lua_createtable(L, (int)a->nevents, 0);        /* 6: the events */
	for (size_t i = 0; i < a->nevents; i++) {
		if (first[i] == JZ_NONE)
			continue;
		lua_createtable(L, 0, 0);
		lua_pushvalue(L, 5);
		lua_setmetatable(L, -2);
		lua_pushvalue(L, -1);
		lua_pushinteger(L, (lua_Integer)i);
		lua_rawset(L, 3);
		lua_rawseti(L, 6, (lua_Integer)i + 1);
	}
	return 1;
}

const char *json_lua_lazy_scratch_string(const struct json_lua_lazy_scratch *s, size_t i,
					 const char *key, size_t klen)
{
	const struct jz_tok *toks = s->toks;
	unsigned v;

	if (i >= s->nfirst || s->first[i] == JZ_NONE)
		return NULL;
	v = json_lua_lazy_find(toks, s->strs, s->first[i], key, klen);
	return v != JZ_NONE && toks[v].kind == JZ_STR ? s->strs + toks[v].v.off : NULL;
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
	lua_pushcfunction(L, json_lua_lazy_push_batch_protected);
	lua_pushlightuserdata(L, &a);
	status = lua_pcall(L, 1, 1, 0);
	if (status != LUA_OK) {
		lua_settop(L, top);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = BATCH_OK;
out:
	/* (a scratch that grew huge is freed when given back to the pool) */
	return rc;
}
