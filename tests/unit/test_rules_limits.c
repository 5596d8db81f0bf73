/*
 * test_rules_limits.c — what one rule may make the router hold: json.encode
 * under the memory limit, forward() bodies against max_forward_body and
 * the batch's total against max_batch_forward_bytes, decisions charged to
 * the memory limit, the header rule (named in every refusal) and forwards
 * to the router's own endpoint.
 *
 * Uses tests/rules/eval.lua (see test_rules.c): each event's code runs in
 * route(). Run from the repository root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "decisions.h"
#include "batch.h"
#include "json_lua.h"
#include "rules.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL "tests/rules/eval.lua"

struct fx {
	struct rules *r;
	struct decisions decisions;
	struct batch batch;
	char *body;
};

static struct fx *fx_new(const struct rules_options *opt)
{
	struct fx *f = calloc(1, sizeof *f);
	char err[512];

	assert_non_null(f);
	f->r = rules_new(opt, err, sizeof err);
	if (!f->r)
		fail_msg("rules_new: %s", err);
	decisions_init(&f->decisions);
	return f;
}

static void fx_free(struct fx *f)
{
	rules_free(f->r);
	decisions_free(&f->decisions);
	batch_free(&f->batch);
	free(f->body);
	free(f);
}

/* Routes a batch of n events whose codes are given; returns each rc in rcs. */
static void run(struct fx *f, size_t n, const char *const *codes,
		enum rules_route_result *rcs)
{
	char body[16384] = "{\"events\":[", err[256];
	size_t len = strlen(body);

	for (size_t i = 0; i < n; i++) {
		len += (size_t)snprintf(body + len, sizeof body - len, "%s{\"action\":\"eval\",\"code\":\"",
					i ? "," : "");
		for (const char *c = codes[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				body[len++] = '\\';
			body[len++] = *c;
		}
		len += (size_t)snprintf(body + len, sizeof body - len, "\"}");
		assert_true(len + 16 < sizeof body);
	}
	snprintf(body + len, sizeof body - len, "]}");
	decisions_clear(&f->decisions);
	free(f->body);
	f->body = strdup(body);
	assert_non_null(f->body);
	if (rules_parse_batch(f->r, f->body, strlen(f->body), 100, &f->batch, err, sizeof err) != 0)
		fail_msg("rules_parse_batch: %s", err);
	for (size_t i = 0; i < n; i++) {
		struct rules_meta meta = {
			.index = i + 1, .batch_size = n, .request_id = "req-limits",
			.event_bytes = f->batch.events[i].end - f->batch.events[i].start,
		};

		rcs[i] = rules_route(f->r, i, &meta, &f->decisions);
	}
}

/* The decision of event ev of kind, or NULL. */
static const struct decision *find(struct fx *f, size_t ev, enum decision_kind kind)
{
	for (size_t i = 0; i < f->decisions.count; i++)
		if (f->decisions.items[i].event == ev && f->decisions.items[i].kind == kind)
			return &f->decisions.items[i];
	return NULL;
}

static size_t count(struct fx *f, size_t ev, enum decision_kind kind)
{
	size_t n = 0;

	for (size_t i = 0; i < f->decisions.count; i++)
		n += f->decisions.items[i].event == ev && f->decisions.items[i].kind == kind;
	return n;
}

static void expect_error(struct fx *f, const char *code, const char *want)
{
	enum rules_route_result rc;
	const struct decision *e;

	run(f, 1, &code, &rc);
	if (rc != RULES_ROUTE_RULE_FAILED)
		fail_msg("%s: rc %d, want a rule error", code, rc);
	e = find(f, 0, DECISION_ERROR);
	assert_non_null(e);
	assert_int_equal(f->decisions.count, 1);
	if (!strstr(e->error, want))
		fail_msg("%s: error '%s' lacks '%s'", code, e->error, want);
	rules_end_batch(f->r);
}

static void expect_ok(struct fx *f, const char *code)
{
	enum rules_route_result rc;

	run(f, 1, &code, &rc);
	if (rc != RULES_ROUTE_RAN)
		fail_msg("%s: rc %d (%s)", code, rc, f->decisions.count ? f->decisions.items[0].error : "");
	rules_end_batch(f->r);
}

/* A lua_Alloc that counts, with a limit: what the encoder must go through. */
struct acct {
	size_t used, peak, limit;
	int refused;
};

static void *acct_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct acct *a = ud;
	size_t old = ptr ? osize : 0;
	void *p;

	if (nsize == 0) {
		free(ptr);
		a->used -= old;
		return NULL;
	}
	if (a->limit && nsize > old && nsize - old > a->limit - a->used) {
		a->refused = 1;
		return NULL;
	}
	p = realloc(ptr, nsize);
	if (!p)
		return NULL;
	a->used = a->used - old + nsize;
	if (a->used > a->peak)
		a->peak = a->used;
	return p;
}

/* Pushes a table holding n references to one string of len bytes. */
static void push_refs(lua_State *L, size_t len, int n)
{
	char *s = malloc(len);

	assert_non_null(s);
	memset(s, 'x', len);
	lua_createtable(L, n, 0);
	lua_pushlstring(L, s, len);
	free(s);
	for (int i = 1; i <= n; i++) {
		lua_pushvalue(L, -1);
		lua_rawseti(L, -3, i);
	}
	lua_pop(L, 1);
}

/*
 * The JSON text is built through the state's allocator: its bytes show in
 * the accounting, and a limit stops it cleanly (no crash, nothing leaked).
 */
static void test_json_encode_uses_state_allocator(void **state)
{
	struct acct a = { 0 };
	lua_State *L = lua_newstate(acct_alloc, &a);
	char err[128], *out = NULL;
	size_t len = 0, before;

	(void)state;
	assert_non_null(L);
	push_refs(L, (size_t)1 << 20, 1);
	before = a.peak;
	assert_int_equal(json_lua_encode(L, -1, &out, &len, err, sizeof err), 0);
	assert_int_equal(len, ((size_t)1 << 20) + 4);
	/* the text (about 1 MB) passed through the allocator while it was built */
	assert_true(a.peak >= before + ((size_t)1 << 20));
	free(out);
	lua_pop(L, 1);

	/* 100 references to 1 MB under an 8 MB limit: refused, never over the limit */
	a.limit = a.used + ((size_t)8 << 20);
	push_refs(L, (size_t)1 << 20, 100);
	before = a.used;
	a.peak = a.used;
	assert_int_equal(json_lua_encode(L, -1, &out, &len, err, sizeof err), JSON_LUA_NOMEM);
	assert_null(out);
	assert_string_equal(err, "not enough memory");
	assert_true(a.refused);
	assert_true(a.peak <= a.limit);
	assert_int_equal(a.used, before);   /* everything the encoder took is back */

	/* json.encode raises a memory error, as Lua itself would */
	lua_pushcfunction(L, json_lua_l_encode);
	lua_insert(L, -2);
	assert_int_equal(lua_pcall(L, 1, 1, 0), LUA_ERRMEM);   /* lua_error makes it one */
	assert_string_equal(lua_tostring(L, -1), "not enough memory");
	lua_pop(L, 1);
	lua_close(L);
}

/* 100 references to one 16 MB string: json.encode stays inside 64 MB. */
static void test_json_encode_many_references(void **state)
{
	struct rules_options opt = { .path = EVAL, .memory_limit = (size_t)64 << 20 };
	struct fx *f = fx_new(&opt);

	(void)state;
	expect_error(f, "local s = string.rep('x', 16 * 1024 * 1024) local t = {} "
			"for i = 1, 100 do t[i] = s end return #json.encode(t)",
		     "memory limit exceeded");
	/* pcall in the rule does not hide it */
	expect_error(f, "local s = string.rep('x', 16 * 1024 * 1024) local t = {} "
			"for i = 1, 100 do t[i] = s end "
			"local ok = pcall(json.encode, t) return tostring(ok)",
		     "memory limit exceeded");
	/* the state is usable afterwards, and a large text that fits still encodes */
	expect_ok(f, "local s = string.rep('y', 4 * 1024 * 1024) "
		     "return #json.encode({ s, s })");
	assert_string_equal(f->decisions.items[0].reason, "8388615");
	fx_free(f);
}

/* forward() bodies: max_forward_body each, max_batch_forward_bytes per batch. */
static void test_forward_body_caps(void **state)
{
	struct rules_options opt = {
		.path = EVAL, .memory_limit = (size_t)64 << 20,
		.max_forward_body = 1000, .max_batch_forward = 5000,
	};
	struct fx *f = fx_new(&opt);
	const char *codes[3];
	enum rules_route_result rc[3];

	(void)state;
	expect_ok(f, "forward('https://a.example/', { body = string.rep('b', 1000) })");
	expect_error(f, "forward('https://a.example/', { body = string.rep('b', 1001) })",
		     "forward: body is 1001 bytes, over max_forward_body (1000)");
	expect_error(f, "forward('https://a.example/', { body = { s = string.rep('b', 1000) } })",
		     "over max_forward_body");
	/* six forwards of 1000 bytes in one event: the sixth goes over 5000 */
	expect_error(f, "for i = 1, 6 do forward('https://a.example/' .. i, "
			"{ body = string.rep('b', 1000) }) end",
		     "max_batch_forward_bytes (5000)");

	/* across events: event 2 goes over, its share is given back for event 3 */
	codes[0] = "for i = 1, 4 do forward('https://a.example/', { body = string.rep('b', 1000) }) end";
	codes[1] = "for i = 1, 2 do forward('https://a.example/', { body = string.rep('b', 1000) }) end";
	codes[2] = "forward('https://a.example/', { body = string.rep('b', 900) })";
	run(f, 3, codes, rc);
	assert_int_equal(rc[0], RULES_ROUTE_RAN);
	assert_int_equal(rc[1], RULES_ROUTE_RULE_FAILED);
	assert_int_equal(rc[2], RULES_ROUTE_RAN);
	assert_int_equal(count(f, 0, DECISION_FORWARD), 4);
	assert_int_equal(count(f, 1, DECISION_FORWARD), 0);
	assert_non_null(strstr(find(f, 1, DECISION_ERROR)->error, "max_batch_forward_bytes"));
	assert_int_equal(count(f, 2, DECISION_FORWARD), 1);
	rules_end_batch(f->r);

	/* the next batch starts from zero again */
	expect_ok(f, "for i = 1, 5 do forward('https://a.example/', { body = string.rep('b', 1000) }) end");
	fx_free(f);
}

/* Decisions live in C, but count against lua_memory_limit. */
static void test_decisions_count_against_memory(void **state)
{
	struct rules_options opt = { .path = EVAL, .memory_limit = (size_t)8 << 20 };
	struct fx *f = fx_new(&opt);

	(void)state;
	/* 40 forwards of one 1 MB string would hold 40 MB outside the 8 MB heap */
	expect_error(f, "local s = string.rep('b', 1024 * 1024) "
			"for i = 1, 40 do forward('https://a.example/' .. i, { body = s }) end",
		     "memory limit exceeded");
	expect_error(f, "local s = string.rep('b', 1024 * 1024) "
			"for i = 1, 40 do pcall(write, 'x.log', { line = s }) end",
		     "memory limit exceeded");
	/* the charges went with the failed events: a few fit again */
	expect_ok(f, "local s = string.rep('b', 1024 * 1024) "
		     "for i = 1, 3 do forward('https://a.example/' .. i, { body = s }) end");
	fx_free(f);
}

/* Every header forward() accepts is sent; every refusal names the header. */
static void test_forward_header_rule(void **state)
{
	struct rules_options opt = { .path = EVAL };
	struct fx *f = fx_new(&opt);

	(void)state;
	expect_error(f, "forward('https://a.example/', { headers = { ['X-A'] = 'a\\1b' } })",
		     "header 'X-A' has a control character in its value");
	expect_error(f, "forward('https://a.example/', { headers = { ['X-Esc'] = '\\27[31m' } })",
		     "header 'X-Esc' has a control character");
	expect_error(f, "forward('https://a.example/', { headers = { ['X-Del'] = 'a\\127' } })",
		     "header 'X-Del' has a control character");
	expect_error(f, "forward('https://a.example/', { headers = { ['X-Router-Hop'] = '0' } })",
		     "header 'X-Router-Hop' is set by the router");
	expect_error(f, "forward('https://a.example/', { headers = { ['x-router-anything'] = '1' } })",
		     "header 'x-router-anything' is set by the router");
	expect_error(f, "forward('https://a.example/', { headers = { ['webhook-id'] = '1' } })",
		     "header 'webhook-id' is set by the router");
	expect_error(f, "forward('https://a.example/', { headers = { ['Webhook-Other'] = '1' } })",
		     "header 'Webhook-Other' is set by the router");
	expect_error(f, "forward('https://a.example/', { headers = { ['Content-Type'] = 'x' } })",
		     "use opts.content_type");
	expect_error(f, "forward('https://a.example/', { headers = { ['X-Long'] = string.rep('v', 8193) } })",
		     "header 'X-Long' has a value longer than 8192 bytes");
	/* a tab is fine, as are ordinary names */
	expect_ok(f, "forward('https://a.example/', { headers = { ['X-Tab'] = 'a\\tb', "
		     "['X-Routerless'] = 'y' } })");
	fx_free(f);
}

/* forward() to this router's own listen address and endpoint. */
static void test_forward_to_self(void **state)
{
	struct rules_options opt = {
		.path = EVAL, .self_listen = "127.0.0.1:8443s, 9000", .self_endpoint = "/hooks/egoi",
	};
	struct fx *f = fx_new(&opt);

	(void)state;
	expect_error(f, "forward('https://127.0.0.1:8443/hooks/egoi')",
		     "forward: url is this router's own endpoint");
	expect_error(f, "forward('https://localhost:8443/hooks/egoi?token=t')", "own endpoint");
	expect_error(f, "forward('http://127.0.0.1:9000/hooks/egoi/')", "own endpoint");
	expect_error(f, "forward('https://[::1]:9000/hooks/%65goi')", "own endpoint");
	expect_error(f, "forward('https://0.0.0.0:9000/x/../hooks/egoi')", "own endpoint");
	expect_error(f, "forward('https://LOCALHOST:9000/hooks/egoi')", "own endpoint");
	/* another path, port or address is somebody else */
	expect_ok(f, "forward('https://127.0.0.1:8443/other')");
	expect_ok(f, "forward('https://127.0.0.1:8444/hooks/egoi')");
	expect_ok(f, "forward('https://10.1.2.3:8443/hooks/egoi')");
	expect_ok(f, "forward('https://127.0.0.1:8443/hooks/egoi2')");
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_encode_uses_state_allocator),
		cmocka_unit_test(test_json_encode_many_references),
		cmocka_unit_test(test_forward_body_caps),
		cmocka_unit_test(test_decisions_count_against_memory),
		cmocka_unit_test(test_forward_header_rule),
		cmocka_unit_test(test_forward_to_self),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
