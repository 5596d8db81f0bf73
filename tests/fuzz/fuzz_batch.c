/*
 * fuzz_batch.c — libFuzzer target for batch_parse and batch_compact.
 *
 * Purpose: any byte string as a request body must leave batch_parse with a
 * consistent result: spans inside the body and in order, routable events
 * starting with '{' and ending with '}', at most max_events of them, the
 * builder called in balanced pairs, and a cancelled build (the builder
 * returning -1) reported as BATCH_NOMEM with nothing leaked.
 *
 * Design: one input is parsed four ways and the results compared:
 *   1. with a checking builder, a large max_events (the reference);
 *   2. without a builder: the same status and the same spans;
 *   3. with max_events = FUZZ_SMALL_MAX: BATCH_TOO_MANY exactly when the
 *      reference succeeded with more events than that;
 *   4. with a builder that fails half way: BATCH_NOMEM.
 * Each routable span is also fed to batch_compact (the output may not be
 * longer, and compacting twice changes nothing) and to a bare yajl parser
 * (a span is forwarded as is, so it must be one valid JSON text).
 * A broken invariant calls abort(), which libFuzzer reports as a crash.
 *
 * Threads: libFuzzer runs one input at a time; the struct batch values are
 * reused across inputs (static), as the daemon reuses them per worker.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "batch.h"

#define FUZZ_MAX_EVENTS 100000
#define FUZZ_SMALL_MAX 3

/* What the checking builder saw during one parse. */
struct fz_builder {
	const struct batch *out;   /* the batch being filled, to check indexes */
	size_t calls;              /* every callback, for the failing builder */
	size_t fail_at;            /* 0 = never; else the call number that fails */
	int in_event;
	int depth;                 /* containers open inside the current event */
	size_t index;              /* of the open event */
	size_t begun, ended;       /* event_begin / event_end calls */
	size_t routable;           /* event_end calls with reject == NULL */
};

#define FZ_CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "fuzz_batch: invariant failed at line %d: %s\n", \
				__LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* Counts a call; -1 when this is the call the failing builder fails on. */
static int fz_count(struct fz_builder *f)
{
	f->calls++;
	return f->fail_at != 0 && f->calls >= f->fail_at ? -1 : 0;
}

/* A value callback: only inside an event, inside its top-level object. */
static int fz_value(void *ud)
{
	struct fz_builder *f = ud;

	FZ_CHECK(f->in_event);
	FZ_CHECK(f->depth >= 1);
	return fz_count(f);
}

static int fz_event_begin(void *ud, size_t index)
{
	struct fz_builder *f = ud;

	FZ_CHECK(!f->in_event);
	FZ_CHECK(f->depth == 0);
	/* The span is recorded before the builder hears of the event. */
	FZ_CHECK(f->out->count >= 1 && index == f->out->count - 1);
	FZ_CHECK(index < FUZZ_MAX_EVENTS);
	f->in_event = 1;
	f->index = index;
	f->begun++;
	return fz_count(f);
}

static int fz_null(void *ud)
{
	return fz_value(ud);
}

static int fz_boolean(void *ud, int value)
{
	FZ_CHECK(value == 0 || value == 1);
	return fz_value(ud);
}

static int fz_integer(void *ud, long long value)
{
	(void)value;
	return fz_value(ud);
}

static int fz_number(void *ud, double value)
{
	(void)value;
	return fz_value(ud);
}

static int fz_string(void *ud, const char *s, size_t len)
{
	FZ_CHECK(s != NULL || len == 0);
	return fz_value(ud);
}

static int fz_map_key(void *ud, const char *s, size_t len)
{
	FZ_CHECK(s != NULL || len == 0);
	return fz_value(ud);
}

static int fz_open(void *ud)
{
	struct fz_builder *f = ud;

	FZ_CHECK(f->in_event);
	/* The event object itself is depth 1 here; the body adds two more. */
	FZ_CHECK(f->depth + 2 < BATCH_MAX_DEPTH);
	f->depth++;
	return fz_count(f);
}

static int fz_close(void *ud)
{
	struct fz_builder *f = ud;

	FZ_CHECK(f->in_event);
	FZ_CHECK(f->depth >= 1);
	f->depth--;
	return fz_count(f);
}

static int fz_event_end(void *ud, size_t index, const char *reject)
{
	struct fz_builder *f = ud;

	FZ_CHECK(f->in_event);
	FZ_CHECK(f->depth == 0);
	FZ_CHECK(index == f->index);
	f->in_event = 0;
	f->ended++;
	if (!reject)
		f->routable++;
	return fz_count(f);
}

static const struct batch_builder fz_builder_cbs = {
	.event_begin = fz_event_begin,
	.null_value = fz_null,
	.boolean = fz_boolean,
	.integer = fz_integer,
	.number = fz_number,
	.string = fz_string,
	.map_begin = fz_open,
	.map_key = fz_map_key,
	.map_end = fz_close,
	.array_begin = fz_open,
	.array_end = fz_close,
	.event_end = fz_event_end,
};

static int fz_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A span must be one complete JSON text on its own: it is forwarded as is. */
static void fz_check_json(const char *text, size_t len)
{
	yajl_handle h = yajl_alloc(NULL, NULL, NULL);
	yajl_status st;

	FZ_CHECK(h != NULL);
	st = yajl_parse(h, (const unsigned char *)text, len);
	if (st == yajl_status_ok)
		st = yajl_complete_parse(h);
	yajl_free(h);
	FZ_CHECK(st == yajl_status_ok);
}

/* batch_compact on a routable span: not longer, still '{'…'}', idempotent. */
static void fz_check_compact(const char *span, size_t len)
{
	char *once = NULL, *twice = NULL;
	size_t n1, n2;

	once = malloc(len);
	twice = malloc(len);
	FZ_CHECK(once != NULL && twice != NULL);
	n1 = batch_compact(span, len, once);
	FZ_CHECK(n1 <= len);
	FZ_CHECK(n1 >= 2 && once[0] == '{' && once[n1 - 1] == '}');
	n2 = batch_compact(once, n1, twice);
	FZ_CHECK(n2 == n1 && memcmp(once, twice, n1) == 0);
	fz_check_json(once, n1);
	free(once);
	free(twice);
}

/* The result of a parse on its own: status, spans, and what the builder saw. */
static void fz_check_result(const struct batch *b, int rc, const char *body, size_t len,
			    size_t max_events, const char *err)
{
	size_t i, prev_end = 0;

	FZ_CHECK(rc == BATCH_OK || rc == BATCH_INVALID || rc == BATCH_TOO_MANY ||
		 rc == BATCH_NOMEM);
	FZ_CHECK(b->parser == NULL);
	FZ_CHECK(b->count <= b->cap);
	if (rc != BATCH_OK) {
		FZ_CHECK(b->count == 0);
		FZ_CHECK(err[0] != '\0');
		FZ_CHECK(strchr(err, '\n') == NULL);
		return;
	}
	FZ_CHECK(b->count <= max_events);
	for (i = 0; i < b->count; i++) {
		const struct batch_event *ev = &b->events[i];

		FZ_CHECK(ev->start < ev->end);
		FZ_CHECK(ev->end <= len);
		FZ_CHECK(ev->start >= prev_end);
		FZ_CHECK(!fz_is_space(body[ev->start]) && !fz_is_space(body[ev->end - 1]));
		prev_end = ev->end;
		if (!ev->reject) {
			FZ_CHECK(body[ev->start] == '{');
			FZ_CHECK(body[ev->end - 1] == '}');
			fz_check_compact(body + ev->start, ev->end - ev->start);
		} else {
			FZ_CHECK(ev->reject[0] != '\0');
		}
		fz_check_json(body + ev->start, ev->end - ev->start);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct batch ref, plain, small, failing;
	const char *body = (const char *)data;
	struct fz_builder f;
	char err[256];
	size_t i, routable = 0, objects = 0;
	int rc, rc2;

	/* 1. Reference parse with the checking builder. */
	memset(&f, 0, sizeof f);
	f.out = &ref;
	rc = batch_parse(&ref, body, size, FUZZ_MAX_EVENTS, &fz_builder_cbs, &f, err, sizeof err);
	fz_check_result(&ref, rc, body, size, FUZZ_MAX_EVENTS, err);
	FZ_CHECK(rc != BATCH_NOMEM);   /* this builder never fails */
	FZ_CHECK(rc != BATCH_TOO_MANY || size > 2 * FUZZ_MAX_EVENTS);
	FZ_CHECK(f.begun >= f.ended && f.begun - f.ended <= 1);
	if (rc == BATCH_OK) {
		FZ_CHECK(!f.in_event && f.begun == f.ended);
		for (i = 0; i < ref.count; i++) {
			routable += ref.events[i].reject == NULL;
			objects += body[ref.events[i].start] == '{';
		}
		FZ_CHECK(f.routable == routable);
		/* Every object element goes to the builder, routable or not. */
		FZ_CHECK(f.begun == objects);
	}

	/* 2. No builder: the same answer and the same spans. */
	rc2 = batch_parse(&plain, body, size, FUZZ_MAX_EVENTS, NULL, NULL, err, sizeof err);
	fz_check_result(&plain, rc2, body, size, FUZZ_MAX_EVENTS, err);
	FZ_CHECK(rc2 == rc);
	FZ_CHECK(plain.count == ref.count);
	for (i = 0; i < ref.count; i++) {
		FZ_CHECK(plain.events[i].start == ref.events[i].start);
		FZ_CHECK(plain.events[i].end == ref.events[i].end);
		FZ_CHECK((plain.events[i].reject == NULL) == (ref.events[i].reject == NULL));
	}

	/* 3. A small max_events: too many exactly when the reference had more. */
	rc2 = batch_parse(&small, body, size, FUZZ_SMALL_MAX, NULL, NULL, err, sizeof err);
	fz_check_result(&small, rc2, body, size, FUZZ_SMALL_MAX, err);
	if (rc == BATCH_OK && ref.count > FUZZ_SMALL_MAX)
		FZ_CHECK(rc2 == BATCH_TOO_MANY);
	else if (rc == BATCH_OK)
		FZ_CHECK(rc2 == BATCH_OK && small.count == ref.count);
	else
		FZ_CHECK(rc2 != BATCH_OK && rc2 != BATCH_NOMEM);

	/* 4. A builder failing half way through what the reference called. */
	if (f.calls > 0) {
		size_t calls = f.calls;

		memset(&f, 0, sizeof f);
		f.out = &failing;
		f.fail_at = calls / 2 + 1;
		rc2 = batch_parse(&failing, body, size, FUZZ_MAX_EVENTS, &fz_builder_cbs, &f,
				  err, sizeof err);
		fz_check_result(&failing, rc2, body, size, FUZZ_MAX_EVENTS, err);
		FZ_CHECK(rc2 == BATCH_NOMEM);
		FZ_CHECK(f.calls == f.fail_at);
	}
	return 0;
}
