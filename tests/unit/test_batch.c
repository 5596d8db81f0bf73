/*
 * test_batch.c — batch_parse: shape checks, exact byte spans, numbers,
 * strings, limits and error messages; batch_compact.
 *
 * A recording builder turns the callbacks into a text trace ("{ k:action
 * s:email_open i:631152000 }") so tests can assert exactly what a builder
 * would have been told, with no Lua involved.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

/* ---- a builder that records a trace ---- */

struct rec {
	char *buf;
	size_t len, cap;
	size_t begins, ends, rejected;
	int fail_at;   /* > 0: the fail_at-th callback returns -1 */
	int calls;
};

static void rec_add(struct rec *r, const char *s, size_t n)
{
	if (r->len + n + 2 > r->cap) {
		r->cap = (r->len + n + 2) * 2;
		r->buf = realloc(r->buf, r->cap);
		assert_non_null(r->buf);
	}
	memcpy(r->buf + r->len, s, n);
	r->len += n;
	r->buf[r->len++] = ' ';
	r->buf[r->len] = '\0';
}

static int rec_fmt(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rec_fmt(struct rec *r, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	rec_add(r, tmp, (size_t)n);
	return ++r->calls == r->fail_at ? -1 : 0;
}

static int r_event_begin(void *ud, size_t i)
{
	((struct rec *)ud)->begins++;
	return rec_fmt(ud, "<%zu", i);
}

static int r_null(void *ud) { return rec_fmt(ud, "null"); }
static int r_bool(void *ud, int v) { return rec_fmt(ud, "b:%d", v); }
static int r_int(void *ud, long long v) { return rec_fmt(ud, "i:%lld", v); }
static int r_num(void *ud, double v) { return rec_fmt(ud, "d:%.17g", v); }
static int r_map_begin(void *ud) { return rec_fmt(ud, "{"); }
static int r_map_end(void *ud) { return rec_fmt(ud, "}"); }
static int r_arr_begin(void *ud) { return rec_fmt(ud, "["); }
static int r_arr_end(void *ud) { return rec_fmt(ud, "]"); }

static int r_str(void *ud, const char *s, size_t n)
{
	return rec_fmt(ud, "s:%.*s", (int)n, s);
}

static int r_key(void *ud, const char *s, size_t n)
{
	return rec_fmt(ud, "k:%.*s", (int)n, s);
}

static int r_event_end(void *ud, size_t i, const char *reject)
{
	struct rec *r = ud;

	r->ends++;
	if (reject)
		r->rejected++;
	return rec_fmt(ud, "%zu%s>", i, reject ? "!" : "");
}

static const struct batch_builder rec_builder = {
	r_event_begin, r_null, r_bool, r_int, r_num, r_str,
	r_map_begin, r_key, r_map_end, r_arr_begin, r_arr_end, r_event_end,
};

static void rec_clear(struct rec *r)
{
	free(r->buf);
	memset(r, 0, sizeof *r);
}

/* ---- helpers ---- */

static int parse(struct batch *b, const char *body, size_t max, struct rec *r, char *err)
{
	return batch_parse(b, body, strlen(body), max, r ? &rec_builder : NULL, r, err, 256);
}

/* The bytes of event i as a NUL-terminated string (static buffer). */
static const char *span(const struct batch *b, const char *body, size_t i)
{
	static char buf[4096];
	size_t n = b->events[i].end - b->events[i].start;

	assert_true(b->events[i].end >= b->events[i].start);
	assert_true(n < sizeof buf);
	memcpy(buf, body + b->events[i].start, n);
	buf[n] = '\0';
	return buf;
}

/* ---- tests ---- */

static void test_all_actions_fixture(void **state)
{
	struct batch b = {0}, one = {0};
	struct rec all = {0}, single = {0};
	char err[256], *wrapped, *body, *actions, *p;
	size_t len, alen, i, n, seen = 0;
	const char *begin;

	(void)state;
	body = tu_fixture("batch-all-actions.json", &len);
	actions = tu_fixture("actions.json", &alen);
	assert_int_equal(batch_parse(&b, body, len, 10000, &rec_builder, &all, err, sizeof err),
			 BATCH_OK);
	assert_int_equal(b.count, 38);
	assert_int_equal(all.begins, 38);
	assert_int_equal(all.ends, 38);
	assert_int_equal(all.rejected, 0);

	wrapped = malloc(len + 32);
	assert_non_null(wrapped);
	for (i = 0; i < b.count; i++) {
		struct batch_event *ev = &b.events[i];
		char key[64], tag[32];
		const char *a, *q;

		assert_null(ev->reject);
		assert_true(ev->start < ev->end && ev->end <= len);
		assert_int_equal(body[ev->start], '{');
		assert_int_equal(body[ev->end - 1], '}');
		/* A span is the element's bytes alone: it parses as a batch of one
		 * and gives the builder exactly what the full parse gave it. */
		n = ev->end - ev->start;
		memcpy(wrapped, "{\"events\":[", 11);
		memcpy(wrapped + 11, body + ev->start, n);
		memcpy(wrapped + 11 + n, "]}", 3);
		rec_clear(&single);
		assert_int_equal(batch_parse(&one, wrapped, n + 13, 1, &rec_builder, &single,
					     err, sizeof err), BATCH_OK);
		assert_int_equal(one.count, 1);
		assert_null(one.events[0].reject);
		assert_int_equal(one.events[0].start, 11);
		assert_int_equal(one.events[0].end, 11 + n);
		snprintf(tag, sizeof tag, "<%zu ", i);
		begin = strstr(all.buf, tag);
		assert_non_null(begin);
		snprintf(tag, sizeof tag, " %zu>", i);
		p = strstr(begin, tag);
		assert_non_null(p);
		/* Compare the traces without the index markers. */
		assert_int_equal((size_t)(p - strchr(begin, ' ')),
				 (size_t)(strstr(single.buf, " 0>") - strchr(single.buf, ' ')));
		assert_memory_equal(strchr(begin, ' '), strchr(single.buf, ' '),
				    (size_t)(p - strchr(begin, ' ')));
		/* Every event's action is one of the 38 documented ones. */
		a = strstr(body + ev->start, "\"action\": \"");
		assert_non_null(a);
		a += 11;
		q = strchr(a, '"');
		snprintf(key, sizeof key, "\"action\": \"%.*s\"", (int)(q - a), a);
		assert_non_null(strstr(actions, key));
		seen++;
	}
	assert_int_equal(seen, 38);
	/* The array closes right after the last event (whitespace apart). */
	for (i = b.events[37].end; i < len && body[i] != ']'; i++)
		assert_non_null(strchr(" \t\r\n", body[i]));
	free(wrapped);
	free(body);
	free(actions);
	rec_clear(&all);
	rec_clear(&single);
	batch_free(&b);
	batch_free(&one);
}

/* What merged forwards and dlq replay write (BATCH_PREFIX, events joined by
 * ',', BATCH_SUFFIX) is a batch this parser takes, spans exactly around
 * the events; and it is the wire format E-goi sends. */
static void test_wrapper_parses_back(void **state)
{
	static const char body[] = BATCH_PREFIX "{\"a\":1}" "," "{\"b\":[2]}" BATCH_SUFFIX;
	struct batch b = {0};
	char err[256];

	(void)state;
	assert_string_equal(BATCH_PREFIX, "{\"events\":[");
	assert_string_equal(BATCH_SUFFIX, "]}");
	assert_int_equal(batch_parse(&b, body, sizeof body - 1, 10, NULL, NULL, err, sizeof err),
			 BATCH_OK);
	assert_int_equal(b.count, 2);
	assert_int_equal(b.events[0].start, sizeof BATCH_PREFIX - 1);
	assert_int_equal(b.events[0].end, b.events[0].start + 7);
	assert_int_equal(b.events[1].start, b.events[0].end + 1);
	assert_int_equal(b.events[1].end, sizeof body - 1 - (sizeof BATCH_SUFFIX - 1));
	batch_free(&b);
}

static void test_spans_of_every_kind(void **state)
{
	const char *body =
		"{\"x\":[1,{\"a\":2}],\"events\" :\n [ 12 , \"s\\\"],\" ,{\"action\":\"a\"},"
		" [1,[2, {}]] ,null,true,-3.5e2,{ \"b\" : 1 } ,\"\" ,false] , \"y\":{}}";
	const char *want[] = {
		"12", "\"s\\\"],\"", "{\"action\":\"a\"}", "[1,[2, {}]]", "null", "true",
		"-3.5e2", "{ \"b\" : 1 }", "\"\"", "false",
	};
	struct batch b = {0};
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(parse(&b, body, 100, NULL, err), BATCH_OK);
	assert_int_equal(b.count, 10);
	for (i = 0; i < b.count; i++)
		assert_string_equal(span(&b, body, i), want[i]);
	assert_null(b.events[2].reject);
	assert_string_equal(b.events[0].reject, "event is not an object");
	assert_string_equal(b.events[3].reject, "event is not an object");
	assert_string_equal(b.events[7].reject, "event has no string action");
	batch_free(&b);
}

/* yajl also skips \v and \f between tokens: spans must skip them too (found by fuzzing). */
static void test_spans_after_vertical_tab_and_form_feed(void **state)
{
	const char *body = "{\"events\":[5\v,\"\",\f{\"action\":\"a\"}\v]}";
	struct batch b = {0};
	char err[256], out[64];

	(void)state;
	assert_int_equal(parse(&b, body, 100, NULL, err), BATCH_OK);
	assert_int_equal(b.count, 3);
	assert_string_equal(span(&b, body, 0), "5");
	assert_string_equal(span(&b, body, 1), "\"\"");
	assert_string_equal(span(&b, body, 2), "{\"action\":\"a\"}");
	out[batch_compact("{\v\"a\" :\f1}", 11, out)] = '\0';
	assert_string_equal(out, "{\"a\":1}");
	batch_free(&b);
}

static void test_numbers(void **state)
{
	const char *body = "{\"events\":[{\"action\":\"n\",\"a\":631152000,\"b\":2.5,\"c\":1e3,"
			   "\"d\":9007199254740993,\"e\":99999999999999999999,\"f\":-0.5,"
			   "\"g\":-9223372036854775808,\"h\":9223372036854775808,\"i\":0,"
			   "\"j\":1E2,\"k\":-7,\"l\":123456789012345678901234567890123456789012345678901234567890123456789.5}]}";
	struct batch b = {0};
	struct rec r = {0};
	char err[256];

	(void)state;
	assert_int_equal(parse(&b, body, 10, &r, err), BATCH_OK);
	assert_string_equal(r.buf,
			    "<0 { k:action s:n k:a i:631152000 k:b d:2.5 k:c d:1000 "
			    "k:d i:9007199254740993 k:e d:1e+20 k:f d:-0.5 "
			    "k:g i:-9223372036854775808 k:h d:9.2233720368547758e+18 k:i i:0 "
			    "k:j d:100 k:k i:-7 k:l d:1.2345678901234569e+68 } 0> ");
	rec_clear(&r);
	batch_free(&b);
}

static void test_strings_and_literals(void **state)
{
	const char *body = "{\"events\":[{\"action\":\"a\\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00\","
			   "\"raw\":\"ol\xc3\xa1\",\"n\":null,\"t\":true,\"f\":false,"
			   "\"e\":\"\",\"arr\":[],\"obj\":{}}]}";
	struct batch b = {0};
	struct rec r = {0};
	char err[256];

	(void)state;
	assert_int_equal(parse(&b, body, 10, &r, err), BATCH_OK);
	assert_string_equal(r.buf,
			    "<0 { k:action s:a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80 k:raw s:ol\xc3\xa1 "
			    "k:n null k:t b:1 k:f b:0 k:e s: k:arr [ ] k:obj { } } 0> ");
	assert_null(b.events[0].reject);
	rec_clear(&r);
	batch_free(&b);
}

static void expect_invalid(const char *body, const char *want)
{
	struct batch b = {0};
	char err[256];

	assert_int_equal(parse(&b, body, 100, NULL, err), BATCH_INVALID);
	if (!strstr(err, want))
		fail_msg("body %s: error \"%s\" lacks \"%s\"", body, err, want);
	assert_null(strchr(err, '\n'));
	assert_int_equal(b.count, 0);
	batch_free(&b);
}

static void test_invalid_json_offsets(void **state)
{
	(void)state;
	expect_invalid("{\"events\":[}", "invalid JSON at byte 11: ");
	expect_invalid("{\"events\":[1,]}", "invalid JSON at byte 13");
	/* Lexical errors point into the bad token. */
	expect_invalid("{\"events\":[{\"action\":tru}]}", "invalid JSON at byte 23");
	expect_invalid("{\"events\":[]} x", "invalid JSON at byte 14");
	expect_invalid("{\"events\":[]}{}", "trailing garbage");
	expect_invalid("{\"events\":[] /* c */}", "invalid JSON at byte 13");
	/* Truncated: the error is at the end of the body. */
	expect_invalid("{\"events\":[{\"action\":\"a\"", "invalid JSON at byte 24: parse error: premature EOF");
	expect_invalid("", "invalid JSON at byte 0");
	expect_invalid("   ", "premature EOF");
}

static void test_shape_errors(void **state)
{
	(void)state;
	expect_invalid("[{\"action\":\"a\"}]", "body is not a JSON object");
	expect_invalid("\"events\"", "body is not a JSON object");
	expect_invalid("42", "body is not a JSON object");
	expect_invalid("null", "body is not a JSON object");
	expect_invalid("{}", "no \"events\" array");
	expect_invalid("{\"event\":[],\"meta\":{\"events\":[]}}", "no \"events\" array");
	expect_invalid("{\"events\":{}}", "\"events\" is not an array at byte 10");
	expect_invalid("{\"events\": \"x\"}", "\"events\" is not an array at byte 11");
	expect_invalid("{\"events\":null}", "\"events\" is not an array");
	expect_invalid("{\"events\":[],\"events\":[]}", "duplicate \"events\" key");
	expect_invalid("{\"events\":3,\"events\":[]}", "\"events\" is not an array");
}

static void test_other_keys_ignored(void **state)
{
	const char *body = "{\"meta\":{\"events\":[1],\"action\":\"x\"},\"events\":[{\"action\":\"a\"}],"
			   "\"tail\":[{\"action\":\"b\"}]}";
	struct batch b = {0};
	struct rec r = {0};
	char err[256];

	(void)state;
	assert_int_equal(parse(&b, body, 10, &r, err), BATCH_OK);
	assert_int_equal(b.count, 1);
	assert_string_equal(r.buf, "<0 { k:action s:a } 0> ");
	rec_clear(&r);
	batch_free(&b);
}

/* {"events":[{"action":"a","x":[[...]]}]} with `arrays` nested arrays. */
static char *deep_event(int arrays)
{
	char *s = malloc((size_t)arrays * 2 + 64);
	int i;
	size_t n;

	assert_non_null(s);
	n = (size_t)sprintf(s, "{\"events\":[{\"action\":\"a\",\"x\":");
	for (i = 0; i < arrays; i++)
		s[n++] = '[';
	for (i = 0; i < arrays; i++)
		s[n++] = ']';
	strcpy(s + n, "}]}");
	return s;
}

static void test_depth_limit(void **state)
{
	struct batch b = {0};
	struct rec r = {0};
	char err[256], *ok, *deep, *side;
	size_t i, n;

	(void)state;
	/* Top object 1, events 2, event 3, then 61 arrays: 64 levels. */
	ok = deep_event(BATCH_MAX_DEPTH - 3);
	assert_int_equal(parse(&b, ok, 10, &r, err), BATCH_OK);
	assert_int_equal(b.count, 1);
	assert_null(b.events[0].reject);
	assert_int_equal(r.ends, 1);
	deep = deep_event(BATCH_MAX_DEPTH - 2);
	assert_int_equal(parse(&b, deep, 10, NULL, err), BATCH_INVALID);
	/* The 65th '[' is at 29 + 62 - 1. */
	assert_string_equal(err, "JSON nested deeper than 64 levels at byte 90");
	/* Ignored keys count too. */
	side = malloc(256);
	assert_non_null(side);
	n = (size_t)sprintf(side, "{\"pad\":");
	for (i = 0; i < 64; i++)
		side[n++] = '[';
	for (i = 0; i < 64; i++)
		side[n++] = ']';
	strcpy(side + n, ",\"events\":[]}");
	assert_int_equal(parse(&b, side, 10, NULL, err), BATCH_INVALID);
	assert_non_null(strstr(err, "nested deeper than 64"));
	free(ok);
	free(deep);
	free(side);
	rec_clear(&r);
	batch_free(&b);
}

static void test_max_events(void **state)
{
	const char *body = "{\"events\":[{\"action\":\"a\"},2,{\"action\":\"c\"}]}";
	struct batch b = {0};
	char err[256];

	(void)state;
	assert_int_equal(parse(&b, body, 3, NULL, err), BATCH_OK);
	assert_int_equal(b.count, 3);
	assert_int_equal(parse(&b, body, 2, NULL, err), BATCH_TOO_MANY);
	assert_string_equal(err, "batch has more than 2 events");
	assert_int_equal(b.count, 0);
	assert_int_equal(parse(&b, "{\"events\":[]}", 0, NULL, err), BATCH_OK);
	assert_int_equal(parse(&b, "{\"events\":[1]}", 0, NULL, err), BATCH_TOO_MANY);
	batch_free(&b);
}

static void test_rejected_elements(void **state)
{
	const char *body = "{\"events\":[{\"action\":\"a\"},1,{\"action\":2},{\"noaction\":\"x\"},"
			   "{\"sub\":{\"action\":\"c\"}},[{\"action\":\"z\"}],{\"action\":{\"x\":1}},"
			   "{\"action\":null},{\"action\":1,\"action\":\"late\"},\"s\",{\"action\":\"b\"}]}";
	const char *why[] = {
		NULL, "event is not an object", "event has no string action",
		"event has no string action", "event has no string action",
		"event is not an object", "event has no string action",
		"event has no string action", NULL, "event is not an object", NULL,
	};
	struct batch b = {0};
	struct rec r = {0};
	char err[256];
	size_t i;

	(void)state;
	assert_int_equal(parse(&b, body, 100, &r, err), BATCH_OK);
	assert_int_equal(b.count, 11);
	for (i = 0; i < b.count; i++) {
		if (why[i])
			assert_string_equal(b.events[i].reject, why[i]);
		else
			assert_null(b.events[i].reject);
	}
	/* Only objects reach the builder, with their own indices. */
	assert_int_equal(r.begins, 8);
	assert_int_equal(r.rejected, 5);
	assert_non_null(strstr(r.buf, "<0 { k:action s:a } 0> <2 "));
	assert_non_null(strstr(r.buf, "<6 { k:action { k:x i:1 } } 6!> "));
	assert_non_null(strstr(r.buf, "10> "));
	assert_null(strstr(r.buf, "s:z"));
	assert_string_equal(span(&b, body, 5), "[{\"action\":\"z\"}]");
	assert_string_equal(span(&b, body, 9), "\"s\"");
	rec_clear(&r);
	batch_free(&b);
}

static void test_invalid_utf8(void **state)
{
	(void)state;
	expect_invalid("{\"events\":[{\"action\":\"a\xff\"}]}", "invalid JSON at byte 23: lexical error");
	expect_invalid("{\"events\":[{\"action\":\"\xc3(\"}]}", "UTF8");
	/* A truncated sequence at the end of a key. */
	expect_invalid("{\"events\":[{\"a\xe2\x82\":\"x\"}]}", "invalid JSON at byte");
}

/*
 * Half a UTF-16 surrogate pair names no character: yajl would decode it as
 * '?' silently, so the batch is refused with the escape's offset. Proper
 * pairs, escaped backslashes before "u" and surrogates as keys are told apart.
 */
static void test_lone_surrogates(void **state)
{
	struct batch b = {0};
	struct rec r = {0};
	char err[256];

	(void)state;
	expect_invalid("{\"events\":[{\"action\":\"a\\ud800\"}]}",
		       "invalid JSON at byte 23: \\ud800 is a lone UTF-16 surrogate");
	expect_invalid("{\"events\":[{\"action\":\"\\uDBFFx\"}]}", "byte 22: \\uDBFF is a lone");
	/* a low half first, and a high half followed by another high half */
	expect_invalid("{\"events\":[{\"action\":\"\\udc00\\ud800\"}]}", "byte 22: \\udc00");
	expect_invalid("{\"events\":[{\"action\":\"\\ud800\\ud800\"}]}", "byte 22: \\ud800");
	/* cut off at the end of the body, and in a key */
	expect_invalid("{\"events\":[{\"action\":\"\\ud83d\\ude", "byte 22: \\ud83d");
	expect_invalid("{\"events\":[{\"\\ud83d\":\"x\",\"action\":\"a\"}]}", "byte 13: \\ud83d");
	/* after an escaped backslash the escape starts again correctly */
	expect_invalid("{\"events\":[{\"action\":\"\\\\\\ud800\"}]}", "byte 24: \\ud800");

	/* a pair decodes; "\\ud800" is a backslash and the text ud800 */
	assert_int_equal(parse(&b, "{\"events\":[{\"action\":\"\\uD83D\\uDE00\\\\ud800\\\\\"}]}", 10,
			       &r, err), BATCH_OK);
	assert_string_equal(r.buf, "<0 { k:action s:\xf0\x9f\x98\x80\\ud800\\ } 0> ");
	rec_clear(&r);
	batch_free(&b);
}

static void test_empty_and_reuse(void **state)
{
	struct batch b = {0};
	struct rec r = {0};
	char err[256];

	(void)state;
	assert_int_equal(parse(&b, "{\"events\":[{\"action\":\"a\"},{\"action\":\"b\"}]}", 9, NULL, err),
			 BATCH_OK);
	assert_int_equal(b.count, 2);
	assert_int_equal(parse(&b, " {\"events\" : [ ] }\n", 9, &r, err), BATCH_OK);
	assert_int_equal(b.count, 0);
	assert_int_equal(r.calls, 0);
	batch_reset(&b);
	batch_free(&b);
	batch_free(&b);
	batch_free(NULL);
	batch_reset(NULL);
}

static void test_builder_failure(void **state)
{
	const char *body = "{\"events\":[{\"action\":\"a\",\"n\":[1,2]},{\"action\":\"b\"}]}";
	struct batch b = {0};
	struct rec r = {0};
	char err[256];
	int at;

	(void)state;
	/* The first parse counts the callbacks; then each one fails in turn. */
	assert_int_equal(parse(&b, body, 10, &r, err), BATCH_OK);
	for (at = 1; at <= r.calls; at++) {
		struct rec f = { .fail_at = at };

		assert_int_equal(parse(&b, body, 10, &f, err), BATCH_NOMEM);
		assert_int_equal(f.calls, at);
		assert_int_equal(b.count, 0);
		rec_clear(&f);
	}
	rec_clear(&r);
	batch_free(&b);
}

static void test_many_events_grow(void **state)
{
	struct batch b = {0};
	char err[256], *body;
	size_t i, n = 0, count = 5000;

	(void)state;
	body = malloc(count * 20 + 32);
	assert_non_null(body);
	n += (size_t)sprintf(body, "{\"events\":[");
	for (i = 0; i < count; i++)
		n += (size_t)sprintf(body + n, "%s{\"action\":\"e%zu\"}", i ? "," : "", i);
	strcpy(body + n, "]}");
	assert_int_equal(parse(&b, body, count, NULL, err), BATCH_OK);
	assert_int_equal(b.count, count);
	assert_string_equal(span(&b, body, 4321), "{\"action\":\"e4321\"}");
	assert_int_equal(parse(&b, body, count - 1, NULL, err), BATCH_TOO_MANY);
	free(body);
	batch_free(&b);
}

static void test_compact(void **state)
{
	const char *in = "{\n  \"a b\" : [ 1 ,\t2 ],\r\n  \"s\": \"x  \\\" y\\\\\",\n  \"t\" : \"\\\\\" }\n";
	const char *want = "{\"a b\":[1,2],\"s\":\"x  \\\" y\\\\\",\"t\":\"\\\\\"}";
	char out[128];
	size_t n;

	(void)state;
	n = batch_compact(in, strlen(in), out);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	assert_int_equal(batch_compact("", 0, out), 0);
	/* an escaped quote after an escaped backslash (three backslashes), an
	 * unescaped one after two, and a string that never closes */
	in = "{ \"k\" : \"\\\\\\\" x\" , \"m\" : \"\\\\\\\\\" }";
	want = "{\"k\":\"\\\\\\\" x\",\"m\":\"\\\\\\\\\"}";
	n = batch_compact(in, strlen(in), out);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(out, want, n);
	in = "[ \"open  ";
	n = batch_compact(in, strlen(in), out);
	assert_int_equal(n, strlen("[\"open  "));
	assert_memory_equal(out, "[\"open  ", n);
}

static void test_compact_fixture_event(void **state)
{
	struct batch b = {0};
	char err[256], *body, *out, *wrapped;
	size_t len, n, i;

	(void)state;
	body = tu_fixture("batch-example.json", &len);
	assert_int_equal(batch_parse(&b, body, len, 10, NULL, NULL, err, sizeof err), BATCH_OK);
	assert_true(b.count >= 1);
	out = malloc(len);
	wrapped = malloc(len + 16);
	assert_non_null(out);
	assert_non_null(wrapped);
	n = batch_compact(body + b.events[0].start, b.events[0].end - b.events[0].start, out);
	assert_null(memchr(out, '\n', n));
	assert_true(n < b.events[0].end - b.events[0].start);
	for (i = 0; i + 1 < n; i++)
		assert_false(out[i] == '"' && out[i + 1] == ' ');
	/* Still one valid routable event. */
	memcpy(wrapped, "{\"events\":[", 11);
	memcpy(wrapped + 11, out, n);
	memcpy(wrapped + 11 + n, "]}", 2);
	assert_int_equal(batch_parse(&b, wrapped, n + 13, 1, NULL, NULL, err, sizeof err), BATCH_OK);
	assert_null(b.events[0].reject);
	assert_int_equal(b.events[0].end - b.events[0].start, n);
	free(out);
	free(wrapped);
	free(body);
	batch_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_actions_fixture),
		cmocka_unit_test(test_wrapper_parses_back),
		cmocka_unit_test(test_spans_of_every_kind),
		cmocka_unit_test(test_spans_after_vertical_tab_and_form_feed),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_strings_and_literals),
		cmocka_unit_test(test_invalid_json_offsets),
		cmocka_unit_test(test_shape_errors),
		cmocka_unit_test(test_other_keys_ignored),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_max_events),
		cmocka_unit_test(test_rejected_elements),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_lone_surrogates),
		cmocka_unit_test(test_empty_and_reuse),
		cmocka_unit_test(test_builder_failure),
		cmocka_unit_test(test_many_events_grow),
		cmocka_unit_test(test_compact),
		cmocka_unit_test(test_compact_fixture_event),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
