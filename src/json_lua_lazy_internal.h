/*
 * json_lua_lazy_internal.h — the tape shared by json_lua_lazy.c (the
 * builder and a batch's set-up) and json_lua_lazy_meta.c (the metatable
 * that reads it). Not an interface for other modules.
 *
 * Tape: a container token records how many entries it holds (len) and the
 * index of the token after its last descendant (next), so a top-level key
 * is found by skipping whole values; a map entry is a KEY token then the
 * value. Duplicate keys: the last one wins, as rawset did.
 *
 * Threads: as json_lua_lazy.h (a tape belongs to one lua_State).
 */
#ifndef EGOI_JSON_LUA_LAZY_INTERNAL_H
#define EGOI_JSON_LUA_LAZY_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include <lua.h>

#define JZ_NONE UINT_MAX

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

/* Where the tokens start in a tape of nevents events. */
static inline size_t json_lua_lazy_toks_offset(size_t nevents)
{
	size_t off = sizeof(struct jz_tape) + nevents * sizeof(unsigned);

	return (off + _Alignof(struct jz_tok) - 1) / _Alignof(struct jz_tok) * _Alignof(struct jz_tok);
}

/* The token after the value at t. */
static inline unsigned json_lua_lazy_skip(const struct jz_tok *toks, unsigned t)
{
	return toks[t].kind == JZ_MAP || toks[t].kind == JZ_ARR ? toks[t].v.next : t + 1;
}

/* The value token of key (klen bytes) in the map at token map, the last one
 * when the key is repeated (as rawset kept it), or JZ_NONE. */
static inline unsigned json_lua_lazy_find(const struct jz_tok *toks, const char *strs, unsigned map,
					  const char *key, size_t klen)
{
	unsigned t = map + 1, found = JZ_NONE;

	for (unsigned n = toks[map].len; n > 0; n--) {
		if (toks[t].len == klen && memcmp(strs + toks[t].v.off, key, klen) == 0)
			found = t + 1;
		t = json_lua_lazy_skip(toks, t + 1);
	}
	return found;
}

/*
 * Pushes a batch's metatable (json_lua_lazy_meta.c): its C closures share
 * the tape userdata at stack index tape, the table proxy → event index
 * (0-based) at index and the table proxy → {key → built container} at
 * built. Raises a Lua error when out of memory (called in protected mode).
 */
void json_lua_lazy_meta_push(lua_State *L, int tape, int index, int built);

#endif
