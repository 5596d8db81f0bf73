/*
 * rules.c — the life of one Lua state: creation with limits,
 * loading the rules file, routing events, releasing batches.
 *
 * Design:
 * - Memory: a counting lua_Alloc (rules_alloc.c) refuses any growth beyond
 *   memory_limit, so Lua raises a memory error inside the rule (after its own
 *   emergency GC).
 * - CPU: a count hook fires every min(limit, 1000) VM instructions and raises
 *   "instruction limit exceeded" once a call has used its budget, or "time
 *   limit exceeded" once the call's deadline (lua_time_limit, monotonic wall
 *   clock) has passed. Each entry into Lua (chunk, init, one route call)
 *   gets a fresh budget and deadline. Time spent in C library functions is
 *   bounded by rules_budget.c before each call.
 * - Every entry into Lua is a lua_pcall of a C function with a traceback
 *   message handler, so no Lua error or allocation failure can escape as a
 *   panic. Between calls, the main thread's stack holds two fixed slots
 *   (the events table and the route function; SLOT_* below); the host only
 *   pushes values that need no allocation, which Lua guarantees to fit
 *   (LUA_MINSTACK), so code outside protected calls cannot fail.
 * - A failed route() call discards the event's partial decisions and leaves
 *   one DECISION_ERROR with the first line of the message.
 *
 * Files: rules.c calls into rules_sandbox.c (rules_sandbox_open, and
 * rules_sandbox_note_failure to classify a failed call), never the other
 * way round; both share only rules_internal.h.
 *
 * Threads: one struct rules per thread; nothing mutable is shared.
 */
#include "rules.h"
#include "rules_internal.h"
#include "clock.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "decisions.h"
#include "batch.h"
#include "json_lua.h"
#include "log.h"
#include "util.h"

/* Fixed slots of the main thread's stack between calls. */
enum {
	SLOT_EVENTS = 1,      /* the events table of the current batch, or nil */
	SLOT_ROUTE = 2,       /* the route function */
	SLOT_COUNT = 2,
};

#define RULES_HOOK_STEP 1000

/*
 * Checked at every entry point: only the owner uses r, and between calls the
 * stack holds exactly the fixed slots. Either failing is a bug in this file
 * (or a caller on the wrong thread), never something a rule or a batch does.
 */
#define RULES_ENTRY(r) \
	do { \
		assert(pthread_equal((r)->owner, pthread_self())); \
		assert(lua_gettop((r)->L) == SLOT_COUNT); \
	} while (0)

struct route_call {
	size_t index;
	const struct rules_meta *meta;
};

static void rules_hook(lua_State *L, lua_Debug *ar)
{
	struct rules *r = rules_from(L);
	lua_Debug where;

	char at[LUA_IDSIZE + 24] = "";
	int timed_out;

	(void)ar;
	r->instructions += r->hook_step;
	timed_out = (r->deadline_ns != 0 && clock_mono_ns() >= r->deadline_ns) || rules_stopping();
	if (!timed_out && (r->instruction_limit == 0 || r->instructions <= r->instruction_limit))
		return;
	/* Hooks run without a frame of their own: level 0 is the looping function. */
	if (lua_getstack(L, 0, &where) && lua_getinfo(L, "Sl", &where) && where.currentline > 0)
		snprintf(at, sizeof at, "%s:%d: ", where.short_src, where.currentline);
	if (timed_out)
		rules_time_error(L, at, NULL);
	r->fatal = RULES_FATAL_INSTRUCTIONS;
	snprintf(r->fatal_msg, sizeof r->fatal_msg, "%sinstruction limit exceeded (%ld)", at,
		 r->instruction_limit);
	lua_pushstring(L, r->fatal_msg);
	lua_error(L);
}

/* Turns any error object into a string and appends a traceback. */
static int rules_msghandler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

int rules_charge(struct rules *r, size_t n)
{
	if (r->mem_limit && n > r->mem_limit - r->mem_used) {
		r->mem_refused = 1;
		return -1;
	}
	r->mem_used += n;
	r->charged += n;
	r->ctx.charged += n;
	return 0;
}

/* Frees the kept actions' storage (rules_keep_actions grows it again). */
static void rules_actions_free(struct rules *r)
{
	util_buf_free(&r->action_text);
	free(r->action_at);
	r->action_at = NULL;
	r->action_cap = r->action_count = 0;
}

/* Gives the decisions' bytes back to the budget (they are freed with the batch). */
static void rules_release_charges(struct rules *r)
{
	r->mem_used -= r->charged;
	r->charged = 0;
	r->batch_forward_bytes = 0;
}

/* Gives the next entry into Lua a fresh instruction budget and deadline. */
static void rules_arm(struct rules *r)
{
	r->instructions = 0;
	r->deadline_ns = r->time_limit_ms > 0 ? clock_mono_ns() + r->time_limit_ms * 1000000LL : 0;
	/* Always hooked: rules_stop_all must reach a rule even without limits. */
	lua_sethook(r->L, rules_hook, LUA_MASKCOUNT, r->hook_step);
}

/*
 * Calls the function below the nargs values on top under the traceback
 * handler. On success the handler is removed and the results stay; on
 * failure the error message is on top. Returns lua_pcall's status.
 */
static int rules_pcall(struct rules *r, int nargs, int nresults)
{
	lua_State *L = r->L;
	int fidx = lua_gettop(L) - nargs;
	int status;

	lua_pushcfunction(L, rules_msghandler);
	lua_insert(L, fidx);
	r->fatal = RULES_FATAL_NONE;
	r->mem_refused = 0;
	rules_arm(r);
	status = lua_pcall(L, nargs, nresults, fidx);
	r->deadline_ns = 0;
	if (status == LUA_OK) {
		lua_remove(L, fidx);
		assert(lua_gettop(L) == fidx - 1 + nresults);
	} else {
		assert(lua_gettop(L) == fidx + 1);   /* the handler, the message */
	}
	return status;
}

/* First line of the failure on top of the stack, cut at a UTF-8 boundary. */
static void rules_error_text(struct rules *r, int status, const char *request_id, char *buf,
			     size_t len)
{
	const char *msg;
	size_t n;

	if (rules_sandbox_note_failure(r, r->L, status)) {
		msg = r->fatal_msg;
	} else {
		msg = lua_tostring(r->L, -1);
		if (!msg)
			msg = "unknown error";
		else if (log_enabled(LOG_DEBUG))
			log_msg(LOG_DEBUG, request_id, "rule failure: %s", msg);
	}
	n = strcspn(msg, "\r\n");
	if (n > RULES_ERR_MAX)
		n = RULES_ERR_MAX;
	while (n > 0 && msg[n] && ((unsigned char)msg[n] & 0xC0) == 0x80)
		n--;
	snprintf(buf, len, "%.*s", (int)n, msg);
}

/* Protected: opens the sandbox, runs the rules file and init(); returns route. */
static int rules_l_setup(lua_State *L)
{
	struct rules *r = rules_from(L);
	const struct rules_options *opt = lua_touserdata(L, 1);
	const char *path = opt->path;
	int loaded;

	rules_sandbox_open(L);
	rules_api_open(L);
	rules_budget_open(L);
	json_lua_lazy_guard(L);
	lua_settop(L, 0);
	if (opt->source) {
		lua_pushfstring(L, "@%s", path);   /* chunk name: errors read "path:line:" */
		loaded = luaL_loadbufferx(L, opt->source, opt->source_len, lua_tostring(L, -1), "t");
		lua_remove(L, -2);
	} else {
		loaded = luaL_loadfilex(L, path, "t");
	}
	if (loaded != LUA_OK)
		return lua_error(L);
	lua_call(L, 0, 0);
	if (lua_getglobal(L, "route") != LUA_TFUNCTION)
		return luaL_error(L, "%s: does not define a global function route(event, meta)", path);
	switch (lua_getglobal(L, "init")) {
	case LUA_TNIL:
		break;
	case LUA_TFUNCTION:
		rules_arm(r);
		lua_call(L, 0, 0);
		break;
	default:
		return luaL_error(L, "%s: init is not a function", path);
	}
	lua_settop(L, 1);
	return 1;
}

struct rules *rules_new(const struct rules_options *opt, char *err, size_t errlen)
{
	struct rules *r, *ret = NULL;
	const char *slash = strrchr(opt->path, '/');
	int status;

	r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->owner = pthread_self();
	r->mem_limit = opt->memory_limit;
	r->instruction_limit = opt->instruction_limit > 0 ? opt->instruction_limit : 0;
	r->hook_step = r->instruction_limit > 0 && r->instruction_limit < RULES_HOOK_STEP
			       ? (int)r->instruction_limit : RULES_HOOK_STEP;
	r->time_limit_ms = opt->time_limit_ms > 0 ? opt->time_limit_ms : 0;
	r->dry_run = opt->dry_run;
	r->max_forward_body = opt->max_forward_body;
	r->max_batch_forward = opt->max_batch_forward;
	r->self_listen = opt->self_listen;
	r->self_endpoint = opt->self_endpoint;
	if (rules_env_copy(r, opt) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->dir = strndup(opt->path, slash ? (size_t)(slash - opt->path) + 1 : 0);
	if (!r->dir) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r->L = lua_newstate(rules_alloc, r);
	if (!r->L) {
		snprintf(err, errlen, "%s: cannot create a Lua state (lua_memory_limit too low?)",
			 opt->path);
		goto out;
	}
	*(struct rules **)lua_getextraspace(r->L) = r;
	lua_gc(r->L, LUA_GCGEN, 0, 0);  /* event tables die young */

	lua_pushcfunction(r->L, rules_l_setup);
	lua_pushlightuserdata(r->L, (void *)opt);
	r->modules_in = opt->modules;
	r->modules_out = opt->record;
	status = rules_pcall(r, 1, 1);
	r->modules_in = NULL;
	r->modules_out = NULL;
	if (status != LUA_OK) {
		rules_error_text(r, status, NULL, err, errlen);
		goto out;
	}
	lua_pushnil(r->L);
	lua_insert(r->L, SLOT_EVENTS);
	assert(lua_gettop(r->L) == SLOT_COUNT);
	ret = r;
	r = NULL;
out:
	rules_free(r);
	return ret;
}

void rules_free(struct rules *r)
{
	if (!r)
		return;
	memset(&r->ctx, 0, sizeof r->ctx);
	if (r->L)
		lua_close(r->L);
	rules_alloc_release(r);
	rules_actions_free(r);
	rules_env_free(r);
	free(r->dir);
	free(r);
}

/*
 * Copies each event's action string out of the parse, before any rule runs,
 * so logs and `egoi-router test` show what E-goi sent even when a rule
 * assigns event.action (C heap: no Lua value is built for it). 0, or -1
 * when out of memory.
 */
static int rules_keep_actions(struct rules *r, const struct json_lua_lazy_scratch *s, size_t n)
{
	size_t *at = util_array_grow(r->action_at, &r->action_cap, n, sizeof *r->action_at, 64);

	r->action_count = 0;
	if (!at)
		return -1;
	r->action_at = at;
	util_buf_reset(&r->action_text);
	for (size_t i = 0; i < n; i++) {
		const char *a = json_lua_lazy_scratch_string(s, i, "action", 6);

		at[i] = a ? r->action_text.len : SIZE_MAX;
		if (a)
			util_buf_add(&r->action_text, a, strlen(a) + 1);
	}
	if (r->action_text.failed)
		return -1;
	r->action_count = n;
	return 0;
}

int rules_parse_batch(struct rules *r, const char *body, size_t len, size_t max_events,
		      struct batch *out, char *err, size_t errlen)
{
	lua_State *L = r->L;
	struct json_lua_lazy_scratch *scratch;
	size_t table_bytes;
	int rc;

	RULES_ENTRY(r);
	lua_pushnil(L);
	lua_replace(L, SLOT_EVENTS);
	r->action_count = 0;
	rules_release_charges(r);
	r->mem_refused = 0;
	scratch = json_lua_lazy_scratch_take();   /* shared: see json_lua_lazy_pool.c */
	if (!scratch) {
		snprintf(err, errlen, "out of memory");
		return BATCH_NOMEM;
	}
	rc = json_lua_push_batch_lazy(L, body, len, max_events, out, scratch, &table_bytes, err,
				      errlen);
	if (rc == BATCH_OK && rules_keep_actions(r, scratch, out->count) < 0) {
		lua_pop(L, 1);   /* the events table */
		rc = BATCH_NOMEM;
		snprintf(err, errlen, "out of memory");
	}
	json_lua_lazy_scratch_give(scratch);
	/* Lazy tables are built when read: refuse now a batch that could not be. */
	if (rc == BATCH_OK && r->mem_limit && table_bytes > r->mem_limit - r->mem_used) {
		r->mem_refused = 1;
		rc = BATCH_NOMEM;
	}
	if (rc == BATCH_OK) {
		r->gc_events += len + table_bytes;   /* the tape is about the body's size */
		assert(lua_gettop(L) == SLOT_COUNT + 1);   /* the events table */
		lua_replace(L, SLOT_EVENTS);
	}
	lua_settop(L, SLOT_COUNT);
	if (rc == BATCH_NOMEM) {
		/* The rules' memory limit, not the machine's: a batch this large can
		 * never fit, so it is the sender's problem (413), not a retryable 500. */
		if (r->mem_refused)
			rc = BATCH_TOO_BIG;
		if (rc == BATCH_TOO_BIG)
			snprintf(err, errlen, "batch needs more memory than lua_memory_limit allows");
		lua_pushnil(L);
		lua_replace(L, SLOT_EVENTS);
		lua_gc(L, LUA_GCCOLLECT);
	}
	return rc;
}

/* Protected: route(events[index + 1], meta). Arguments: route, events, struct route_call. */
static int rules_l_route(lua_State *L)
{
	const struct route_call *c = lua_touserdata(L, 3);
	const struct rules_meta *m = c->meta;

	lua_pushvalue(L, 1);
	if (lua_type(L, 2) != LUA_TTABLE || lua_rawgeti(L, 2, (lua_Integer)c->index + 1) != LUA_TTABLE)
		return luaL_error(L, "event %I is not routable", (lua_Integer)c->index + 1);
	lua_createtable(L, 0, 5);
	lua_pushinteger(L, (lua_Integer)m->index);
	lua_setfield(L, -2, "index");
	lua_pushinteger(L, (lua_Integer)m->batch_size);
	lua_setfield(L, -2, "batch_size");
	lua_pushnumber(L, m->received_at);
	lua_setfield(L, -2, "received_at");
	lua_pushstring(L, m->remote_addr);  /* NULL pushes nil */
	lua_setfield(L, -2, "remote_addr");
	lua_pushstring(L, m->request_id);
	lua_setfield(L, -2, "request_id");
	lua_call(L, 2, 0);
	return 0;
}

enum rules_route_result rules_route(struct rules *r, size_t i, const struct rules_meta *meta,
				    struct decisions *decisions)
{
	lua_State *L = r->L;
	struct route_call call = { .index = i, .meta = meta };
	char msg[RULES_ERR_MAX + 1];
	size_t before = decisions->count, n;
	struct decision *it;
	int status;

	RULES_ENTRY(r);
	r->ctx.decisions = decisions;
	r->ctx.event = i;
	r->ctx.first = before;
	r->ctx.request_id = meta->request_id;
	r->ctx.event_bytes = meta->event_bytes;
	r->ctx.charged = 0;
	r->ctx.forward_bytes = 0;
	lua_pushcfunction(L, rules_l_route);
	lua_pushvalue(L, SLOT_ROUTE);
	lua_pushvalue(L, SLOT_EVENTS);
	lua_pushlightuserdata(L, &call);
	status = rules_pcall(r, 3, 0);
	if (status == LUA_OK) {
		memset(&r->ctx, 0, sizeof r->ctx);
		assert(lua_gettop(L) == SLOT_COUNT);   /* route's results were dropped */
		lua_settop(L, SLOT_COUNT);
		return RULES_ROUTE_RAN;
	}
	rules_error_text(r, status, meta->request_id, msg, sizeof msg);
	/* the partial decisions go (decisions_truncate below): so do their charges */
	r->mem_used -= r->ctx.charged;
	r->charged -= r->ctx.charged;
	r->batch_forward_bytes -= r->ctx.forward_bytes;
	memset(&r->ctx, 0, sizeof r->ctx);
	assert(lua_gettop(L) == SLOT_COUNT + 2);   /* the handler, the message */
	lua_settop(L, SLOT_COUNT);
	if (r->fatal == RULES_FATAL_MEMORY)
		lua_gc(L, LUA_GCCOLLECT);  /* give the next event the whole budget back */

	decisions_truncate(decisions, before);
	it = decisions_push(decisions, DECISION_ERROR, i);
	if (!it)
		return RULES_ROUTE_NOMEM;
	n = strlen(msg);
	it->error = decisions_strndup(msg, n);
	if (!it->error) {
		decisions_truncate(decisions, before);
		return RULES_ROUTE_NOMEM;
	}
	it->len = n;
	return RULES_ROUTE_RULE_FAILED;
}

/* What outlived a young collection (a large batch's tape and tables) waits
 * for a major one, which generational mode runs only once the heap has
 * doubled: many MB per worker at batch 1000. Once the batches since the last
 * full collection brought RULES_GC_SLACK of events, collect. */
static void rules_collect_if_due(struct rules *r)
{
	if (r->gc_events > RULES_GC_SLACK) {
		lua_gc(r->L, LUA_GCCOLLECT);
		r->gc_events = 0;
	}
}

void rules_end_batch(struct rules *r)
{
	RULES_ENTRY(r);
	rules_release_charges(r);
	lua_pushnil(r->L);
	lua_replace(r->L, SLOT_EVENTS);
	r->action_count = 0;
	lua_settop(r->L, SLOT_COUNT);
	rules_collect_if_due(r);
}

void rules_adopt(struct rules *r)
{
	r->owner = pthread_self();
}

const char *rules_event_action(struct rules *r, size_t i)
{
	RULES_ENTRY(r);
	if (i >= r->action_count || r->action_at[i] == SIZE_MAX)
		return NULL;
	return r->action_text.p + r->action_at[i];
}

void rules_idle(struct rules *r)
{
	if (!r || !pthread_equal(r->owner, pthread_self()))
		return;   /* only the owner may touch the state */
	RULES_ENTRY(r);
	lua_gc(r->L, LUA_GCCOLLECT);
	r->gc_events = 0;
	rules_alloc_release(r);
	rules_actions_free(r);
}
