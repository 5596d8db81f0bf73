/*
 * decisions_commit.c — makes one batch's decisions durable (see decisions.h).
 *
 * Order: every write line is queued per file, then each file gets its lines
 * in one append (sink_file_flush: whole lines or none); a disk failure fails
 * the batch before anything is enqueued. Then one outbox transaction takes,
 * in decision order, each custom forward, each merged default forward (at
 * the first decision of its group) and each dead letter (rule errors,
 * rejected elements, writes refused by the output_dir policy).
 *
 * write_sync = batch: the files the flush wrote go with the batch to the
 * group committer, which fdatasyncs each file once per group before the
 * transaction; so a batch with lines but no outbox rows goes through the
 * writer too. Without a writer (tests, tools) the files are synced here.
 *
 * Merging: default forwards (text == NULL) with equal url, method, content
 * type, headers and name form one group. Groups are found with a linear scan
 * over the distinct groups (a batch has a handful), trying the previous
 * decision's group first since consecutive events mostly go the same way.
 * Each group's body is built in one growing buffer: {"events":[ + each
 * event's original bytes, in batch order, once + ]}.
 *
 * Allocation per commit, not per event: the (group, event) pair list, the
 * per-event "decided" flags and the scratch buffers.
 *
 * The outbox part runs through the group committer (outbox_writer.c): our
 * fill function runs on the writer thread while this worker waits, inside
 * a savepoint of a transaction shared with other workers' batches.
 *
 * Threads: called by the worker that owns a and env->sink.
 */
#include "decisions.h"

#include "batch.h"
#include "outbox.h"
#include "outbox_writer.h"
#include "sink_file.h"
#include "util_buf.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct group {
	const struct decision *key;   /* first decision of the group */
	size_t first;               /* its index in the decision list */
	size_t bytes;               /* body size bound (spans + separators) */
	size_t last_event;          /* to notice events out of batch order */
};

struct pair {
	size_t group, event;
};

/* A write refused by the output_dir policy, dead-lettered in the transaction. */
struct refused {
	size_t decision;   /* its index in the batch's decisions */
	char *reason;
	char *line;
	size_t line_len;
};

struct commit {
	const struct decisions *a;
	const struct decisions_commit_env *env;
	struct group *groups;
	size_t ngroups;
	struct pair *pairs;
	size_t npairs;
	struct refused *refused;
	size_t nrefused;
	struct util_buf buf;       /* scratch: compacted lines, merged bodies */
	struct outbox *ob;         /* the writer's connection, during decisions_commit_fill_outbox only */
	struct decisions_summary *sum;
	int oom;
};

static int decisions_commit_str_eq(const char *x, const char *y)
{
	if (x == y)
		return 1;
	if (!x || !y)
		return 0;
	return strcmp(x, y) == 0;
}

static const char *decisions_commit_method_of(const struct decision *it)
{
	return it->method ? it->method : "POST";
}

static int decisions_commit_same_destination(const struct decision *x, const struct decision *y)
{
	return decisions_commit_str_eq(x->target, y->target) && decisions_commit_str_eq(decisions_commit_method_of(x), decisions_commit_method_of(y)) &&
	       decisions_commit_str_eq(x->content_type, y->content_type) && decisions_commit_str_eq(x->headers, y->headers) &&
	       decisions_commit_str_eq(x->name, y->name);
}

static int decisions_commit_pair_cmp(const void *pa, const void *pb)
{
	const struct pair *x = pa, *y = pb;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	if (x->event != y->event)
		return x->event < y->event ? -1 : 1;
	return 0;
}

static size_t decisions_commit_span_len(const struct batch *b, size_t ev)
{
	return b->events[ev].end - b->events[ev].start;
}

/*
 * Groups the default forwards into c->groups and lists their (group, event)
 * pairs. Within a group the events must be in batch order for decisions_commit_build_body;
 * they are when rules ran in batch order, otherwise the pairs are sorted.
 */
static int decisions_commit_group_forwards(struct commit *c, size_t nforward, char *err, size_t errlen)
{
	const struct decisions *a = c->a;
	size_t last = (size_t)-1;
	int sorted = 1;

	c->groups = malloc(nforward * sizeof *c->groups);
	c->pairs = malloc(nforward * sizeof *c->pairs);
	if (!c->groups || !c->pairs) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < a->count; i++) {
		const struct decision *it = &a->items[i];
		struct group *gr;
		size_t g;

		if (it->kind != DECISION_FORWARD || it->body)
			continue;
		if (last != (size_t)-1 && decisions_commit_same_destination(c->groups[last].key, it)) {
			g = last;
		} else {
			for (g = 0; g < c->ngroups; g++)
				if (decisions_commit_same_destination(c->groups[g].key, it))
					break;
			if (g == c->ngroups) {
				c->groups[g].key = it;
				c->groups[g].first = i;
				c->groups[g].bytes = sizeof BATCH_PREFIX BATCH_SUFFIX;
				c->groups[g].last_event = it->event;
				c->ngroups++;
			}
		}
		last = g;
		gr = &c->groups[g];
		if (it->event < gr->last_event)
			sorted = 0;
		gr->last_event = it->event;
		gr->bytes += decisions_commit_span_len(c->env->batch, it->event) + 1;
		c->pairs[c->npairs].group = g;
		c->pairs[c->npairs].event = it->event;
		c->npairs++;
	}
	if (!sorted)
		qsort(c->pairs, c->npairs, sizeof *c->pairs, decisions_commit_pair_cmp);
	return 0;
}

/* Builds group g's merged body in c->buf (reserved by the caller); returns its length. */
static size_t decisions_commit_build_body(struct commit *c, size_t g)
{
	const struct batch *b = c->env->batch;
	const char *body = c->env->body;
	size_t n, last = (size_t)-1;
	int first = 1;

	memcpy(c->buf.p, BATCH_PREFIX, sizeof BATCH_PREFIX - 1);
	n = sizeof BATCH_PREFIX - 1;
	for (size_t i = 0; i < c->npairs; i++) {
		size_t ev = c->pairs[i].event, len;

		/* the same event forwarded twice to one destination goes once */
		if (c->pairs[i].group != g || ev == last)
			continue;
		/* sorted by event within the group (decisions_commit_group_forwards): each event once */
		assert(last == (size_t)-1 || ev > last);
		last = ev;
		if (!first)
			c->buf.p[n++] = ',';
		first = 0;
		len = decisions_commit_span_len(b, ev);
		memcpy(c->buf.p + n, body + b->events[ev].start, len);
		n += len;
	}
	memcpy(c->buf.p + n, BATCH_SUFFIX, sizeof BATCH_SUFFIX - 1);
	return n + sizeof BATCH_SUFFIX - 1;
}

/*
 * Queues every write line, then appends them (one append per file); refused
 * ones are kept for the transaction. On failure nothing stays queued.
 */
static int decisions_commit_do_writes(struct commit *c, size_t nwrite, struct decisions_summary *sum, char *err,
		     size_t errlen)
{
	const struct decisions_commit_env *env = c->env;
	const struct batch *b = env->batch;
	char why[512];
	int ret = -1;

	for (size_t i = 0; i < c->a->count; i++) {
		const struct decision *it = &c->a->items[i];
		const char *line;
		size_t len;
		int rc;

		if (it->kind != DECISION_WRITE)
			continue;
		if (it->line) {
			line = it->line;
			len = it->len;
		} else {
			len = decisions_commit_span_len(b, it->event);
			if (util_buf_reserve(&c->buf, len) != 0) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			len = batch_compact(env->body + b->events[it->event].start, len, c->buf.p);
			line = c->buf.p;
		}
		rc = sink_file_add(env->sink, it->target, line, len, why, sizeof why);
		if (rc == SINK_OK) {
			sum->writes++;
			continue;
		}
		if (rc != SINK_REFUSED) {
			snprintf(err, errlen, "%s", why);
			goto out;
		}
		if (!c->refused) {
			c->refused = calloc(nwrite, sizeof *c->refused);
			if (!c->refused) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
		}
		struct refused *r = &c->refused[c->nrefused];

		r->decision = i;
		r->reason = decisions_strndup(why, strlen(why));
		r->line = decisions_strndup(line, len);
		r->line_len = len;
		if (!r->reason || !r->line) {
			free(r->reason);
			free(r->line);
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		c->nrefused++;
	}
	if (sum->writes && sink_file_flush(env->sink, err, errlen) != SINK_OK)
		goto out;
	ret = 0;
out:
	if (ret != 0)
		sink_file_discard(env->sink);
	return ret;
}

static int decisions_commit_add_dead(struct commit *c, enum outbox_dead_kind kind, const struct decision *it,
		    const char *reason, const char *payload, size_t payload_len)
{
	struct outbox_dead d = {
		.kind = kind,
		.reason = reason ? reason : "",
		.payload = payload,
		.payload_len = payload_len,
		.request_id = c->env->request_id,
		.event_index = (long)it->event + 1,
		.target = kind == OUTBOX_DEAD_WRITE ? it->target : NULL,
	};

	return outbox_add_dead(c->ob, &d);
}

static int decisions_commit_add_forward(struct commit *c, const struct decision *it, const char *body, size_t len)
{
	struct outbox_forward f = {
		.name = it->name,
		.url = it->target,
		.method = decisions_commit_method_of(it),
		.content_type = it->content_type,
		.headers = it->headers,
		.body = body,
		.body_len = len,
		.request_id = c->env->request_id,
		.hop = c->env->hop + 1,
	};

	return outbox_add_forward(c->ob, &f, NULL);
}

/* Adds decision i to the open transaction, if it makes an entry; 0 or -1. */
static int decisions_commit_add_one(struct commit *c, size_t i, size_t *next_group, size_t *next_refused,
		   struct decisions_summary *sum, int *oom)
{
	const struct batch *b = c->env->batch;
	const struct decision *it = &c->a->items[i];
	const char *span = c->env->body + b->events[it->event].start;
	size_t slen = decisions_commit_span_len(b, it->event);
	struct refused *r;

	switch (it->kind) {
	case DECISION_FORWARD:
		if (it->body) {
			sum->forwards++;
			return decisions_commit_add_forward(c, it, it->body, it->len);
		}
		if (*next_group >= c->ngroups || c->groups[*next_group].first != i)
			return 0;   /* merged into its group's entry */
		if (util_buf_reserve(&c->buf, c->groups[*next_group].bytes) != 0) {
			*oom = 1;
			return -1;
		}
		sum->forwards++;
		return decisions_commit_add_forward(c, it, c->buf.p, decisions_commit_build_body(c, (*next_group)++));
	case DECISION_ERROR:
		sum->dead_letters++;
		return decisions_commit_add_dead(c, OUTBOX_DEAD_RULE_ERROR, it, it->error, span, slen);
	case DECISION_REJECT:
		sum->dead_letters++;
		return decisions_commit_add_dead(c, OUTBOX_DEAD_REJECTED, it, it->error, span, slen);
	case DECISION_WRITE:
		if (*next_refused >= c->nrefused || c->refused[*next_refused].decision != i)
			return 0;
		r = &c->refused[(*next_refused)++];
		sum->dead_letters++;
		return decisions_commit_add_dead(c, OUTBOX_DEAD_WRITE, it, r->reason, r->line, r->line_len);
	case DECISION_DROP:
		return 0;
	}
	return 0;
}

/* Runs on the writer thread: forwards and dead letters, in decision order. */
static int decisions_commit_fill_outbox(struct outbox *ob, void *arg)
{
	struct commit *c = arg;
	size_t next_group = 0, next_refused = 0;

	c->ob = ob;
	for (size_t i = 0; i < c->a->count; i++)
		if (decisions_commit_add_one(c, i, &next_group, &next_refused, c->sum, &c->oom) != 0)
			return -1;
	return 0;
}

/*
 * One group-committed savepoint with this batch's outbox rows (rows = 0:
 * none, only the files' flush); with sync, the files the flush wrote are
 * flushed to disk in the same group first.
 */
static int decisions_commit_do_outbox(struct commit *c, int rows, int sync, struct decisions_summary *sum,
		     char *err, size_t errlen)
{
	struct outbox_writer_file *files = NULL;
	const struct sink_file_ref *refs = NULL;
	size_t nfiles = 0;
	int rc = -1;

	c->sum = sum;
	if (sync) {
		nfiles = sink_file_written(c->env->sink, &refs);
		files = calloc(nfiles ? nfiles : 1, sizeof *files);
		if (!files) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		for (size_t i = 0; i < nfiles; i++)
			files[i] = (struct outbox_writer_file){ .fd = refs[i].fd, .dev = refs[i].dev,
								.ino = refs[i].ino,
								.name = refs[i].path };
	}
	if (outbox_writer_commit_files(c->env->writer, rows ? decisions_commit_fill_outbox : NULL, c, files, nfiles,
				       err, errlen) == 0)
		rc = 0;
	else if (c->oom)
		snprintf(err, errlen, "out of memory");
out:
	free(files);
	return rc;
}

/* What the decisions need: counted by decisions_commit_tally. */
struct decisions_commit_counts {
	size_t nforward;   /* default forwards (merged per destination) */
	size_t nwrite;     /* write() lines */
	size_t noutbox;    /* outbox rows: forwards and dead letters */
};

/*
 * Phase 1, before any side effect (nothing may fail once the outbox
 * committed): checks each decision against the batch, counts what it needs
 * and marks the events that something was decided for.
 */
static int decisions_commit_tally(const struct decisions *a, const struct batch *b,
				  unsigned char *decided, struct decisions_commit_counts *n,
				  char *err, size_t errlen)
{
	for (size_t i = 0; i < a->count; i++) {
		const struct decision *it = &a->items[i];

		if (it->event >= b->count) {
			snprintf(err, errlen, "decision for event %zu outside the batch", it->event + 1);
			return -1;
		}
		switch (it->kind) {
		case DECISION_FORWARD:
		case DECISION_WRITE:
			if (!it->target) {
				snprintf(err, errlen, "decision for event %zu has no target",
					 it->event + 1);
				return -1;
			}
			if (it->kind == DECISION_WRITE)
				n->nwrite++;
			else if (!it->body)
				n->nforward++;
			n->noutbox += it->kind == DECISION_FORWARD;
			decided[it->event] = 1;
			break;
		case DECISION_ERROR:
			decided[it->event] = 1;
			n->noutbox++;
			break;
		case DECISION_REJECT:
			n->noutbox++;
			break;
		case DECISION_DROP:
			break;
		}
	}
	return 0;
}

/* Phase 2: the outbox and the sink the decisions need are there. */
static int decisions_commit_needs(const struct decisions_commit_env *env,
				  const struct decisions_commit_counts *n, char *err, size_t errlen)
{
	if (n->noutbox && !env->writer) {
		snprintf(err, errlen, "forwards and dead letters need the outbox");
		return -1;
	}
	if (n->nwrite && !env->sink) {
		snprintf(err, errlen, "write() needs output_dir");
		return -1;
	}
	return 0;
}

/*
 * Phase 3, the side effects: merges the default forwards, appends the
 * lines, then commits the outbox rows (with the files' sync when
 * write_sync = batch goes through the writer).
 */
static int decisions_commit_durable(struct commit *c, const struct decisions_commit_counts *n,
				    struct decisions_summary *sum, char *err, size_t errlen)
{
	const struct decisions_commit_env *env = c->env;
	int sync;

	if (n->nforward && decisions_commit_group_forwards(c, n->nforward, err, errlen) != 0)
		return -1;
	if (n->nwrite && decisions_commit_do_writes(c, n->nwrite, sum, err, errlen) != 0)
		return -1;
	if (c->nrefused && !env->writer) {
		snprintf(err, errlen, "a refused write needs the outbox for its dead letter");
		return -1;
	}
	sync = env->write_sync && sum->writes > 0;
	if (sync && !env->writer) {
		if (sink_file_sync(env->sink, err, errlen) != SINK_OK)
			return -1;
		sync = 0;
	}
	if ((n->noutbox || c->nrefused || sync) &&
	    decisions_commit_do_outbox(c, n->noutbox || c->nrefused, sync, sum, err, errlen) != 0)
		return -1;
	return 0;
}

/* Frees what the phases allocated in c. */
static void decisions_commit_release(struct commit *c)
{
	for (size_t i = 0; i < c->nrefused; i++) {
		free(c->refused[i].reason);
		free(c->refused[i].line);
	}
	free(c->refused);
	free(c->groups);
	free(c->pairs);
	util_buf_free(&c->buf);
}

int decisions_commit(const struct decisions *a, const struct decisions_commit_env *env,
		   struct decisions_summary *sum, char *err, size_t errlen)
{
	struct commit c = { .a = a, .env = env };
	struct decisions_commit_counts n = { 0 };
	const struct batch *b = env->batch;
	unsigned char *decided = NULL;
	int rc = -1;

	memset(sum, 0, sizeof *sum);
	if (!b) {
		snprintf(err, errlen, "no batch to commit");
		goto out;
	}
	decided = calloc(b->count + 1, 1);
	if (!decided) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (decisions_commit_tally(a, b, decided, &n, err, errlen) != 0 ||
	    decisions_commit_needs(env, &n, err, errlen) != 0 ||
	    decisions_commit_durable(&c, &n, sum, err, errlen) != 0)
		goto out;
	/* every routable event nothing was decided for is a drop */
	for (size_t i = 0; i < b->count; i++)
		if (!b->events[i].reject && !decided[i])
			sum->drops++;
	rc = 0;
out:
	if (rc != 0)
		memset(sum, 0, sizeof *sum);
	decisions_commit_release(&c);
	free(decided);
	return rc;
}
