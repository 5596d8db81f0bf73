/*
 * rules_internal.h — what rules.c, rules_sandbox.c and rules_api*.c share.
 *
 * Direction: rules.c calls rules_sandbox.c, rules_api*.c, rules_budget.c and
 * rules_alloc.c; none of them calls a function of rules.c (rules_charge is
 * the exception: rules_api.c charges decisions to the state rules.c owns).
 *
 * The struct rules is reachable from any C function Lua calls through the
 * state's extra space (rules_from), so neither the API functions nor the
 * hooks need upvalues or registry look-ups.
 *
 * Limits: rules.c owns the counting allocator and the count hook. When a
 * limit is hit, r->fatal is set; the sandbox's pcall/xpcall re-raise while it
 * is set, so a rule cannot swallow a limit error and keep running. The time
 * limit is a deadline checked by the count hook and, before each call, by
 * the wrappers of rules_budget.c.
 *
 * Threads: everything here belongs to the one thread that owns the state.
 */
#ifndef EGOI_RULES_INTERNAL_H
#define EGOI_RULES_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include <lua.h>

#include "json_lua_lazy.h"
#include "util_buf.h"

struct decisions;

/* Longest message kept for an DECISION_ERROR (and for rules_new's err). */
#define RULES_ERR_MAX 300

/* Most decisions one route() call may take: bounds C memory per event. */
#define RULES_MAX_DECISIONS 100

enum rules_fatal {
	RULES_FATAL_NONE = 0,
	RULES_FATAL_INSTRUCTIONS,
	RULES_FATAL_MEMORY,
	RULES_FATAL_TIME,
};

/* The event being routed; decisions == NULL outside route(). */
struct rules_ctx {
	struct decisions *decisions;
	size_t event;                /* 0-based */
	size_t first;                /* decisions->count when route() started */
	const char *request_id;
	size_t event_bytes;          /* meta->event_bytes */
	size_t charged;              /* bytes of this event's decisions charged (rules_charge) */
	size_t forward_bytes;        /* this event's share of r->batch_forward_bytes */
};

struct rules {
	pthread_t owner;             /* the thread that may use it: the creator, or the last rules_adopt */
	lua_State *L;
	char *dir;                   /* directory prefix of the rules file, "" or ".../" */
	const struct rules_modules *modules_in;  /* rules_options.modules, during rules_new only */
	struct rules_modules *modules_out;       /* rules_options.record, during rules_new only */
	int dry_run;

	/* memory accounting (the lua_Alloc) */
	size_t mem_used, mem_limit;
	int mem_refused;             /* an allocation was refused since the last reset */
	size_t charged;              /* of mem_used: the batch's decisions (C heap, rules_charge) */

	/* forward() limits (rules_options) and what the batch has stored so far */
	size_t max_forward_body, max_batch_forward, batch_forward_bytes;
	const char *self_listen, *self_endpoint;

	/* instruction accounting (the count hook) */
	long instruction_limit;
	long instructions;
	int hook_step;

	/* time accounting (the count hook and rules_budget.c) */
	long time_limit_ms;          /* per entry into Lua, 0 = unlimited */
	long long deadline_ns;       /* CLOCK_MONOTONIC; 0 = none (unlimited or not in Lua) */

	/* env(): what rules may read (rules_options.env_names / env_pairs, copied) */
	char *env_names;             /* "A,B" or NULL = none */
	char **env_pairs;            /* "NAME=VALUE" NULL-terminated, or NULL = use getenv */

	enum rules_fatal fatal;
	char fatal_msg[128];

	struct rules_ctx ctx;

	/* each event's action as parsed (rules_event_action): at[i] is its
	 * offset in text, SIZE_MAX for none; action_count 0 between batches */
	struct util_buf action_text;
	size_t *action_at, action_cap, action_count;

	/* rules_end_batch: bytes of events (body and tables) parsed since the
	 * last full collection; more than RULES_GC_SLACK runs another */
#define RULES_GC_SLACK ((size_t)1 << 20)
	size_t gc_events;

	/* rules_alloc.c: free small blocks by size class, pool_kept bytes in all */
#define RULES_POOL_GRAIN 16
#define RULES_POOL_CLASSES 16
#define RULES_POOL_MAX (RULES_POOL_GRAIN * RULES_POOL_CLASSES)
#define RULES_POOL_KEEP ((size_t)64 << 10)
	void *pool[RULES_POOL_CLASSES];
	size_t pool_kept;
};

static inline struct rules *rules_from(lua_State *L)
{
	return *(struct rules **)lua_getextraspace(L);
}

/*
 * The state's lua_Alloc (rules_alloc.c; ud is the struct rules): refuses
 * growth beyond mem_limit, serves small blocks from r's free lists.
 * rules_alloc_release frees the lists (after lua_close).
 */
void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void rules_alloc_release(struct rules *r);

/*
 * Classifies a failed protected call (rules_sandbox.c): if it failed because
 * a limit was hit (or a memory error surfaced), records that in r->fatal.
 * Returns non-zero when the error is fatal for the current event. status is
 * lua_pcall's.
 */
int rules_sandbox_note_failure(struct rules *r, lua_State *L, int status);

/*
 * Counts n bytes of C heap held by a decision against the memory limit
 * until the batch ends (rules_end_batch), or the event's rule fails. The
 * decisions live outside the Lua heap, but one rule makes them: without
 * this, 100 forwards of a large body would hold 100 times the limit.
 * Returns 0, or -1 (nothing counted) when the limit would be exceeded.
 */
int rules_charge(struct rules *r, size_t n);

/*
 * Opens the sandboxed libraries into the global table and installs load,
 * require, pcall and xpcall replacements (require reads r->dir).
 * Runs in protected mode: raises Lua errors.
 */
void rules_sandbox_open(lua_State *L);

/*
 * Sets r->fatal to RULES_FATAL_TIME and raises "<where>time limit exceeded",
 * or "<where><what> refused: ..." when what is not NULL. Never returns.
 */
int rules_time_error(lua_State *L, const char *where, const char *what);

/*
 * Replaces the library functions whose cost is not constant by wrappers
 * that check the deadline and refuse calls whose estimated cost does not
 * fit the time left (rules_budget.c). Runs after rules_api_open.
 */
void rules_budget_open(lua_State *L);

/*
 * env() support (rules_env.c): copies opt's env_names / env_pairs into r
 * (-1 when out of memory), frees them (zeroing the values), and looks NAME
 * up: NULL unless NAME is listed in env_names (or, with env_pairs, given
 * there). The result stays valid while r lives (getenv's, or r's copy).
 */
struct rules_options;
int rules_env_copy(struct rules *r, const struct rules_options *opt);
void rules_env_free(struct rules *r);
const char *rules_env_get(const struct rules *r, const char *name);

/* Installs forward, write, drop, then rules_api_lib_open's. */
void rules_api_open(lua_State *L);

/* Installs json, log, print, env, hmac_sha256, now (rules_api_lib.c). */
void rules_api_lib_open(lua_State *L);

#endif
