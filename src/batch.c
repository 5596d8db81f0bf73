/*
 * batch.c — an E-goi batch body → validated events with their byte spans.
 *
 * Design: one pass of yajl's callback parser over the whole body (a single
 * yajl_parse call, so yajl_get_bytes_consumed is an absolute offset). A small
 * state machine in the callbacks checks the shape ({"events":[...]}, nothing
 * else of interest), counts nesting, records each element's span and
 * forwards the inside of object elements to the caller's builder. Numbers
 * arrive as raw text (yajl_number), so integer-or-float is decided here and
 * nothing is rounded on the way.
 *
 * Spans: in start_map/start_array the bracket is at consumed - 1; a closing
 * bracket or a scalar token ends at consumed. Between two callbacks yajl can
 * only have skipped whitespace, ',' and ':', so a scalar's start is the first
 * other byte after the previous element's end.
 *
 * Offsets in error messages are 0-based byte positions in the body.
 *
 * Lone surrogates: a \u escape of half a UTF-16 surrogate pair (\ud800
 * alone, or a low half first) names no character; yajl would decode it as
 * '?' silently. A scan of the raw body before the parse (lone_surrogate)
 * refuses the batch instead (BATCH_INVALID: 400 with the byte offset), so
 * an event's text is never altered on the way; a proper pair is decoded to
 * its character as usual.
 *
 * Threads: no globals; one struct batch per thread.
 */
#include "batch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "util.h"

#define BATCH_NUM_STACK 64   /* numbers longer than this are copied to the heap */

enum bp_kind { BP_SCALAR, BP_STRING, BP_MAP, BP_ARRAY };

/* The state of one batch_parse call. */
struct bp {
	yajl_handle h;
	const char *body;
	size_t len;
	struct batch *out;
	size_t max_events;
	const struct batch_builder *bld;   /* NULL: spans and validation only */
	void *ud;
	int depth;            /* containers open, the top-level object is 1 */
	int expect_events;    /* the next depth-1 value belongs to "events" */
	int have_events;      /* an "events" key was seen */
	int in_events;        /* the events array is open (depth >= 2 inside it) */
	int in_event;         /* an object element is open: feed the builder */
	int action_pending;   /* the last key of the event's top level was "action" */
	int has_action;       /* the event's "action" value is a string */
	size_t mark;          /* end of the last element (or of the '[') */
	int status;
	char *err;
	size_t errlen;
};

static int batch_bp_fail(struct bp *p, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Records the first error and returns 0, which makes yajl cancel the parse. */
static int batch_bp_fail(struct bp *p, int status, const char *fmt, ...)
{
	va_list ap;

	if (p->status != BATCH_OK)
		return 0;
	p->status = status;
	if (p->err && p->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(p->err, p->errlen, fmt, ap);
		va_end(ap);
	}
	return 0;
}

static size_t batch_bp_consumed(const struct bp *p)
{
	return yajl_get_bytes_consumed(p->h);
}

/*
 * Whitespace as yajl's lexer reads it: JSON's four characters plus \v and
 * \f, which yajl also skips. Spans and compaction must agree with it.
 */
static int batch_bp_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* First byte at or after from that is not whitespace, ',' or ':'. */
static size_t batch_bp_skip_sep(const struct bp *p, size_t from)
{
	while (from < p->len) {
		char c = p->body[from];

		if (!batch_bp_is_space(c) && c != ',' && c != ':')
			break;
		from++;
	}
	return from;
}

static int batch_bp_push_event(struct bp *p, size_t start, const char *reject)
{
	struct batch *b = p->out;
	struct batch_event *ev;

	ev = util_array_grow(b->events, &b->cap, b->count, sizeof *ev, 64);
	if (!ev)
		return batch_bp_fail(p, BATCH_NOMEM, "out of memory");
	b->events = ev;
	ev = &b->events[b->count++];
	ev->start = start;
	ev->end = start;
	ev->reject = reject;
	return 1;
}

/*
 * Called at the start of every value (scalars and container openings),
 * before the depth changes. Returns 1 to go on, 0 to cancel.
 */
static int batch_bp_value(struct bp *p, enum bp_kind kind)
{
	int container = kind == BP_MAP || kind == BP_ARRAY;
	size_t start;

	if (p->depth == 0) {
		if (kind != BP_MAP)
			return batch_bp_fail(p, BATCH_INVALID, "body is not a JSON object");
	} else if (p->depth == 1) {
		if (p->expect_events) {
			p->expect_events = 0;
			if (kind != BP_ARRAY) {
				start = container ? batch_bp_consumed(p) - 1 : batch_bp_skip_sep(p, p->mark);
				return batch_bp_fail(p, BATCH_INVALID,
					       "\"events\" is not an array at byte %zu", start);
			}
			p->in_events = 1;
			p->mark = batch_bp_consumed(p);
		}
	} else if (p->depth == 2 && p->in_events) {
		if (p->out->count >= p->max_events)
			return batch_bp_fail(p, BATCH_TOO_MANY, "batch has more than %zu events",
				       p->max_events);
		start = container ? batch_bp_consumed(p) - 1 : batch_bp_skip_sep(p, p->mark);
		if (!batch_bp_push_event(p, start, kind == BP_MAP ? NULL : "event is not an object"))
			return 0;
		if (kind == BP_MAP) {
			p->in_event = 1;
			p->action_pending = 0;
			p->has_action = 0;
			if (p->bld && p->bld->event_begin(p->ud, p->out->count - 1) != 0)
				return batch_bp_fail(p, BATCH_NOMEM, "out of memory building event");
		} else if (!container) {
			p->mark = batch_bp_consumed(p);
			p->out->events[p->out->count - 1].end = p->mark;
		}
	} else if (p->depth == 3 && p->in_event && p->action_pending) {
		/* Last "action" key wins, as it does in the Lua table. */
		p->action_pending = 0;
		p->has_action = kind == BP_STRING;
	}
	if (container && ++p->depth > BATCH_MAX_DEPTH)
		return batch_bp_fail(p, BATCH_INVALID, "JSON nested deeper than %d levels at byte %zu",
			       BATCH_MAX_DEPTH, batch_bp_consumed(p) - 1);
	return 1;
}

/* Called after a container closed and the builder saw its end. */
static int batch_bp_close(struct bp *p)
{
	struct batch_event *ev;

	p->depth--;
	if (p->depth == 1 && p->in_events) {
		p->in_events = 0;
	} else if (p->depth == 2 && p->in_events) {
		p->mark = batch_bp_consumed(p);
		ev = &p->out->events[p->out->count - 1];
		ev->end = p->mark;
		if (p->in_event) {
			p->in_event = 0;
			if (!p->has_action)
				ev->reject = "event has no string action";
			if (p->bld && p->bld->event_end(p->ud, p->out->count - 1, ev->reject) != 0)
				return batch_bp_fail(p, BATCH_NOMEM, "out of memory building event");
		}
	}
	return 1;
}

/* Maps a builder's -1 to a cancelled parse. */
static int batch_bp_built(struct bp *p, int rc)
{
	if (rc != 0)
		return batch_bp_fail(p, BATCH_NOMEM, "out of memory building event");
	return 1;
}

static int batch_cb_null(void *ctx)
{
	struct bp *p = ctx;

	if (!batch_bp_value(p, BP_SCALAR))
		return 0;
	return p->in_event && p->bld ? batch_bp_built(p, p->bld->null_value(p->ud)) : 1;
}

static int batch_cb_boolean(void *ctx, int value)
{
	struct bp *p = ctx;

	if (!batch_bp_value(p, BP_SCALAR))
		return 0;
	return p->in_event && p->bld ? batch_bp_built(p, p->bld->boolean(p->ud, value)) : 1;
}

static int batch_cb_number(void *ctx, const char *s, size_t len)
{
	struct bp *p = ctx;
	long long iv = 0;
	double dv = 0;
	enum batch_number_kind kind;

	if (!batch_bp_value(p, BP_SCALAR))
		return 0;
	if (!p->in_event || !p->bld)
		return 1;
	kind = batch_number(s, len, &iv, &dv);
	if (kind == BATCH_NUMBER_NOMEM)
		return batch_bp_fail(p, BATCH_NOMEM, "out of memory");
	return batch_bp_built(p, kind == BATCH_NUMBER_INTEGER ? p->bld->integer(p->ud, iv)
							: p->bld->number(p->ud, dv));
}

enum batch_number_kind batch_number(const char *s, size_t len, long long *iv, double *dv)
{
	char stackbuf[BATCH_NUM_STACK], *buf = stackbuf;
	int is_int;

	/* yajl's text is not NUL-terminated; strtoll/strtod need a copy. */
	if (len >= sizeof stackbuf) {
		buf = malloc(len + 1);
		if (!buf)
			return BATCH_NUMBER_NOMEM;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	is_int = !memchr(s, '.', len) && !memchr(s, 'e', len) && !memchr(s, 'E', len);
	if (is_int) {
		errno = 0;
		*iv = strtoll(buf, NULL, 10);
		is_int = errno != ERANGE;
	}
	if (!is_int)
		*dv = strtod(buf, NULL);
	/* Freed before the caller's builder runs: it may longjmp (Lua memory error). */
	if (buf != stackbuf)
		free(buf);
	return is_int ? BATCH_NUMBER_INTEGER : BATCH_NUMBER_FLOAT;
}

static int batch_cb_string(void *ctx, const unsigned char *s, size_t len)
{
	struct bp *p = ctx;

	if (!batch_bp_value(p, BP_STRING))
		return 0;
	return p->in_event && p->bld ? batch_bp_built(p, p->bld->string(p->ud, (const char *)s, len)) : 1;
}

static int batch_cb_start_map(void *ctx)
{
	struct bp *p = ctx;

	if (!batch_bp_value(p, BP_MAP))
		return 0;
	return p->in_event && p->bld ? batch_bp_built(p, p->bld->map_begin(p->ud)) : 1;
}

static int batch_cb_map_key(void *ctx, const unsigned char *s, size_t len)
{
	struct bp *p = ctx;

	if (p->depth == 1) {
		if (len == sizeof BATCH_KEY - 1 && memcmp(s, BATCH_KEY, len) == 0) {
			if (p->have_events)
				return batch_bp_fail(p, BATCH_INVALID, "duplicate \"events\" key at byte %zu",
					       batch_bp_consumed(p));
			p->have_events = 1;
			p->expect_events = 1;
			p->mark = batch_bp_consumed(p);
		}
		return 1;
	}
	if (!p->in_event)
		return 1;
	if (p->depth == 3)
		p->action_pending = len == 6 && memcmp(s, "action", 6) == 0;
	return p->bld ? batch_bp_built(p, p->bld->map_key(p->ud, (const char *)s, len)) : 1;
}

static int batch_cb_end_map(void *ctx)
{
	struct bp *p = ctx;

	if (p->in_event && p->bld && !batch_bp_built(p, p->bld->map_end(p->ud)))
		return 0;
	return batch_bp_close(p);
}

static int batch_cb_start_array(void *ctx)
{
	struct bp *p = ctx;

	if (!batch_bp_value(p, BP_ARRAY))
		return 0;
	return p->in_event && p->bld ? batch_bp_built(p, p->bld->array_begin(p->ud)) : 1;
}

static int batch_cb_end_array(void *ctx)
{
	struct bp *p = ctx;

	if (p->in_event && p->bld && !batch_bp_built(p, p->bld->array_end(p->ud)))
		return 0;
	return batch_bp_close(p);
}

static const yajl_callbacks bp_callbacks = {
	.yajl_null = batch_cb_null,
	.yajl_boolean = batch_cb_boolean,
	.yajl_number = batch_cb_number,
	.yajl_string = batch_cb_string,
	.yajl_start_map = batch_cb_start_map,
	.yajl_map_key = batch_cb_map_key,
	.yajl_end_map = batch_cb_end_map,
	.yajl_start_array = batch_cb_start_array,
	.yajl_end_array = batch_cb_end_array,
};

/*
 * Where yajl stopped: usually just past the offending token (report its last
 * byte), but for some lexical errors at the offending byte itself, which
 * the whitespace before it gives away.
 */
static size_t batch_error_offset(void *h, const char *text, size_t len)
{
	size_t off = yajl_get_bytes_consumed(h);

	if (off == 0)
		return 0;
	if (off < len && batch_bp_is_space(text[off - 1]))
		return off;
	return off - 1;
}

void batch_syntax_error(void *h, const char *text, size_t len, int stopped_in_parse, char *err,
			size_t errlen)
{
	unsigned char *msg = yajl_get_error(h, 0, (const unsigned char *)text, len);
	const char *reason = msg ? (const char *)msg : "syntax error";
	size_t offset = stopped_in_parse ? batch_error_offset(h, text, len) : len;
	size_t n = strlen(reason);

	while (n > 0 && (reason[n - 1] == '\n' || reason[n - 1] == '\r' || reason[n - 1] == ' '))
		n--;
	if (err && errlen > 0) {
		snprintf(err, errlen, "invalid JSON at byte %zu: %.*s", offset, (int)n, reason);
		for (size_t i = 0; err[i]; i++)
			if (err[i] == '\n' || err[i] == '\r')
				err[i] = ' ';
	}
	if (msg)
		yajl_free_error(h, msg);
}

void batch_reset(struct batch *b)
{
	if (!b)
		return;
	if (b->parser) {
		yajl_free(b->parser);
		b->parser = NULL;
	}
	b->count = 0;
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	batch_reset(b);
	free(b->events);
	b->events = NULL;
	b->count = 0;
	b->cap = 0;
}

/* The value of the four hex digits at s[0..avail), or -1. */
static long batch_hex4(const char *s, size_t avail)
{
	long v = 0;

	if (avail < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/*
 * See batch.h. yajl turns such an escape into '?'
 * without a word, which would change the event's text behind the sender's
 * back, so the batch is refused instead. A backslash can only stand inside
 * a string in valid JSON, and there it always starts an escape, so hopping
 * from one backslash to the next over each escape is enough (an escaped
 * backslash is hopped over whole); invalid JSON is yajl's to report.
 */
size_t batch_lone_surrogate(const char *body, size_t len)
{
	const char *p = body, *end = body + len;

	while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
		long hi = p + 1 < end && p[1] == 'u' ? batch_hex4(p + 2, (size_t)(end - p - 2)) : -1, lo;

		if (hi < 0xd800 || hi > 0xdfff) {
			p += 2;   /* any other escape; p may now be end */
			if (p >= end)
				break;
			continue;
		}
		if (hi >= 0xdc00)
			return (size_t)(p - body);
		lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? batch_hex4(p + 8, 4) : -1;
		if (lo < 0xdc00 || lo > 0xdfff)
			return (size_t)(p - body);
		p += 12;
	}
	return (size_t)-1;
}

int batch_parse(struct batch *out, const char *body, size_t len, size_t max_events,
		const struct batch_builder *builder, void *ud, char *err, size_t errlen)
{
	struct bp p;
	yajl_status st;
	int in_parse;

	memset(&p, 0, sizeof p);
	p.body = body;
	p.len = len;
	p.out = out;
	p.max_events = max_events;
	p.bld = builder;
	p.ud = ud;
	p.err = err;
	p.errlen = errlen;
	p.status = BATCH_OK;
	if (err && errlen > 0)
		err[0] = '\0';
	batch_reset(out);

	size_t lone = batch_lone_surrogate(body, len);

	if (lone != (size_t)-1) {
		batch_bp_fail(&p, BATCH_INVALID, "invalid JSON at byte %zu: \\u%.4s is a lone UTF-16 "
			"surrogate (not a character)", lone, body + lone + 2);
		goto out;
	}
	p.h = yajl_alloc(&bp_callbacks, NULL, &p);
	if (!p.h) {
		batch_bp_fail(&p, BATCH_NOMEM, "out of memory");
		goto out;
	}
	/* Kept in out until the end: a builder may longjmp out of yajl_parse. */
	out->parser = p.h;

	st = yajl_parse(p.h, (const unsigned char *)body, len);
	/* Offsets from yajl_complete_parse refer to its own one-byte buffer. */
	in_parse = st != yajl_status_ok;
	if (st == yajl_status_ok)
		st = yajl_complete_parse(p.h);

	if (st == yajl_status_client_canceled) {
		if (p.status == BATCH_OK)
			batch_bp_fail(&p, BATCH_NOMEM, "parse cancelled");
	} else if (st == yajl_status_error) {
		p.status = BATCH_INVALID;
		batch_syntax_error(p.h, body, len, in_parse, err, errlen);
	} else if (!p.have_events) {
		batch_bp_fail(&p, BATCH_INVALID, "no \"events\" array");
	}
out:
	if (out->parser) {
		yajl_free(out->parser);
		out->parser = NULL;
	}
	if (p.status != BATCH_OK)
		out->count = 0;
	return p.status;
}

/* The index after the string opening at text[i]: after the first quote
 * not escaped (preceded by an even run of backslashes), or len. */
static size_t batch_string_end(const char *text, size_t len, size_t i)
{
	size_t j = i + 1;

	for (;;) {
		const char *q = memchr(text + j, '"', len - j);
		size_t bs = 0;

		if (!q)
			return len;
		j = (size_t)(q - text);
		while (j - bs > i + 1 && text[j - 1 - bs] == '\\')
			bs++;
		j++;
		if (bs % 2 == 0)
			return j;
	}
}

size_t batch_compact(const char *text, size_t len, char *out)
{
	size_t i = 0, n = 0;

	/* Strings are copied whole (memchr finds their end: most of an event's
	 * bytes are in strings); whitespace between tokens is dropped. */
	while (i < len) {
		if (text[i] == '"') {
			size_t end = batch_string_end(text, len, i);

			memcpy(out + n, text + i, end - i);
			n += end - i;
			i = end;
		} else {
			if (!batch_bp_is_space(text[i]))
				out[n++] = text[i];
			i++;
		}
	}
	return n;
}
