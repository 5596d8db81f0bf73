/*
 * rules_api_lib.c — the helpers rules call besides the decisions
 * (rules_api.c): json.*, log.*, print, env, hmac_sha256, now.
 *
 * Threads: functions reach their struct rules through the calling state;
 * the set of lines logged outside route() is the one thing shared, by every
 * state of the process, under its own mutex.
 */
#include "rules_internal.h"
#include "clock.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "json_lua.h"
#include "log.h"
#include "util.h"

#define API_LOG_MAX 1024

/*
 * Every worker state runs the same init() and top-level code, so a line
 * logged outside route() would appear once per worker. Such lines are
 * logged once per process instead: a small set of line hashes remembers
 * what was said. When the set is full, lines are logged again (never lost).
 */
static int rules_api_log_first_time(const char *line, size_t len)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static uint64_t seen[128];
	static size_t nseen;
	uint64_t h = util_fnv1a(UTIL_FNV1A_BASIS, line, len);
	int first = 1;

	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nseen && first; i++)
		first = seen[i] != h;
	if (first && nseen < sizeof seen / sizeof seen[0])
		seen[nseen++] = h;
	pthread_mutex_unlock(&lock);
	return first;
}

/* log.LEVEL(...) and print(...): arguments joined by spaces; upvalue 1 is the level. */
static int rules_api_log(lua_State *L)
{
	struct rules *r = rules_from(L);
	int level = (int)lua_tointeger(L, lua_upvalueindex(1));
	int n = lua_gettop(L);
	char line[API_LOG_MAX];
	size_t len = 0;

	if (!r->dry_run && !log_enabled((enum log_level)level))
		return 0;
	for (int i = 1; i <= n && len < sizeof line - 1; i++) {
		size_t l;
		const char *s = luaL_tolstring(L, i, &l);

		if (i > 1)
			line[len++] = ' ';
		for (size_t j = 0; j < l && len < sizeof line - 1; j++)
			line[len++] = (unsigned char)s[j] < 0x20 ? ' ' : s[j];
		lua_pop(L, 1);
	}
	/* A cut inside a UTF-8 sequence would leave an invalid line. */
	if (len == sizeof line - 1)
		while (len > 0 && ((unsigned char)line[len - 1] & 0xC0) == 0x80)
			len--;
	line[len] = '\0';
	if (!r->ctx.decisions && !r->dry_run && !rules_api_log_first_time(line, len))
		return 0;
	if (r->dry_run)
		fprintf(stderr, "rules %s: %s\n", log_level_name((enum log_level)level), line);
	else
		log_msg((enum log_level)level, r->ctx.request_id, "rules: %s", line);
	return 0;
}

/* env(NAME) → the variable's value, or nil unless NAME is allowed (rules_env.c). */
static int rules_api_env(lua_State *L)
{
	const char *v = rules_env_get(rules_from(L), luaL_checkstring(L, 1));

	if (v)
		lua_pushstring(L, v);
	else
		lua_pushnil(L);
	return 1;
}

/* hmac_sha256(key, data) → lowercase hex. */
static int rules_api_hmac_sha256(lua_State *L)
{
	size_t klen, dlen;
	const char *key = luaL_checklstring(L, 1, &klen);
	const char *data = luaL_checklstring(L, 2, &dlen);
	unsigned char mac[UTIL_HMAC_SHA256_LEN];
	char hex[2 * UTIL_HMAC_SHA256_LEN + 1];

	if (util_hmac_sha256(key, klen, data, dlen, NULL, 0, mac) != 0)
		return luaL_error(L, "hmac_sha256: OpenSSL failure");
	util_hex(hex, mac, sizeof mac);
	lua_pushlstring(L, hex, 2 * sizeof mac);
	return 1;
}

/* now() → unix seconds as a float. */
static int rules_api_now(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)clock_wall());
	return 1;
}

static void rules_api_push_log(lua_State *L, enum log_level level)
{
	lua_pushinteger(L, level);
	lua_pushcclosure(L, rules_api_log, 1);
}

void rules_api_lib_open(lua_State *L)
{
	static const luaL_Reg globals[] = {
		{ "env", rules_api_env },
		{ "hmac_sha256", rules_api_hmac_sha256 },
		{ "now", rules_api_now },
		{ NULL, NULL },
	};
	lua_pushglobaltable(L);
	luaL_setfuncs(L, globals, 0);

	lua_createtable(L, 0, 3);
	lua_pushcfunction(L, json_lua_l_encode);
	lua_setfield(L, -2, "encode");
	lua_pushcfunction(L, json_lua_l_decode);
	lua_setfield(L, -2, "decode");
	json_lua_push_null(L);
	lua_setfield(L, -2, "null");
	lua_setfield(L, -2, "json");

	/* log.debug .. log.error: the names log_level = takes (log.h) */
	lua_createtable(L, 0, LOG_LEVELS);
	for (int lvl = 0; lvl < LOG_LEVELS; lvl++) {
		rules_api_push_log(L, (enum log_level)lvl);
		lua_setfield(L, -2, log_level_name((enum log_level)lvl));
	}
	lua_setfield(L, -2, "log");

	rules_api_push_log(L, LOG_INFO);
	lua_setfield(L, -2, "print");
	lua_pop(L, 1);
}
