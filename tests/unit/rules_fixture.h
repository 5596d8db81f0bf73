/*
 * rules_fixture.h — the rules fixture the rules unit tests share
 * (test_rules.c, test_rules_time.c, test_json_lua_lazy.c): one rules state
 * loaded from a file, the batch it parsed last and the decisions of the
 * last event routed. Most tests load tests/rules/eval.lua, whose route()
 * runs an event's "code" member with event in scope and drops the event
 * with the result as its reason (rfx_eval).
 *
 * static inline, so a test that uses only some of it compiles without
 * warnings. Include after <cmocka.h>; run from the repository root.
 * Threads: the test's own.
 */
#ifndef EGOI_TEST_RULES_FIXTURE_H
#define EGOI_TEST_RULES_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "decisions.h"
#include "rules.h"

#define RFX_EVAL_LUA "tests/rules/eval.lua"
#define RFX_MAX_EVENTS 1000

struct rules_fx {
	struct rules *r;
	struct decisions decisions;
	struct batch batch;
	char *body;                /* the batch's text (the fixture's copy) */
	struct rules_meta meta;    /* rfx_route's; index and batch_size are set there */
};

/* Loads the rules of opt into a new fixture; fails the test when they do not load. */
static inline struct rules_fx *rfx_new(const struct rules_options *opt)
{
	struct rules_fx *f = calloc(1, sizeof *f);
	char err[512] = "";

	assert_non_null(f);
	f->r = rules_new(opt, err, sizeof err);
	if (!f->r)
		fail_msg("rules_new(%s): %s", opt->path ? opt->path : "(none)", err);
	decisions_init(&f->decisions);
	f->meta.request_id = "t";
	return f;
}

static inline void rfx_free(struct rules_fx *f)
{
	if (!f)
		return;
	rules_free(f->r);
	decisions_free(&f->decisions);
	batch_free(&f->batch);
	free(f->body);
	free(f);
}

/* A cmocka teardown for a fixture in *state. */
static inline int rfx_teardown(void **state)
{
	rfx_free(*state);
	return 0;
}

/* Parses a copy of body as the fixture's batch; fails the test when it is refused. */
static inline void rfx_parse(struct rules_fx *f, const char *body)
{
	char err[256];

	free(f->body);
	f->body = strdup(body);
	assert_non_null(f->body);
	if (rules_parse_batch(f->r, f->body, strlen(f->body), RFX_MAX_EVENTS, &f->batch, err,
			      sizeof err) != 0)
		fail_msg("rules_parse_batch: %s\n%s", err, body);
}

/* Routes event i of the parsed batch with f->meta (index i + 1), adding its
 * decisions to f->decisions. */
static inline enum rules_route_result rfx_route(struct rules_fx *f, size_t i)
{
	struct rules_meta meta = f->meta;

	meta.index = i + 1;
	meta.batch_size = f->batch.count;
	return rules_route(f->r, i, &meta, &f->decisions);
}

/* s as a JSON string literal, quotes included (caller frees). */
static inline char *rfx_json_quote(const char *s)
{
	char *buf = malloc(6 * strlen(s) + 3);
	size_t n = 0;

	assert_non_null(buf);
	buf[n++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20) {
			n += (size_t)sprintf(buf + n, "\\u%04x", c);
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

/*
 * Runs code as the one event of a batch, {"action":"eval","code":code}
 * plus extra (more JSON members of the event, or NULL): clears the
 * decisions, parses, routes, ends the batch. Returns rules_route's result.
 */
static inline enum rules_route_result rfx_eval(struct rules_fx *f, const char *code,
					       const char *extra)
{
	char *quoted = rfx_json_quote(code), *body;
	enum rules_route_result rc;

	assert_true(asprintf(&body, "{\"events\":[{\"action\":\"eval\",\"code\":%s%s%s}]}",
			     quoted, extra ? "," : "", extra ? extra : "") > 0);
	decisions_clear(&f->decisions);
	rfx_parse(f, body);
	rc = rfx_route(f, 0);
	rules_end_batch(f->r);
	free(body);
	free(quoted);
	return rc;
}

#endif
