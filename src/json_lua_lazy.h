/*
 * json_lua_lazy.h — lazy event tables: a batch's events reach Lua as
 * tables whose fields are built only when a rule reads them.
 *
 * The parse (batch_parse, once per batch) records every event as a tape
 * of tokens (kind, number, string bytes, the end of each container) in a
 * Lua userdata, so it counts against the state's memory limit and lives
 * as long as any event of its batch is reachable (a rule may keep an
 * event in a global and read it in a later batch). Each event is an empty
 * table (a proxy) with the batch's metatable:
 *
 * - __index builds one top-level field: a scalar is pushed from the tape, an
 *   object or array is built once as a real table (whole subtree) and kept,
 *   so event.contact == event.contact and nested values behave as before;
 * - anything that needs the whole event first turns the proxy into the
 *   real table it stands for (all fields, the ones already built reused,
 *   metatable removed): assignment (__newindex), pairs (__pairs),
 *   json.encode, and, through json_lua_lazy_guard's wrappers, next, rawget,
 *   rawset, rawlen, getmetatable and setmetatable. After that the event is
 *   an ordinary table in every respect.
 * - # needs nothing: an event is a JSON object, its border is 0 either way.
 *
 * A batch whose events would not fit in the memory limit once built is
 * still refused at parse time (estimate below), as when every table was
 * built up front.
 *
 * Threads: a lua_State is used by one thread at a time; the only globals
 * are addresses used as registry keys.
 */
#ifndef EGOI_JSON_LUA_LAZY_H
#define EGOI_JSON_LUA_LAZY_H

#include <stddef.h>

#include <lua.h>

struct batch;

/* Reusable parse storage (C heap): zero-initialise, free with json_lua_lazy_scratch_free. */
struct json_lua_lazy_scratch {
	void *toks;                  /* the tape's tokens */
	size_t ntok, captok;
	char *strs;                  /* string bytes, each NUL-terminated */
	size_t nstr, capstr;
	unsigned *first;             /* event i's first token, or UINT_MAX (not an event) */
	size_t nfirst, capfirst;
};

void json_lua_lazy_scratch_free(struct json_lua_lazy_scratch *s);

/* The C heap s's buffers hold (their capacity). */
size_t json_lua_lazy_scratch_bytes(const struct json_lua_lazy_scratch *s);

/*
 * The process-wide pool of scratches (json_lua_lazy_pool.c), so workers do
 * not each keep a tape's worth of C heap between batches. take returns a
 * kept scratch or a new empty one (NULL when out of memory); give returns
 * it: kept if the pool holds fewer than JSON_LUA_LAZY_POOL_KEEP and its
 * buffers are at most JSON_LUA_LAZY_SCRATCH_KEEP, else freed. Any thread.
 */
#define JSON_LUA_LAZY_POOL_KEEP 4
#define JSON_LUA_LAZY_SCRATCH_KEEP ((size_t)4 << 20)
struct json_lua_lazy_scratch *json_lua_lazy_scratch_take(void);
void json_lua_lazy_scratch_give(struct json_lua_lazy_scratch *s);
/* Bytes held by the kept scratches, their number in *count (tests, metrics). */
size_t json_lua_lazy_pool_bytes(size_t *count);

/*
 * Like json_lua_push_batch (json_lua.h): parses body into out and pushes a
 * table of event proxies (event i at [i + 1], rejected elements absent);
 * nothing pushed on failure. *table_bytes is a lower bound of the Lua
 * memory the events' tables take once all are built (what the eager build
 * allocated), so the caller can refuse a batch that could not be built.
 */
int json_lua_push_batch_lazy(lua_State *L, const char *body, size_t len, size_t max_events,
			     struct batch *out, struct json_lua_lazy_scratch *scratch,
			     size_t *table_bytes, char *err, size_t errlen);

/*
 * The string value of top-level key (klen bytes) of event i as the last
 * json_lua_push_batch_lazy on s parsed it (decoded, NUL-terminated, owned
 * by s until its next parse), or NULL when i was not an event or its key
 * is absent or holds no string. For what the host needs before any rule
 * runs (each event's action), without building Lua values.
 */
const char *json_lua_lazy_scratch_string(const struct json_lua_lazy_scratch *s, size_t i,
					 const char *key, size_t klen);

/*
 * If the value at idx is an event proxy, turns it into its real table (may
 * raise a Lua memory error); otherwise does nothing. Returns 1 when it
 * materialised something, else 0.
 */
int json_lua_lazy_materialize(lua_State *L, int idx);

/* Non-raising variant for code that must not longjmp: 0, or -1 when out of memory. */
int json_lua_lazy_materialize_protected(lua_State *L, int idx);

/*
 * Wraps the globals that bypass metamethods (next, rawget, rawset, rawlen,
 * getmetatable, setmetatable) so they see an event proxy as the real
 * table. Runs in protected mode (state set-up), after the sandbox is open.
 */
void json_lua_lazy_guard(lua_State *L);

#endif
