/*
 * pipeline.c — one batch through the router (see pipeline.h).
 *
 * The order is the product's promise: every decision of the batch is made
 * first (a failing rule only turns its own event into an error decision),
 * then actions_commit appends lines and commits forwards and dead letters in
 * one outbox transaction, and only then is the batch answered 200.
 */
#include "pipeline.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "rules.h"
#include "sink_file.h"

void pipeline_init(struct pipeline *p, struct pipeline_shared *sh)
{
	memset(p, 0, sizeof *p);
	p->sh = sh;
	p->cfg = sh->cfg;
	p->dry_run = sh->writer == NULL;
	actions_init(&p->acts);
}

void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	rules_free(p->rules);
	sink_file_close(p->sink);
	actions_free(&p->acts);
	batch_free(&p->batch);
	memset(p, 0, sizeof *p);
}

/*
 * Builds this worker's Lua state from the published rules text when it has
 * none or a reload published a newer generation. A rebuild that fails
 * keeps the old state (the text compiled in main before it was published,
 * so only memory can make it fail here).
 */
static int pipeline_rules(struct pipeline *p, char *err, size_t errlen)
{
	unsigned long want = atomic_load(&p->sh->rules.generation);
	struct rules_source *src;
	struct rules *r;
	struct rules_options opt = {
		.path = p->cfg->rules,
		.instruction_limit = p->cfg->lua_instruction_limit,
		.memory_limit = p->cfg->lua_memory_limit,
		.dry_run = p->dry_run,
	};

	if (p->rules && p->rules_generation == want)
		return 0;
	src = rules_current_get(&p->sh->rules);
	if (src) {
		opt.source = src->text;
		opt.source_len = src->len;
		want = src->generation;
	}
	r = rules_new(&opt, err, errlen);
	rules_source_unref(src);
	if (!r) {
		if (!p->rules)
			return -1;
		log_msg(LOG_ERROR, NULL, "rules generation %lu not applied in this worker: %s; "
					 "it keeps generation %lu", want, err, p->rules_generation);
		p->rules_generation = want;   /* do not retry on every batch */
		return 0;
	}
	rules_free(p->rules);
	p->rules = r;
	p->rules_generation = want;
	return 0;
}

/* Opens what this worker has not opened yet. */
static int pipeline_open(struct pipeline *p, char *err, size_t errlen)
{
	if (pipeline_rules(p, err, errlen) < 0)
		return -1;
	if (p->dry_run)
		return 0;
	if (!p->sink) {
		p->sink = sink_file_open(p->cfg->output_dir, err, errlen);
		if (!p->sink)
			return -1;
	}
	return 0;
}

int pipeline_route(struct pipeline *p, const char *body, size_t len, double received_at,
		   const char *remote_addr, const char *request_id, struct pipeline_result *res)
{
	struct rules_meta meta = {
		.received_at = received_at,
		.remote_addr = remote_addr,
		.request_id = request_id,
	};
	int rc;

	memset(res, 0, sizeof *res);
	if (pipeline_open(p, res->error, sizeof res->error) < 0) {
		log_msg(LOG_ERROR, request_id, "worker set-up failed: %s", res->error);
		res->http_status = 500;
		return -1;
	}
	rc = rules_parse_batch(p->rules, body, len, p->cfg->max_events, &p->batch, res->error,
			       sizeof res->error);
	if (rc != BATCH_OK) {
		res->http_status = rc == BATCH_TOO_MANY || rc == BATCH_TOO_BIG ? 413
				   : rc == BATCH_INVALID ? 400 : 500;
		return -1;
	}

	meta.batch_size = p->batch.count;
	for (size_t i = 0; i < p->batch.count; i++) {
		const struct batch_event *ev = &p->batch.events[i];
		struct action *it;

		if (ev->reject) {
			it = actions_push(&p->acts, ACTION_REJECT, i);
			if (!it || !(it->text = actions_strndup(ev->reject, strlen(ev->reject))))
				goto nomem;
			it->text_len = strlen(ev->reject);
			res->rejected++;
			continue;
		}
		meta.index = i + 1;
		rc = rules_route(p->rules, i, &meta, &p->acts);
		if (rc < 0)
			goto nomem;
		if (rc == 1) {
			const struct action *last = &p->acts.items[p->acts.count - 1];

			log_msg(LOG_WARN, request_id, "rule error on event %zu (%s): %s", i + 1,
				rules_event_action(p->rules, i) ? rules_event_action(p->rules, i) : "?",
				last->text ? last->text : "");
		}
		/* A rule error is still accepted: the event is kept as a dead letter. */
		res->accepted++;
	}
	return 0;

nomem:
	snprintf(res->error, sizeof res->error, "out of memory while routing");
	res->http_status = 500;
	return -1;
}

void pipeline_end(struct pipeline *p)
{
	if (p->rules)
		rules_end_batch(p->rules);
	actions_clear(&p->acts);
}

void pipeline_process(struct pipeline *p, const char *body, size_t len, double received_at,
		      const char *remote_addr, const char *request_id,
		      struct pipeline_result *res)
{
	struct actions_commit_env env = {
		.body = body,
		.batch = &p->batch,
		.request_id = request_id,
	};

	if (pipeline_route(p, body, len, received_at, remote_addr, request_id, res) < 0)
		goto out;
	env.writer = p->sh->writer;
	env.sink = p->sink;
	if (actions_commit(&p->acts, &env, &res->summary, res->error, sizeof res->error) < 0) {
		log_msg(LOG_ERROR, request_id, "batch not committed: %s", res->error);
		res->http_status = 503;
		goto out;
	}
	res->http_status = 200;
	if (res->summary.forwards > 0 && p->sh->deliver)
		deliver_notify(p->sh->deliver);
out:
	pipeline_end(p);
}
