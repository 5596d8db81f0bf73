/*
 * json_lua.h — JSON ⇄ Lua values with exact numbers, on yajl.
 *
 * lua-cjson 2.1.0 decodes every number as a float and encodes with 14
 * significant digits, so event tables and the rules'
 * json.encode/json.decode are built here instead: integers stay Lua
 * integers both ways, floats stay floats, null is lua-cjson's json.null
 * (a NULL light userdata) so the two libraries agree on it.
 *
 * The batch builder (json_lua_builder) turns batch_parse's callbacks into
 * Lua tables: after a successful parse, the table of events is on top of
 * the stack, event i (0-based) at [i + 1]; rejected elements are absent.
 * The rules engine uses the lazy variant (json_lua_lazy.h), whose tables are
 * built on read; this eager one remains for tests and the fuzz target.
 */
#ifndef EGOI_JSON_LUA_H
#define EGOI_JSON_LUA_H

#include <stddef.h>

#include <lua.h>

struct batch;

/*
 * Parses body into out and pushes the events table onto L (always exactly
 * one value on success; nothing on failure). Returns a batch_status with err
 * set on failure. Runs in protected mode internally: a Lua memory error is
 * BATCH_NOMEM, never a longjmp out.
 */
int json_lua_push_batch(lua_State *L, const char *body, size_t len, size_t max_events,
			struct batch *out, char *err, size_t errlen);

/* Pushes the Lua value of one JSON text; 0, or -1 with err set (nothing pushed). */
int json_lua_decode(lua_State *L, const char *text, size_t len, char *err, size_t errlen);

/*
 * Encodes the value at idx as compact JSON into a new heap buffer (*out,
 * caller frees, NUL-terminated) of *out_len bytes. Tables with keys 1..n are
 * arrays, other tables objects (string keys only), empty tables {}; json.null
 * is null; NaN/inf, functions, cycles and depth > 64 are errors.
 * The text is built through L's allocator, so it counts against the state's
 * memory limit while it is built (the returned copy is plain malloc).
 * Returns 0, or -1 with err set, or JSON_LUA_NOMEM when an allocation was
 * refused (err "not enough memory").
 */
#define JSON_LUA_NOMEM (-2)
int json_lua_encode(lua_State *L, int idx, char **out, size_t *out_len, char *err, size_t errlen);

/* Pushes json.null (lua-cjson's sentinel). */
void json_lua_push_null(lua_State *L);

/* Lua-callable json.encode / json.decode (raise Lua errors on failure). */
int json_lua_l_encode(lua_State *L);
int json_lua_l_decode(lua_State *L);

#endif
