/*
 * rules_api.c — the functions rules decide with: forward, write, drop
 * (json.*, log.*, print, env, hmac_sha256 and now are rules_api_lib.c's).
 *
 * Design: forward/write/drop append decisions to the struct decisions of the
 * event being routed (r->ctx, set by rules_route). Each one validates every
 * argument first, while only Lua-owned memory is in use, and allocates the
 * decision's C strings last, after the final point where a Lua error could
 * be raised: a Lua error (a longjmp) in between would leak them. Header sets
 * are stored sorted by name so equal sets compare equal when forwards are
 * merged (decisions.h).
 *
 * Threads: functions reach their struct rules through the calling state;
 * nothing here is shared between states.
 */
#include "rules_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#include "decisions.h"
#include "destination.h"
#include "header_rule.h"
#include "json_lua.h"
#include "sink_file.h"

#define API_URL_MAX 4096
#define API_HEADERS_MAX 64
#define API_CONTENT_TYPE_MAX 255
#define API_NAME_MAX 64
#define API_REASON_MAX 128

struct api_header {
	const char *name, *value;  /* anchored by the headers table on the stack */
	size_t name_len, value_len;
};

/* The rules of the event being routed; raises when called outside route(). */
static struct rules *rules_api_route_ctx(lua_State *L, const char *fn)
{
	struct rules *r = rules_from(L);

	if (!r->ctx.decisions)
		luaL_error(L, "%s() is only valid inside route()", fn);
	if (r->ctx.decisions->count - r->ctx.first >= RULES_MAX_DECISIONS)
		luaL_error(L, "%s: too many decisions for one event (max %d)", fn, RULES_MAX_DECISIONS);
	return r;
}

/* Printable: no control characters (so it cannot split a header or a log line). */
static int rules_api_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* An http(s) URL with a host, read by the parser delivery uses (destination.h). */
static int rules_api_url_ok(const char *url, size_t len)
{
	char *key = NULL;
	int ok;

	if (len > API_URL_MAX || !rules_api_printable(url, len) || memchr(url, ' ', len))
		return 0;
	ok = destination_key(url, &key, NULL) == 0;
	free(key);
	return ok;
}

static int rules_api_header_cmp(const void *a, const void *b)
{
	const struct api_header *x = a, *y = b;
	int c = strcasecmp(x->name, y->name);

	return c ? c : strcmp(x->name, y->name);
}

/*
 * Reads opts.headers (at idx) into h; returns the count and the stored
 * length. Every header must pass header_rule.h, the rule delivery applies
 * too, so nothing a rule asks for is silently left out of the request.
 */
static size_t rules_api_headers(lua_State *L, int idx, struct api_header *h, size_t *total)
{
	size_t n = 0;
	const char *why;

	*total = 0;
	if (lua_isnil(L, idx))
		return 0;
	if (lua_type(L, idx) != LUA_TTABLE)
		luaL_error(L, "forward: headers must be a table");
	json_lua_lazy_materialize(L, idx);   /* an event as headers: its fields */
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		struct api_header *it = &h[n];

		if (n == API_HEADERS_MAX)
			luaL_error(L, "forward: too many headers (max %d)", API_HEADERS_MAX);
		if (lua_type(L, -2) != LUA_TSTRING)
			luaL_error(L, "forward: header names must be strings");
		it->name = lua_tolstring(L, -2, &it->name_len);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "forward: header '%s' must have a string value",
				   rules_api_printable(it->name, it->name_len) ? it->name : "?");
		it->value = lua_tolstring(L, -1, &it->value_len);
		why = header_rule_check(it->name, it->name_len, it->value, it->value_len);
		if (why) {
			/* a name with control characters must not reach the log as is */
			if (!rules_api_printable(it->name, it->name_len) || strlen(it->name) != it->name_len)
				luaL_error(L, "forward: a header name %s", why);
			luaL_error(L, "forward: header '%s' %s%s", it->name, why,
				   strcasecmp(it->name, "Content-Type") == 0 ? " (use opts.content_type)"
									     : "");
		}
		n++;
		*total += it->name_len + 2 + it->value_len + 1;
		lua_pop(L, 1);
	}
	qsort(h, n, sizeof *h, rules_api_header_cmp);
	return n;
}

/* "Name: value\n" lines into a new heap string; NULL on OOM. */
static char *rules_api_headers_join(const struct api_header *h, size_t n, size_t total)
{
	char *s = malloc(total + 1), *p = s;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, h[i].name, h[i].name_len);
		p += h[i].name_len;
		*p++ = ':';
		*p++ = ' ';
		memcpy(p, h[i].value, h[i].value_len);
		p += h[i].value_len;
		*p++ = '\n';
	}
	*p = '\0';
	return s;
}

/* opts.KEY: NULL when nil, else a string that must be printable and 1..max bytes. */
static const char *rules_api_opt_string(lua_State *L, int idx, const char *fn, const char *key,
				  size_t max, size_t *len)
{
	const char *s;

	*len = 0;
	if (lua_isnil(L, idx))
		return NULL;
	if (lua_type(L, idx) != LUA_TSTRING)
		luaL_error(L, "%s: %s must be a string", fn, key);
	s = lua_tolstring(L, idx, len);
	if (*len == 0 || *len > max || !rules_api_printable(s, *len))
		luaL_error(L, "%s: %s must be 1 to %d printable characters", fn, key, (int)max);
	return s;
}

/*
 * Every key of opts (at index 2) must be one of keys: a misspelt option
 * ("nmae", "header") would otherwise be ignored without a word, and with
 * it what it carried (an auth header, a name the metrics group by).
 */
static void rules_api_opts_known(lua_State *L, const char *fn, const char *const *keys)
{
	lua_pushnil(L);
	while (lua_next(L, 2)) {
		size_t len;
		const char *k;
		int known = 0;

		lua_pop(L, 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			luaL_error(L, "%s: opts takes named options only (a %s key)", fn,
				   luaL_typename(L, -1));
		k = lua_tolstring(L, -1, &len);
		for (int i = 0; keys[i] && !known; i++)
			known = strlen(keys[i]) == len && memcmp(keys[i], k, len) == 0;
		if (!known) {
			/* the name is the rule's text: shown only when it is printable */
			if (len > API_NAME_MAX || !rules_api_printable(k, len) || strlen(k) != len)
				luaL_error(L, "%s: unknown option (not printable)", fn);
			luaL_error(L, "%s: unknown option '%s'", fn, k);
		}
	}
}

/* Pushes opts.KEY for each key (nil when opts is nil); opts is at index 2. */
static void rules_api_opts(lua_State *L, const char *fn, const char *const *keys)
{
	int has = !lua_isnoneornil(L, 2);

	if (has && lua_type(L, 2) != LUA_TTABLE)
		luaL_error(L, "%s: opts must be a table", fn);
	lua_settop(L, 2);
	if (has)
		rules_api_opts_known(L, fn, keys);
	for (int i = 0; keys[i]; i++) {
		if (has)
			lua_getfield(L, 2, keys[i]);
		else
			lua_pushnil(L);
	}
}

/*
 * Counts n bytes of a decision against the memory limit (rules_charge);
 * when refused, frees held and raises a memory-limit error that pcall in
 * the rule cannot catch.
 */
static void rules_api_charge(lua_State *L, struct rules *r, const char *fn, size_t n, char *held)
{
	if (rules_charge(r, n) == 0)
		return;
	free(held);
	r->fatal = RULES_FATAL_MEMORY;
	snprintf(r->fatal_msg, sizeof r->fatal_msg,
		 "%s: memory limit exceeded (the decisions would hold %zu more bytes)", fn, n);
	lua_pushstring(L, r->fatal_msg);
	lua_error(L);
}

/* A body that could not be encoded: a refused allocation is a memory error. */
static int rules_api_body_error(lua_State *L, const char *what, int rc, const char *err)
{
	if (rc == JSON_LUA_NOMEM) {
		lua_pushliteral(L, "not enough memory");
		return lua_error(L);
	}
	return luaL_error(L, "%s: %s", what, err);
}

/* forward(url [, {body=, headers=, method=, content_type=, name=}]) */
/* The method option at idx: "POST" when nil; raises unless POST or PUT (any case). */
static const char *rules_api_forward_method(lua_State *L, int idx)
{
	const char *m;

	if (lua_isnil(L, idx))
		return "POST";
	m = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : "";
	if (strcasecmp(m, "post") == 0)
		return "POST";
	if (strcasecmp(m, "put") == 0)
		return "PUT";
	luaL_error(L, "forward: method must be POST or PUT");
	return NULL;
}

/*
 * Raises, json freed first, when a forward whose body is body_len bytes
 * (has_body: given, not the event's) and whose row stores stored bytes
 * would go over max_forward_body or the batch's max_batch_forward_bytes.
 */
static void rules_api_forward_limits(lua_State *L, const struct rules *r, int has_body,
				     size_t body_len, size_t stored, char *json)
{
	char err[256];

	if (r->max_forward_body && has_body && body_len > r->max_forward_body) {
		free(json);
		/* lua_pushfstring has no %zu */
		snprintf(err, sizeof err, "forward: body is %zu bytes, over max_forward_body (%zu)",
			 body_len, r->max_forward_body);
		luaL_error(L, "%s", err);
	}
	if (r->max_batch_forward && stored > r->max_batch_forward - r->batch_forward_bytes) {
		free(json);
		snprintf(err, sizeof err, "forward: the batch's forwards would store more than "
			 "max_batch_forward_bytes (%zu)", r->max_batch_forward);
		luaL_error(L, "%s", err);
	}
}

static int rules_api_forward(lua_State *L)
{
	static const char *const keys[] = { "method", "content_type", "name", "headers", "body", NULL };
	enum { I_METHOD = 3, I_CTYPE, I_NAME, I_HEADERS, I_BODY };
	struct rules *r = rules_api_route_ctx(L, "forward");
	struct api_header hdrs[API_HEADERS_MAX];
	size_t url_len, ct_len, name_len, body_len = 0, hdr_total, nh;
	const char *url, *ctype, *name, *body = NULL, *method;
	char *json = NULL, err[256];
	size_t stored;
	struct decision *it;
	int rc;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "forward: url must be http(s)");
	url = lua_tolstring(L, 1, &url_len);
	if (!rules_api_url_ok(url, url_len))
		return luaL_error(L, "forward: url must be http(s)");
	/* the URL may carry a token: it is not repeated in the message */
	if (r->self_listen && destination_is_self(url, r->self_listen, r->self_endpoint))
		return luaL_error(L, "forward: url is this router's own endpoint (a forward loop)");
	rules_api_opts(L, "forward", keys);

	method = rules_api_forward_method(L, I_METHOD);
	ctype = rules_api_opt_string(L, I_CTYPE, "forward", "content_type", API_CONTENT_TYPE_MAX, &ct_len);
	name = rules_api_opt_string(L, I_NAME, "forward", "name", API_NAME_MAX, &name_len);
	nh = rules_api_headers(L, I_HEADERS, hdrs, &hdr_total);

	switch (lua_type(L, I_BODY)) {
	case LUA_TNIL:
		break;
	case LUA_TSTRING:
		body = lua_tolstring(L, I_BODY, &body_len);
		break;
	case LUA_TTABLE:
		/* Last step that may raise: from here on C memory is held. */
		if ((rc = json_lua_encode(L, I_BODY, &json, &body_len, err, sizeof err)) < 0)
			return rules_api_body_error(L, "forward: body", rc, err);
		break;
	default:
		return luaL_error(L, "forward: body must be a table or a string");
	}
	/* what the outbox row will hold: a default forward stores the event's bytes */
	stored = ((json || body) ? body_len : r->ctx.event_bytes) + hdr_total;
	rules_api_forward_limits(L, r, json || body, body_len, stored, json);
	rules_api_charge(L, r, "forward", url_len + ct_len + name_len + hdr_total + body_len + 16, json);
	r->batch_forward_bytes += stored;
	r->ctx.forward_bytes += stored;

	it = decisions_push(r->ctx.decisions, DECISION_FORWARD, r->ctx.event);
	if (!it) {
		free(json);
		return luaL_error(L, "forward: out of memory");
	}
	it->target = decisions_strndup(url, url_len);
	it->method = decisions_strndup(method, strlen(method));
	if (json) {
		it->body = json;
		it->is_json = 1;
	} else if (body) {
		it->body = decisions_strndup(body, body_len);
	}
	it->len = body_len;
	if (ctype)
		it->content_type = decisions_strndup(ctype, ct_len);
	if (name)
		it->name = decisions_strndup(name, name_len);
	if (nh)
		it->headers = rules_api_headers_join(hdrs, nh, hdr_total);
	if (!it->target || !it->method || (body && !it->body) || (ctype && !it->content_type) ||
	    (name && !it->name) || (nh && !it->headers)) {
		decisions_truncate(r->ctx.decisions, r->ctx.decisions->count - 1);
		return luaL_error(L, "forward: out of memory");
	}
	return 0;
}

/* write(path [, {line=}]) */
static int rules_api_write(lua_State *L)
{
	static const char *const keys[] = { "line", NULL };
	enum { I_LINE = 3 };
	struct rules *r = rules_api_route_ctx(L, "write");
	const char *path, *line = NULL;
	size_t path_len, line_len = 0;
	char *json = NULL, err[256];
	struct decision *it;
	int rc;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "write: path must be a string");
	path = lua_tolstring(L, 1, &path_len);
	if (strlen(path) != path_len)
		return luaL_error(L, "write: path contains a NUL byte");
	if (sink_file_check_path(path, err, sizeof err) < 0)
		return luaL_error(L, "write: %s", err);
	rules_api_opts(L, "write", keys);

	switch (lua_type(L, I_LINE)) {
	case LUA_TNIL:
		break;
	case LUA_TSTRING:
		line = lua_tolstring(L, I_LINE, &line_len);
		if (memchr(line, '\n', line_len))
			return luaL_error(L, "write: line must not contain a newline");
		break;
	case LUA_TTABLE:
		if ((rc = json_lua_encode(L, I_LINE, &json, &line_len, err, sizeof err)) < 0)
			return rules_api_body_error(L, "write: line", rc, err);
		if (memchr(json, '\n', line_len)) {
			free(json);
			return luaL_error(L, "write: line must not contain a newline");
		}
		break;
	default:
		return luaL_error(L, "write: line must be a string or a table");
	}
	rules_api_charge(L, r, "write", path_len + line_len + 2, json);

	it = decisions_push(r->ctx.decisions, DECISION_WRITE, r->ctx.event);
	if (!it) {
		free(json);
		return luaL_error(L, "write: out of memory");
	}
	it->target = decisions_strndup(path, path_len);
	if (json) {
		it->line = json;
		it->is_json = 1;
	} else if (line) {
		it->line = decisions_strndup(line, line_len);
	}
	it->len = line_len;
	if (!it->target || (line && !it->line)) {
		decisions_truncate(r->ctx.decisions, r->ctx.decisions->count - 1);
		return luaL_error(L, "write: out of memory");
	}
	return 0;
}

/* drop([reason]) */
static int rules_api_drop(lua_State *L)
{
	struct rules *r = rules_api_route_ctx(L, "drop");
	const char *reason = "dropped";
	size_t len = strlen(reason);
	struct decision *it;

	if (!lua_isnoneornil(L, 1)) {
		if (lua_type(L, 1) != LUA_TSTRING)
			return luaL_error(L, "drop: reason must be a string");
		reason = lua_tolstring(L, 1, &len);
		if (len == 0 || len > API_REASON_MAX || !rules_api_printable(reason, len))
			return luaL_error(L, "drop: reason must be 1 to %d printable characters",
					  API_REASON_MAX);
	}
	it = decisions_push(r->ctx.decisions, DECISION_DROP, r->ctx.event);
	if (!it || !(it->reason = decisions_strndup(reason, len))) {
		if (it)
			decisions_truncate(r->ctx.decisions, r->ctx.decisions->count - 1);
		return luaL_error(L, "drop: out of memory");
	}
	it->len = len;
	return 0;
}

void rules_api_open(lua_State *L)
{
	static const luaL_Reg globals[] = {
		{ "forward", rules_api_forward },
		{ "write", rules_api_write },
		{ "drop", rules_api_drop },
		{ NULL, NULL },
	};
	lua_pushglobaltable(L);
	luaL_setfuncs(L, globals, 0);
	lua_pop(L, 1);
	rules_api_lib_open(L);
}
