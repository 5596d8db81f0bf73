/*
 * pipeline.h — one batch through the router: parse → route → commit.
 *
 * A struct pipeline is a worker's private set of tools (file sink, decision
 * list, batch storage, the routed batch's actions), reused for every
 * batch. The file sink is opened by pipeline_open_files (http.c calls it
 * when civetweb starts the worker, as the user it runs as, before it
 * serves). The Lua state is not the worker's: pipeline_route borrows one
 * from the shared set (pipeline_engines.h) for the parse and the rules and
 * returns it before the commit, with each event's action copied out.
 * http.c runs pipeline_process per request; `egoi-router test` runs
 * pipeline_route only and prints the decisions instead of committing them.
 *
 * Threads: one struct pipeline per thread, never shared.
 */
#ifndef EGOI_PIPELINE_H
#define EGOI_PIPELINE_H

#include <stddef.h>

#include "decisions.h"
#include "batch.h"
#include "rules_source.h"
#include "util_buf.h"

struct config;
struct deliver;
struct pipeline_engine;
struct pipeline_engines;
struct outbox_writer;
struct sink_file;

/*
 * What every worker shares (owned by main / the caller): the config, the
 * Lua states they borrow, the published rules text (main replaces it on
 * SIGHUP; each state is rebuilt when next borrowed), the group committer (NULL for a dry
 * run, which commits nothing) and what to call once a batch committed
 * forwards: main wires on_commit to deliver_notify, so intake knows nothing
 * of the delivery thread (NULL = nobody to tell).
 */
struct pipeline_shared {
	const struct config *cfg;
	struct pipeline_engines *engines; /* the Lua states workers borrow (main: lua_states of
	                                     them); NULL: each pipeline makes a set of one */
	struct rules_current published; /* the rules text; none published: workers read cfg->rules_path */
	struct outbox_writer *writer;
	void (*on_commit)(void *arg); /* called by the worker thread, after the commit */
	void *on_commit_arg;
	struct deliver *deliver;      /* for /readyz's heartbeat (readiness.c) only: the
	                                 pipeline itself signals commits through on_commit */
	const char *const *env_pairs; /* `test --env`: all env() sees; NULL = getenv(rules_env) */
};

struct pipeline {
	struct pipeline_shared *sh; /* borrowed */
	const struct config *cfg;     /* sh->cfg */
	int dry_run;                  /* no outbox, no files */
	int write_sync;               /* write_sync = batch */
	struct pipeline_engines *own_engines; /* owned: a set of one, made on the first batch
	                                         when sh->engines is NULL */
	struct util_buf action_text;  /* the routed batch's actions, NUL-terminated, copied
	                                 out of the Lua state before it is returned */
	size_t *action_at;            /* per event: offset in action_text, SIZE_MAX = none */
	size_t action_count, action_cap;
	struct sink_file *sink;       /* owned, pipeline_open_files */
	struct decisions decisions;
	struct batch batch;
	long hop;                     /* X-Router-Hop of the batch being processed (0 = none);
	                                 the caller sets it before pipeline_process */
};

/* Where a batch stopped: callers tell "no rules" from "bad batch" by it. */
enum pipeline_stage {
	PIPELINE_DONE = 0,            /* routed (and committed, for pipeline_process) */
	PIPELINE_RULES_UNAVAILABLE,   /* no Lua state: the rules did not compile (500) */
	PIPELINE_SETUP,               /* output_dir could not be opened (500) */
	PIPELINE_PARSE,               /* the body was refused (400, 413, 500) */
	PIPELINE_ROUTE,               /* out of memory or stopping while routing (500, 503) */
	PIPELINE_COMMIT,              /* the decisions could not be made durable (503) */
};

struct pipeline_result {
	enum pipeline_stage stage;
	int http_status;              /* 200, 400, 413, 500 or 503 */
	size_t accepted;              /* events routed, whatever the decision (rule errors too) */
	size_t rejected;              /* malformed elements of "events" */
	struct decisions_summary summary;
	char error[256];              /* reason when http_status != 200 */
};

/* Initialises p; nothing is opened yet. sh is borrowed. */
void pipeline_init(struct pipeline *p, struct pipeline_shared *sh);

/*
 * Opens p's file sink on output_dir unless it is open or p is a dry run.
 * Call from the thread (and so as the user) that will use p. 0, or -1 with
 * err; pipeline_route tries again on every batch until it is open.
 */
int pipeline_open_files(struct pipeline *p, char *err, size_t errlen);

/* Closes everything p opened; p may be zeroed. */
void pipeline_free(struct pipeline *p);

/*
 * Borrows a Lua state (waiting while all are busy; built or rebuilt from
 * the published rules when it has none or an older generation), parses
 * body and routes every event, copies the actions out and returns the
 * state; decisions end up in p->decisions (one
 * DECISION_REJECT per malformed element, one DECISION_ERROR per failed rule).
 * Returns 0, or -1 with res->stage, res->http_status and res->error set.
 * received_at, remote_addr and request_id fill meta for the rules.
 */
int pipeline_route(struct pipeline *p, const char *body, size_t len, double received_at,
		   const char *remote_addr, const char *request_id, struct pipeline_result *res);

/*
 * The routed batch, between pipeline_route and pipeline_end: its events in
 * order, each one's E-goi action (NULL for a rejected element) and its
 * decisions (*n of them from the pointer returned; decisions are sorted by
 * event). Callers read the batch only through these.
 */
size_t pipeline_event_count(const struct pipeline *p);
const struct batch_event *pipeline_event(const struct pipeline *p, size_t i);
const char *pipeline_event_action(const struct pipeline *p, size_t i);
const struct decision *pipeline_decisions_of(const struct pipeline *p, size_t i, size_t *n);

/* Ends the routed batch (drops its decisions and actions). */
void pipeline_end(struct pipeline *p);

/*
 * The worker goes idle (its connection closed): p's per-batch arrays are
 * freed (the next batch grows them again), and p's own Lua state, if it
 * has one (no shared set), shrinks to its live data. The shared set's
 * states are shrunk by the daemon once they are quiet
 * (pipeline_engines_idle), not on every close: under connections that
 * close after each batch that full collection cost 10% of requests/s.
 * Call from p's thread, between batches.
 */
void pipeline_idle(struct pipeline *p);

/*
 * The whole request: pipeline_route, then decisions_commit, then
 * sh->on_commit when forwards were committed. res->http_status is 200 only when every decision is
 * durable. Always leaves p ready for the next batch.
 */
void pipeline_process(struct pipeline *p, const char *body, size_t len, double received_at,
		      const char *remote_addr, const char *request_id,
		      struct pipeline_result *res);

#endif
