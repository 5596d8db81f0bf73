/*
 * pipeline.c — one batch through the router (see pipeline.h).
 *
 * The order is the product's promise: every decision of the batch is made
 * first (a failing rule only turns its own event into an error decision),
 * then decisions_commit appends lines and commits forwards and dead letters in
 * one outbox transaction, and only then is the batch answered 200.
 *
 * Metrics: events and decisions are counted once the batch is committed
 * (pipeline_count), not while routing: a batch answered 503 is sent again
 * by E-goi, and counting it twice would make the counters disagree with
 * what the router durably did. Rule errors are counted as they happen, like
 * their log line, since a failing rule is worth seeing even when its batch
 * is then not committed.
 */
#include "pipeline.h"
#include "pipeline_engines.h"
#include "rules_load.h"
#include "clock.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "rules.h"
#include "sink_file.h"
#include "util.h"

void pipeline_init(struct pipeline *p, struct pipeline_shared *sh)
{
	memset(p, 0, sizeof *p);
	p->sh = sh;
	p->cfg = sh->cfg;
	p->dry_run = sh->writer == NULL;
	/* a config built by hand may leave write_sync unset: none */
	p->write_sync = p->cfg->write_sync && strcmp(p->cfg->write_sync, "batch") == 0;
	decisions_init(&p->decisions);
}

/* Frees the copied actions' storage; the next batch grows it again. */
static void pipeline_actions_free(struct pipeline *p)
{
	util_buf_free(&p->action_text);
	free(p->action_at);
	p->action_at = NULL;
	p->action_count = p->action_cap = 0;
}

void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	pipeline_engines_free(p->own_engines);
	sink_file_close(p->sink);
	decisions_free(&p->decisions);
	batch_free(&p->batch);
	pipeline_actions_free(p);
	memset(p, 0, sizeof *p);
}

#define PIPELINE_RULES_RETRY_S 30

/*
 * Builds the borrowed slot's Lua state from the published rules text when
 * it has none or a reload published a newer generation. A rebuild that
 * fails keeps the old state (the text compiled in main before it was
 * published, so only memory can make it fail here).
 */
static int pipeline_build_engine(struct pipeline *p, struct pipeline_engine *slot, char *err,
				 size_t errlen)
{
	unsigned long want = atomic_load(&p->sh->published.generation);
	struct rules_source *src;
	struct rules *r;
	struct rules_options opt;

	if (slot->rules && (slot->generation == want || clock_mono() < slot->retry_at))
		return 0;
	rules_load_options(p->cfg, &opt);
	opt.env_pairs = p->sh->env_pairs;
	opt.dry_run = p->dry_run;
	/* restart keys: the start-up config, which outlives every snapshot */
	opt.self_listen = p->sh->cfg->listen;
	opt.self_endpoint = p->sh->cfg->endpoint;
	src = rules_current_get(&p->sh->published);
	if (src) {
		opt.source = src->text;
		opt.source_len = src->len;
		opt.modules = &src->modules;
		want = src->generation;
	}
	r = rules_new(&opt, err, errlen);
	rules_source_unref(src);
	if (!r) {
		if (!slot->rules)
			return -1;
		log_msg(LOG_ERROR, NULL, "rules generation %lu not applied in one Lua state: %s; "
					 "it keeps generation %lu and tries again in %d s", want, err,
			slot->generation, PIPELINE_RULES_RETRY_S);
		/* not on every batch: a rebuild costs a whole Lua state */
		slot->retry_at = clock_mono() + PIPELINE_RULES_RETRY_S;
		return 0;
	}
	rules_free(slot->rules);
	slot->rules = r;
	slot->generation = want;
	return 0;
}

int pipeline_open_files(struct pipeline *p, char *err, size_t errlen)
{
	if (p->dry_run || p->sink)
		return 0;
	p->sink = sink_file_open(p->sh->cfg->output_dir, p->write_sync ? SINK_SYNC_BATCH
								   : SINK_SYNC_NONE, err, errlen);
	return p->sink ? 0 : -1;
}

/* The set of Lua states p borrows from: the shared one, or p's own set of one. */
static struct pipeline_engines *pipeline_engines_of(struct pipeline *p)
{
	if (p->sh->engines)
		return p->sh->engines;
	if (!p->own_engines)
		p->own_engines = pipeline_engines_new(1);
	return p->own_engines;
}

/*
 * Copies each event's action out of the Lua state, which goes back to the
 * set before the batch is committed, counted and printed. 0, or -1 when
 * out of memory.
 */
static int pipeline_keep_actions(struct pipeline *p, struct rules *r)
{
	size_t *at = util_array_grow(p->action_at, &p->action_cap, p->batch.count,
				     sizeof *p->action_at, 64);

	if (!at)
		return -1;
	p->action_at = at;
	util_buf_reset(&p->action_text);
	for (size_t i = 0; i < p->batch.count; i++) {
		const char *a = p->batch.events[i].reject ? NULL : rules_event_action(r, i);

		at[i] = a ? p->action_text.len : SIZE_MAX;
		if (a)
			util_buf_add(&p->action_text, a, strlen(a) + 1);
	}
	if (p->action_text.failed)
		return -1;
	p->action_count = p->batch.count;
	return 0;
}

/* Parses body with r and routes every event: pipeline_route's work once r is ready. */
static int pipeline_route_with(struct pipeline *p, struct rules *r, const char *body, size_t len,
			       struct rules_meta *meta, struct pipeline_result *res)
{
	int rc = rules_parse_batch(r, body, len, p->cfg->max_events, &p->batch, res->error,
				   sizeof res->error);

	if (rc != BATCH_OK) {
		res->stage = PIPELINE_PARSE;
		res->http_status = rc == BATCH_TOO_MANY || rc == BATCH_TOO_BIG ? 413
				   : rc == BATCH_INVALID ? 400 : 500;
		return -1;
	}
	meta->batch_size = p->batch.count;
	for (size_t i = 0; i < p->batch.count; i++) {
		const struct batch_event *ev = &p->batch.events[i];
		enum rules_route_result routed;
		struct decision *it;

		if (ev->reject) {
			it = decisions_push(&p->decisions, DECISION_REJECT, i);
			if (!it || !(it->error = decisions_strndup(ev->reject, strlen(ev->reject))))
				goto nomem;
			it->len = strlen(ev->reject);
			res->rejected++;
			continue;
		}
		meta->index = i + 1;
		meta->event_bytes = ev->end - ev->start;
		routed = rules_route(r, i, meta, &p->decisions);
		if (routed == RULES_ROUTE_NOMEM)
			goto nomem;
		if (routed == RULES_ROUTE_RULE_FAILED && rules_stopping()) {
			/* Not a rule error: the stop cut the batch short; E-goi sends it again. */
			snprintf(res->error, sizeof res->error, "stopping: batch not routed");
			res->stage = PIPELINE_ROUTE;
			res->http_status = 503;
			return -1;
		}
		if (routed == RULES_ROUTE_RULE_FAILED) {
			const struct decision *last = &p->decisions.items[p->decisions.count - 1];
			const char *action = rules_event_action(r, i);

			metrics_rule_error();
			log_msg(LOG_WARN, meta->request_id, "rule error on event %zu (%s): %s", i + 1,
				action ? action : "?", last->error ? last->error : "");
		}
		/* A rule error is still accepted: the event is kept as a dead letter. */
		res->accepted++;
	}
	if (pipeline_keep_actions(p, r) < 0)
		goto nomem;
	return 0;

nomem:
	snprintf(res->error, sizeof res->error, "out of memory while routing");
	res->stage = PIPELINE_ROUTE;
	res->http_status = 500;
	return -1;
}

int pipeline_route(struct pipeline *p, const char *body, size_t len, double received_at,
		   const char *remote_addr, const char *request_id, struct pipeline_result *res)
{
	struct rules_meta meta = {
		.received_at = received_at,
		.remote_addr = remote_addr,
		.request_id = request_id,
	};
	struct pipeline_engines *set = pipeline_engines_of(p);
	struct pipeline_engine *slot;
	double waited = 0;
	int rc = -1;

	memset(res, 0, sizeof *res);
	p->action_count = 0;
	if (!set) {
		snprintf(res->error, sizeof res->error, "out of memory");
		res->stage = PIPELINE_RULES_UNAVAILABLE;
		res->http_status = 500;
		return -1;
	}
	slot = pipeline_engines_borrow(set, &waited);
	if (waited > 0)
		metrics_lua_state_wait(waited);
	if (pipeline_build_engine(p, slot, res->error, sizeof res->error) < 0 ||
	    pipeline_open_files(p, res->error, sizeof res->error) < 0) {
		log_msg(LOG_ERROR, request_id, "worker set-up failed: %s", res->error);
		res->stage = slot->rules ? PIPELINE_SETUP : PIPELINE_RULES_UNAVAILABLE;
		res->http_status = 500;
		goto out;
	}
	rc = pipeline_route_with(p, slot->rules, body, len, &meta, res);
	/* Before the commit's wait: the state, with the batch's tables, goes back now. */
	rules_end_batch(slot->rules);
out:
	pipeline_engines_return(set, slot);
	return rc;
}

size_t pipeline_event_count(const struct pipeline *p)
{
	return p->batch.count;
}

const struct batch_event *pipeline_event(const struct pipeline *p, size_t i)
{
	return &p->batch.events[i];
}

const char *pipeline_event_action(const struct pipeline *p, size_t i)
{
	if (i >= p->action_count || p->action_at[i] == SIZE_MAX)
		return NULL;
	return p->action_text.p + p->action_at[i];
}

const struct decision *pipeline_decisions_of(const struct pipeline *p, size_t i, size_t *n)
{
	const struct decision *items = p->decisions.items;
	size_t lo = 0, hi = p->decisions.count, end;

	/* the first decision of an event >= i: decisions are in event order */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (items[mid].event < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (end = lo; end < p->decisions.count && items[end].event == i; end++)
		;
	*n = end - lo;
	return items ? items + lo : NULL;
}

void pipeline_end(struct pipeline *p)
{
	decisions_clear(&p->decisions);
	p->action_count = 0;
}

void pipeline_idle(struct pipeline *p)
{
	if (p->own_engines)
		pipeline_engines_idle(p->own_engines, 0);
	batch_free(&p->batch);
	decisions_free(&p->decisions);
	pipeline_actions_free(p);
}

/*
 * Counts a committed batch: every event by action, every decision by kind
 * and name, and an event without any decision as drop "no_rule". Decisions
 * are in event order (each event's are pushed while it is routed).
 */
static void pipeline_count(struct pipeline *p)
{
	struct metrics_tally t;
	size_t pos = 0;
	char host[256];

	metrics_tally_init(&t);
	for (size_t i = 0; i < p->batch.count; i++) {
		const struct batch_event *ev = &p->batch.events[i];
		int any = 0;

		metrics_tally_event(&t, pipeline_event_action(p, i));
		for (; pos < p->decisions.count && p->decisions.items[pos].event == i; pos++, any = 1) {
			const struct decision *it = &p->decisions.items[pos];

			switch (it->kind) {
			case DECISION_FORWARD:
				metrics_tally_decision(&t, METRICS_FORWARD, it->name && *it->name
					? it->name : metrics_url_host(it->target, host, sizeof host));
				break;
			case DECISION_WRITE:
				metrics_tally_decision(&t, METRICS_WRITE, it->target);
				break;
			case DECISION_DROP:
				metrics_tally_decision(&t, METRICS_DROP, it->reason ? it->reason : "dropped");
				break;
			case DECISION_ERROR:
				metrics_tally_decision(&t, METRICS_ERROR,
						       outbox_dead_kind_names[OUTBOX_DEAD_RULE_ERROR]);
				break;
			case DECISION_REJECT:
				metrics_tally_decision(&t, METRICS_ERROR,
						       outbox_dead_kind_names[OUTBOX_DEAD_REJECTED]);
				break;
			}
		}
		if (!any && !ev->reject)
			metrics_tally_decision(&t, METRICS_DROP, "no_rule");
	}
	metrics_tally_flush(&t);
}

void pipeline_process(struct pipeline *p, const char *body, size_t len, double received_at,
		      const char *remote_addr, const char *request_id,
		      struct pipeline_result *res)
{
	struct decisions_commit_env env = {
		.body = body,
		.batch = &p->batch,
		.request_id = request_id,
		.hop = p->hop,
	};

	if (pipeline_route(p, body, len, received_at, remote_addr, request_id, res) < 0)
		goto out;
	env.writer = p->sh->writer;
	env.sink = p->sink;
	env.write_sync = p->write_sync;
	if (decisions_commit(&p->decisions, &env, &res->summary, res->error, sizeof res->error) < 0) {
		log_msg(LOG_ERROR, request_id, "batch not committed: %s", res->error);
		res->stage = PIPELINE_COMMIT;
		res->http_status = 503;
		goto out;
	}
	res->http_status = 200;
	pipeline_count(p);
	if (res->summary.forwards > 0 && p->sh->on_commit)
		p->sh->on_commit(p->sh->on_commit_arg);
out:
	pipeline_end(p);
}
