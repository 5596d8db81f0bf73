/*
 * dlq_replay.c — `egoi-router dlq replay` (see dlq.h).
 *
 * Design:
 * - The selection is taken first (ids and kinds only); payloads are read one
 *   dead letter at a time, and each is handled on its own: one failure does
 *   not stop the others, it is counted in "failed".
 * - A forward is re-queued and marked replayed in one transaction
 *   (outbox_dlq_requeue_forward); the daemon's delivery thread, which looks
 *   at the outbox at least once a second, sends it without a restart.
 * - An event (rule error, refused write) goes through the pipeline exactly
 *   like a batch {"events":[payload]} the daemon received, with the rules
 *   file as it is on disk now: written lines, forwards and new dead letters
 *   are committed by an outbox writer of our own. The dead letter is marked
 *   replayed only after that commit, so a crash in between routes the event
 *   again at the next replay (at least once, like everything else) rather
 *   than losing it.
 * - Rejected input is malformed: there is nothing the rules could route.
 * - A row that is not a usable dead letter (outbox_dlq_entry.malformed, or
 *   an event payload that is not one JSON event) is named on stderr and
 *   counted in "skipped"; the others are replayed, and the exit code is 1.
 *
 * Threads: the main thread only (the outbox writer has its own).
 */
#include "dlq.h"
#include "dlq_internal.h"
#include "json_out.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "batch.h"
#include "config.h"
#include "metrics.h"
#include "outbox.h"
#include "outbox_dlq.h"
#include "outbox_writer.h"
#include "pipeline.h"
#include "util.h"

struct dlq_pick {
	int64_t id;
	int kind;                /* enum outbox_dead_kind; -1 when malformed */
	int replayed;
	const char *malformed;   /* static text (outbox_dlq_entry): not a dead letter */
};

struct dlq_picks {
	struct dlq_pick *v;
	size_t n, cap;
	const char *dest;        /* only forwards to this name or host; NULL = any */
};

void dlq_dest_name(const struct outbox_dlq_entry *e, char *out, size_t cap)
{
	out[0] = '\0';
	if (e->name && *e->name)
		snprintf(out, cap, "%s", e->name);
	else if (e->url)
		metrics_url_host(e->url, out, cap);
	else if (e->target)
		snprintf(out, cap, "%s", e->target);
}

/* Only forwards have a destination to replay by: a write's path is not one. */
static int dlq_dest_match(const struct outbox_dlq_entry *e, const char *dest)
{
	char name[256];

	if (!(e->name && *e->name) && !e->url)
		return 0;
	dlq_dest_name(e, name, sizeof name);
	return strcmp(name, dest) == 0;
}

static int dlq_collect(const struct outbox_dlq_entry *e, void *arg)
{
	struct dlq_picks *p = arg;
	struct dlq_pick *v;

	if (p->dest && !e->malformed && !dlq_dest_match(e, p->dest))
		return 0;
	v = util_array_grow(p->v, &p->cap, p->n, sizeof *v, 64);
	if (!v)
		return 1;
	p->v = v;
	p->v[p->n].id = e->id;
	p->v[p->n].malformed = e->malformed;
	p->v[p->n].kind = outbox_dead_kind_parse(e->kind);
	p->v[p->n].replayed = e->replayed_at > 0;
	p->n++;
	return 0;
}

/* One event dead letter's payload and request id, read for its replay. */
struct dlq_event {
	char *body;                /* {"events":[payload]} */
	size_t len, prefix;        /* the payload is body[prefix, len - suffix) */
	char *request_id;
	int has_payload;
	const char *malformed;     /* static text: the row is not a dead letter */
};

static const char dlq_prefix[] = BATCH_PREFIX, dlq_suffix[] = BATCH_SUFFIX;

static int dlq_fetch(const struct outbox_dlq_entry *e, void *arg)
{
	struct dlq_event *ev = arg;

	ev->malformed = e->malformed;   /* a static string, see outbox_dlq_entry */
	if (e->malformed)
		return 0;
	ev->has_payload = e->payload != NULL;
	if (!e->payload)
		return 0;
	ev->prefix = sizeof dlq_prefix - 1;
	ev->len = ev->prefix + e->payload_len + sizeof dlq_suffix - 1;
	ev->body = malloc(ev->len + 1);
	if (!ev->body)
		return 1;
	memcpy(ev->body, dlq_prefix, ev->prefix);
	memcpy(ev->body + ev->prefix, e->payload, e->payload_len);
	memcpy(ev->body + ev->prefix + e->payload_len, dlq_suffix, sizeof dlq_suffix);
	if (e->request_id && !(ev->request_id = strdup(e->request_id)))
		return 1;
	return 0;
}

/*
 * The payload must be exactly one routable event: a refused write whose
 * line came from opts.line, or a payload that would close the wrapper and
 * open more elements, is not an event the rules can see again.
 */
static const char *dlq_check_event(const struct dlq_event *ev)
{
	struct batch b;
	char err[256];
	const char *why = NULL;

	memset(&b, 0, sizeof b);
	if (batch_parse(&b, ev->body, ev->len, 1, NULL, NULL, err, sizeof err) != BATCH_OK ||
	    b.count != 1 || b.events[0].start != ev->prefix ||
	    b.events[0].end != ev->len - (sizeof dlq_suffix - 1))
		why = "its payload is not one JSON event";
	else if (b.events[0].reject)
		why = b.events[0].reject;
	batch_free(&b);
	return why;
}

struct dlq_replay {
	const struct config *cfg;
	struct outbox *ob;
	struct pipeline_shared sh;
	struct pipeline p;
	int pipeline_ready;
	int cannot_route;
	long replayed, skipped, failed;
	long malformed;            /* of skipped: rows that are not replayable dead letters */
};

/* Routes one rule_error / write dead letter again and marks it replayed. */
static void dlq_replay_event(struct dlq_replay *r, int64_t id)
{
	const int64_t one[1] = { id };
	struct outbox_dlq_filter f = { .ids = one, .nids = 1, .with_payload = 1 };
	struct dlq_event ev;
	struct pipeline_result res;
	const char *why;
	char err[256];
	enum outbox_dlq_result marked;
	int rc;

	memset(&ev, 0, sizeof ev);
	if (r->cannot_route) {
		r->failed++;
		goto out;
	}
	rc = outbox_dlq_list(r->ob, &f, dlq_fetch, &ev);
	if (rc != 0) {
		fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 ": %s\n", id,
			rc < 0 ? outbox_error(r->ob) : "out of memory");
		r->failed++;
		goto out;
	}
	if (ev.malformed || !ev.has_payload || (why = dlq_check_event(&ev)) != NULL) {
		fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 " skipped: %s\n",
			id, ev.malformed ? ev.malformed : ev.has_payload ? why : "it has no payload");
		r->skipped++;
		r->malformed++;
		goto out;
	}
	if (!r->pipeline_ready) {
		r->sh.writer = outbox_writer_start(r->cfg->data_dir, err, sizeof err);
		if (!r->sh.writer) {
			fprintf(stderr, "egoi-router: dlq replay: outbox writer: %s\n", err);
			r->cannot_route = 1;
			r->failed++;
			goto out;
		}
		pipeline_init(&r->p, &r->sh);
		r->pipeline_ready = 1;
	}
	pipeline_process(&r->p, ev.body, ev.len, clock_wall(), "dlq-replay", ev.request_id, &res);
	if (res.http_status != 200) {
		/* The rules did not compile (the message names file and
		 * line): no use trying the rest. */
		if (res.stage == PIPELINE_RULES_UNAVAILABLE) {
			fprintf(stderr, "egoi-router: %s\n", res.error);
			r->cannot_route = 1;
		} else {
			fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 ": %s\n",
				id, res.error);
		}
		r->failed++;
		goto out;
	}
	/* Routed and committed: from here on the event is in its new place.
	 * (Route first, mark second: a crash in between replays it twice, never
	 * loses it. Concurrent replays are excluded by dlq_replay's lock.) */
	marked = outbox_dlq_mark_replayed(r->ob, id);
	if (marked == OUTBOX_DLQ_FAILED) {
		fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 " was routed but "
				"not marked replayed: %s\n", id, outbox_error(r->ob));
		r->failed++;
		goto out;
	}
	if (marked == OUTBOX_DLQ_NOT_OPEN)
		fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 " was marked "
				"replayed by someone else meanwhile\n", id);
	if (res.summary.dead_letters > 0)
		fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 " failed again; "
				"it is kept as a new dead letter\n", id);
	r->replayed++;
out:
	free(ev.body);
	free(ev.request_id);
}

static void dlq_replay_one(struct dlq_replay *r, const struct dlq_pick *k, int by_id)
{
	enum outbox_dlq_result requeued;

	if (k->malformed) {
		fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 " skipped: %s\n",
			k->id, k->malformed);
		r->skipped++;
		r->malformed++;
	} else if (k->replayed) {
		fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64
				" was already replayed, skipped\n", k->id);
		r->skipped++;
	} else if (k->kind == OUTBOX_DEAD_REJECTED) {
		if (by_id)
			fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 " skipped: "
					"rejected input (malformed) cannot be replayed\n", k->id);
		r->skipped++;
	} else if (k->kind == OUTBOX_DEAD_FORWARD) {
		requeued = outbox_dlq_requeue_forward(r->ob, k->id);
		if (requeued == OUTBOX_DLQ_FAILED) {
			fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64 ": %s\n",
				k->id, outbox_error(r->ob));
			r->failed++;
		} else if (requeued == OUTBOX_DLQ_NOT_OPEN) {
			/* another dlq replay got there first */
			fprintf(stderr, "egoi-router: dlq replay: dead letter %" PRId64
					" was already replayed, skipped\n", k->id);
			r->skipped++;
		} else {
			r->replayed++;
		}
	} else {
		dlq_replay_event(r, k->id);
	}
}

/* Takes data_dir/dlq-replay.lock (flock, released on close or exit); -1 if busy. */
static int dlq_replay_lock(const char *data_dir)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof path, "%s/dlq-replay.lock", data_dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "egoi-router: dlq replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		fprintf(stderr, "egoi-router: dlq replay: another replay is running (%s)\n",
			path);
		close(fd);
		return -1;
	}
	return fd;
}

int dlq_replay_selection(const struct dlq_selection *s, const struct config *cfg,
			 struct outbox *ob,
			 struct dlq_counts *out)
{
	struct outbox_dlq_filter f = {
		.kind = s->dest ? outbox_dead_kind_names[OUTBOX_DEAD_FORWARD] : s->kind,
		.ids = s->nids ? s->ids : NULL,
		.nids = s->nids,
		/* by id: already replayed ones are reported, not silently left out */
		.state = s->nids ? OUTBOX_DLQ_ANY : OUTBOX_DLQ_OPEN,
	};
	struct dlq_picks picks = { .dest = s->dest };
	struct dlq_replay r;
	long rejected = 0;
	int rc = -1, lock_fd = -1;

	memset(&r, 0, sizeof r);
	memset(out, 0, sizeof *out);
	r.cfg = cfg;
	r.ob = ob;
	r.sh.cfg = cfg;
	/* Nothing published: the pipeline compiles cfg->rules_path as it is on disk now. */
	rules_current_init(&r.sh.published);
	if (s->dest && s->kind && outbox_dead_kind_parse(s->kind) != OUTBOX_DEAD_FORWARD)
		goto done;   /* only forwards have a destination: nothing selected */
	/* Two replays at once would route the same events twice (with new
	 * delivery ids receivers cannot de-duplicate): one at a time. */
	lock_fd = dlq_replay_lock(cfg->data_dir);
	if (lock_fd < 0)
		goto out;
	rc = outbox_dlq_list(ob, &f, dlq_collect, &picks);
	if (rc != 0) {
		fprintf(stderr, "egoi-router: dlq replay: %s\n",
			rc > 0 ? "out of memory" : outbox_error(ob));
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < s->nids; i++) {
		size_t j = 0;

		while (j < picks.n && picks.v[j].id != s->ids[i])
			j++;
		if (j == picks.n) {
			fprintf(stderr, "egoi-router: dlq replay: no dead letter %" PRId64 "%s%s\n",
				s->ids[i], s->kind ? " of kind " : "", s->kind ? s->kind : "");
			r.failed++;
		}
	}
	for (size_t i = 0; i < picks.n; i++) {
		if (!picks.v[i].replayed && !picks.v[i].malformed &&
		    picks.v[i].kind == OUTBOX_DEAD_REJECTED)
			rejected++;
		dlq_replay_one(&r, &picks.v[i], s->nids > 0);
	}
	if (rejected > 0 && s->nids == 0)
		fprintf(stderr, "egoi-router: dlq replay: %ld rejected dead letter%s skipped: "
				"malformed input cannot be replayed (see dlq list --kind rejected)\n",
			rejected, rejected == 1 ? "" : "s");
	if (r.malformed > 0)
		fprintf(stderr, "egoi-router: dlq replay: %ld malformed row%s skipped\n",
			r.malformed, r.malformed == 1 ? "" : "s");
done:
	out->replayed = r.replayed;
	out->skipped = r.skipped;
	out->failed = r.failed;
	out->malformed = r.malformed;
	rc = 0;
out:
	if (r.pipeline_ready)
		pipeline_free(&r.p);
	outbox_writer_stop(r.sh.writer);
	rules_current_free(&r.sh.published);
	free(picks.v);
	if (lock_fd >= 0)
		close(lock_fd);   /* releases the lock */
	return rc;
}

int dlq_replay(const struct dlq_opts *o, struct config *cfg, struct outbox *ob)
{
	struct dlq_selection sel = { .ids = o->ids, .nids = o->nids, .kind = o->kind };
	static const char *const keys[] = { "replayed", "skipped", "failed" };
	struct dlq_counts c;
	long vals[3];

	if (dlq_replay_selection(&sel, cfg, ob, &c) < 0)
		return EXIT_RUNTIME;
	vals[0] = c.replayed;
	vals[1] = c.skipped;
	vals[2] = c.failed;
	if (json_out_counts(keys, vals, 3) != 0) {
		fprintf(stderr, "egoi-router: dlq replay: cannot write the output\n");
		return EXIT_RUNTIME;
	}
	return c.failed > 0 || c.malformed > 0 ? EXIT_INVALID : EXIT_OK;
}
