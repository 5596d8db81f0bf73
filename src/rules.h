/*
 * rules.h — the Lua rule engine: one struct rules per Lua state, used by
 * one worker at a time.
 *
 * rules_new creates a sandboxed lua_State (rules_sandbox.c), installs the
 * API given to rules (rules_api*.c: forward, write, drop, json, log, print,
 * env, hmac_sha256, now), loads the rules file once and runs its optional init().
 * For each batch: rules_parse_batch parses the events into lazy tables
 * (json_lua_lazy.c: fields are built when a rule reads them), rules_route
 * calls route(event, meta) for one event and collects its decisions into a
 * struct decisions, rules_end_batch lets the tables go.
 *
 * A rule that raises an error, exceeds the instruction limit or the memory
 * limit affects only its event: its partial decisions are discarded and an
 * DECISION_ERROR decision carries the message. The state stays usable.
 *
 * Threads: a struct rules and its lua_State are used by one thread at a
 * time: the one that called rules_new, or the last to call rules_adopt
 * (pipeline_engines.c lends states to workers one batch at a time). Every
 * entry point but rules_free and rules_adopt asserts it.
 */
#ifndef EGOI_RULES_H
#define EGOI_RULES_H

#include <stddef.h>

struct decisions;
struct batch;

struct rules_modules;

struct rules_options {
	const char *path;            /* the rules file; require() looks beside it */
	const char *source;          /* its text, read once (rules_source.h); NULL = read path now */
	size_t source_len;
	long instruction_limit;      /* per route() call, 0 = unlimited */
	size_t memory_limit;         /* bytes for the whole state, 0 = unlimited */
	long time_limit_ms;          /* per entry into Lua (chunk, init, route), 0 = unlimited */
	const char *env_names;       /* "A,B": the only variables env() reads; NULL = none */
	const char *const *env_pairs; /* "NAME=VALUE", NULL-terminated: env() reads only these
				       * (`egoi-router test --env`); NULL = getenv(env_names) */
	int dry_run;                 /* `egoi-router test`: log() goes to stderr only, env() reads --env only */
	size_t max_forward_body;     /* bytes of one forward() body, 0 = unlimited */
	size_t max_batch_forward;    /* bytes all forwards of a batch may store, 0 = unlimited */
	const char *self_listen;     /* this router's listen list and endpoint (borrowed, must */
	const char *self_endpoint;   /* outlive the state): forward() refuses them; NULL = none */
	/* require() while the file and init() run: a module found in `modules`
	 * is taken from there, not from disk; one read from disk is added to
	 * `record` (main compiling a generation). Both may be NULL; a module
	 * first required later, inside route(), is read from disk. */
	const struct rules_modules *modules;
	struct rules_modules *record;
};

struct rules_meta {
	size_t index;                /* 1-based, as meta.index */
	size_t batch_size;
	double received_at;          /* unix seconds */
	const char *remote_addr;
	const char *request_id;
	size_t event_bytes;          /* the event's original JSON: a default forward stores it */
};

struct rules;

/*
 * Compiles the rules file into a new state and runs init() if defined.
 * NULL with err set ("rules.lua:12: ...") when the file does not compile,
 * does not define route, or init() fails.
 */
struct rules *rules_new(const struct rules_options *opt, char *err, size_t errlen);

/* Closes the state; r may be NULL. */
void rules_free(struct rules *r);

/* Parses a batch body into event tables held by r (see json_lua_push_batch). */
int rules_parse_batch(struct rules *r, const char *body, size_t len, size_t max_events,
		      struct batch *out, char *err, size_t errlen);

/*
 * Routes event i (0-based, must be a routable event of the last parsed
 * batch): calls route(event, meta) and appends its decisions to decisions.
 * Returns what happened (enum rules_route_result).
 */
enum rules_route_result {
	RULES_ROUTE_NOMEM = -1,       /* out of memory in C; decisions as before the call */
	RULES_ROUTE_RAN = 0,          /* the rule ran (no decision means drop "no_rule" later) */
	RULES_ROUTE_RULE_FAILED = 1,  /* the rule failed: one DECISION_ERROR replaced its
				       * partial decisions */
};
enum rules_route_result rules_route(struct rules *r, size_t i, const struct rules_meta *meta,
				    struct decisions *decisions);

/* Releases the event tables of the last batch; after each RULES_GC_SLACK of
 * events a full collection (otherwise Lua's own pacing collects: a step per
 * batch was a young collection per request at batch 1). */
void rules_end_batch(struct rules *r);

/*
 * The worker is going idle (its connection closed): a full collection and
 * the allocator's free lists returned to malloc, so a state that waits
 * costs its live data only. Rule globals stay. Does nothing when called
 * from a thread other than the owner's, or with NULL.
 */
void rules_idle(struct rules *r);

/*
 * Process stop, past the drain grace: from now on every Lua call in every
 * state fails at its next hook or library call, so no worker stays in a
 * rule (a batch of many events that each run to lua_time_limit could take
 * far longer than the grace). rules_stopping tells a failure caused by it
 * from a rule error. Threads: any (an atomic flag).
 */
void rules_stop_all(void);
int rules_stopping(void);

/*
 * The calling thread becomes r's owner. Only for a state handed over under
 * a lock that orders the previous owner's last use before this call.
 */
void rules_adopt(struct rules *r);

/* The action string of routable event i as parsed (C heap, copied from the
 * tape before any rule ran), or NULL; valid until the next parse or
 * rules_end_batch. */
const char *rules_event_action(struct rules *r, size_t i);

#endif
