/*
 * fuzz_json_lua.c — libFuzzer target for json_lua_push_batch,
 * json_lua_decode and json_lua_encode.
 *
 * Purpose: any byte string must leave these functions with the Lua stack
 * as documented (one value on success, nothing on failure), and the JSON
 * written for a decoded value must read back as the same value:
 *   decode(input) = T1, encode(T1) = e1, decode(e1) = T2, encode(T2) = e2
 * with T1 equal to T2 (same types, integer/float subtype, keys, values)
 * and e2 identical to e1 (one round trip reaches a fixed point) up to the
 * order of object members, which Lua tables do not keep (fz_same_text;
 * fuzz_equal.c compares the values).
 * For batches, event i is in the table exactly when batch_parse marked it
 * routable, and it encodes like the decoding of its own span.
 * A broken invariant calls abort(), which libFuzzer reports as a crash.
 *
 * Design: one lua_State for the whole run, as a worker keeps one; a GC
 * step every FUZZ_GC_EVERY inputs (and a full collection now and then) so
 * the collector runs over the tables the parsers built.
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

#include "batch.h"
#include "fuzz_equal.h"
#include "json_lua.h"

#define FUZZ_MAX_EVENTS 100000
#define FUZZ_GC_EVERY 64
#define FUZZ_FULL_GC_EVERY 4096

/*
 * e1 and e2 are the same JSON text up to the order of object members.
 * json_lua_encode walks tables with lua_next, whose order depends on how
 * the table was filled (colliding keys land in different slots when they
 * are inserted in a different order), and decoding e1 inserts the keys in
 * e1's order, not the input's. So byte equality is only promised when no
 * object has two members: otherwise the texts must have the same length
 * and the same bytes, and decode to the same value (idx holds decode(e1)).
 */
static int fz_same_text(lua_State *L, const char *e1, size_t n1, const char *e2, size_t n2,
			int idx)
{
	size_t count[256] = { 0 };
	char err[256];
	size_t i;
	int same;

	if (n1 == n2 && memcmp(e1, e2, n1) == 0)
		return 1;
	if (n1 != n2)
		return 0;
	for (i = 0; i < n1; i++) {
		count[(unsigned char)e1[i]]++;
		count[(unsigned char)e2[i]]--;
	}
	for (i = 0; i < 256; i++)
		if (count[i] != 0)
			return 0;
	if (json_lua_decode(L, e2, n2, err, sizeof err) != 0)
		return 0;
	same = fuzz_equal(L, idx, -1, 0);
	lua_pop(L, 1);
	return same;
}

/* Decode, encode, decode, encode; compares the values and the two texts. */
static void fz_round_trip(lua_State *L, const char *text, size_t len)
{
	int top = lua_gettop(L);
	char err[256];
	char *e1 = NULL, *e2 = NULL;
	size_t n1 = 0, n2 = 0;

	if (json_lua_decode(L, text, len, err, sizeof err) != 0) {
		FZ_CHECK(lua_gettop(L) == top);
		FZ_CHECK(err[0] != '\0');
		return;
	}
	FZ_CHECK(lua_gettop(L) == top + 1);
	if (json_lua_encode(L, -1, &e1, &n1, err, sizeof err) != 0) {
		/* JSON has no NaN; an overflowing literal (1e999) decodes to inf.
		 * Depth and UTF-8 were checked by the decoder already. */
		FZ_CHECK(strcmp(err, "cannot encode NaN or infinity") == 0);
		FZ_CHECK(e1 == NULL);
		FZ_CHECK(lua_gettop(L) == top + 1);
		lua_settop(L, top);
		return;
	}
	FZ_CHECK(lua_gettop(L) == top + 1);
	FZ_CHECK(e1 != NULL && e1[n1] == '\0');

	if (json_lua_decode(L, e1, n1, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_json_lua: re-encoding does not decode: %s\n", err);
		abort();
	}
	FZ_CHECK(lua_gettop(L) == top + 2);
	FZ_CHECK(fuzz_equal(L, top + 1, top + 2, 0));
	FZ_CHECK(lua_gettop(L) == top + 2);
	if (json_lua_encode(L, top + 2, &e2, &n2, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_json_lua: second encode failed: %s\n", err);
		abort();
	}
	FZ_CHECK(lua_gettop(L) == top + 2);
	if (!fz_same_text(L, e1, n1, e2, n2, top + 2)) {
		fprintf(stderr, "fuzz_json_lua: not a fixed point:\n  %.*s\n  %.*s\n",
			(int)n1, e1, (int)n2, e2);
		abort();
	}
	free(e1);
	free(e2);
	lua_settop(L, top);
}

/* json_lua_push_batch: stack, table contents against the spans. */
static void fz_batch(lua_State *L, const char *body, size_t len)
{
	static struct batch b;
	int top = lua_gettop(L);
	char err[256], err2[256];
	char *from_table = NULL, *from_span = NULL;
	size_t i, n1, n2;
	int rc, rc1, rc2, t;

	rc = json_lua_push_batch(L, body, len, FUZZ_MAX_EVENTS, &b, err, sizeof err);
	FZ_CHECK(b.parser == NULL);
	if (rc != BATCH_OK) {
		FZ_CHECK(rc == BATCH_INVALID || rc == BATCH_TOO_MANY || rc == BATCH_NOMEM);
		FZ_CHECK(lua_gettop(L) == top);
		FZ_CHECK(err[0] != '\0');
		FZ_CHECK(b.count == 0);
		return;
	}
	FZ_CHECK(lua_gettop(L) == top + 1);
	FZ_CHECK(lua_type(L, -1) == LUA_TTABLE);
	t = lua_gettop(L);
	for (i = 0; i < b.count; i++) {
		const struct batch_event *ev = &b.events[i];

		FZ_CHECK(lua_checkstack(L, 4));
		if (lua_rawgeti(L, t, (lua_Integer)i + 1) != LUA_TTABLE) {
			FZ_CHECK(ev->reject != NULL);
			FZ_CHECK(lua_isnil(L, -1));
			lua_pop(L, 1);
			continue;
		}
		FZ_CHECK(ev->reject == NULL);
		FZ_CHECK(json_lua_decode(L, body + ev->start, ev->end - ev->start, err,
					 sizeof err) == 0);
		FZ_CHECK(fuzz_equal(L, -2, -1, 0));
		rc1 = json_lua_encode(L, -2, &from_table, &n1, err, sizeof err);
		rc2 = json_lua_encode(L, -1, &from_span, &n2, err2, sizeof err2);
		FZ_CHECK(rc1 == rc2);
		if (rc1 == 0)
			FZ_CHECK(n1 == n2 && memcmp(from_table, from_span, n1) == 0);
		else
			FZ_CHECK(strcmp(err, err2) == 0);
		free(from_table);
		free(from_span);
		from_table = from_span = NULL;
		lua_pop(L, 2);
	}
	/* Nothing else in the table: keys are exactly the routable indexes. */
	lua_pushnil(L);
	while (lua_next(L, t) != 0) {
		FZ_CHECK(lua_isinteger(L, -2));
		FZ_CHECK(lua_tointeger(L, -2) >= 1 && (size_t)lua_tointeger(L, -2) <= b.count);
		lua_pop(L, 1);
	}
	lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lua_State *L;
	static unsigned long runs;
	const char *text = (const char *)data;
	int top;

	if (!L) {
		L = luaL_newstate();
		FZ_CHECK(L != NULL);
	}
	top = lua_gettop(L);
	fz_batch(L, text, size);
	FZ_CHECK(lua_gettop(L) == top);
	fz_round_trip(L, text, size);
	FZ_CHECK(lua_gettop(L) == top);
	if (++runs % FUZZ_FULL_GC_EVERY == 0)
		lua_gc(L, LUA_GCCOLLECT, 0);
	else if (runs % FUZZ_GC_EVERY == 0)
		lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
