/*
 * rules_sandbox.c — the environment rules run in.
 *
 * Design: the state belongs to the rules alone, so its global table is the
 * sandbox. Only base, string, table, math and utf8 are opened, plus an os
 * table reduced to time, date and clock. From base, dofile, loadfile,
 * collectgarbage, print and warn are removed (rules_api_lib.c provides
 * print as a logger); string.dump is removed so no binary chunk can be produced.
 * Replacements:
 * - load: always text mode, so binary chunks (which can break the VM) are
 *   refused; the environment still defaults to the sandbox globals.
 * - require: loads only NAME.lua beside the rules file (dots map to '/'),
 *   as text, caching results like package.loaded; no C modules.
 * - setmetatable: refuses __gc, so no rule code runs at GC time.
 * - pcall/xpcall: re-raise instruction-, time- and memory-limit errors, so a
 *   rule cannot catch them and keep the worker busy; xpcall runs its handler
 *   after unwinding, where the count hook is active (see rules_sandbox_xpcall).
 * rules_budget.c then wraps the library functions whose cost is not
 * constant.
 *
 * rules_sandbox_note_failure decides which errors are limit errors: the
 * sandbox's pcall/xpcall re-raise those, and rules.c asks it the same
 * question after its own protected calls.
 *
 * Files: this file uses nothing of rules.c (only rules_internal.h and
 * rules_source.h); rules.c calls in here. Keep the dependency that way.
 *
 * Threads: functions here touch only the calling state.
 */
#include "rules_internal.h"
#include "rules_source.h"
#include "clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define SANDBOX_MODULE_NAME_MAX 128

static const char *const sandbox_base_removed[] = {
	"dofile", "loadfile", "collectgarbage", "print", "warn", NULL,
};

static const char *const sandbox_os_kept[] = { "time", "date", "clock", NULL };

/* load(chunk [, chunkname [, mode [, env]]]) with the mode forced to "t". */
static int rules_sandbox_load(lua_State *L)
{
	int n = lua_gettop(L);

	lua_settop(L, 4);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_pushliteral(L, "t");
	/* An explicit env (even nil) is passed on; an absent one keeps the default. */
	if (n >= 4) {
		lua_pushvalue(L, 4);
		lua_call(L, 4, LUA_MULTRET);
	} else {
		lua_call(L, 3, LUA_MULTRET);
	}
	return lua_gettop(L) - 4;
}

/* [A-Za-z0-9_]+ components separated by single dots. */
static int rules_sandbox_module_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > SANDBOX_MODULE_NAME_MAX || strlen(name) != len)
		return 0;
	if (name[0] == '.' || name[len - 1] == '.' || strstr(name, ".."))
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

/*
 * Loads module name (file path) as a chunk: from the generation's modules
 * when the worker builds its state, else from disk, recording the text
 * when main compiles a generation (rules_source.h). LUA_ERRFILE when the
 * file cannot be read.
 */
static int rules_sandbox_load_module(lua_State *L, struct rules *r, const char *name, const char *path)
{
	const struct rules_module *m = rules_modules_find(r->modules_in, name);
	char *text = NULL;
	long n;
	FILE *f;
	int status = LUA_ERRFILE;

	lua_pushfstring(L, "@%s", path);
	if (m) {
		status = luaL_loadbufferx(L, m->text, m->len, lua_tostring(L, -1), "t");
		goto out;
	}
	f = fopen(path, "rb");
	if (!f)
		goto out;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (text = malloc((size_t)n + 1)) != NULL && fread(text, 1, (size_t)n, f) == (size_t)n) {
		status = luaL_loadbufferx(L, text, (size_t)n, lua_tostring(L, -1), "t");
		if (status == LUA_OK && r->modules_out &&
		    rules_modules_add(r->modules_out, name, text, (size_t)n) < 0) {
			lua_pop(L, 1);
			lua_pushliteral(L, "require: out of memory");
			status = LUA_ERRMEM;
		}
	}
	fclose(f);
out:
	free(text);
	lua_remove(L, status == LUA_ERRFILE ? -1 : -2);   /* the chunk name */
	return status;
}

/* require(name); upvalue 1 is the table of loaded modules. */
static int rules_sandbox_require(lua_State *L)
{
	struct rules *r = rules_from(L);
	size_t len;
	const char *name = luaL_checklstring(L, 1, &len);
	const char *path;
	luaL_Buffer b;
	int status;

	if (!rules_sandbox_module_name_ok(name, len))
		return luaL_error(L, "require: invalid module name '%s' (letters, digits, _ and . only)",
				  name);
	lua_settop(L, 1);
	if (lua_getfield(L, lua_upvalueindex(1), name) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);

	luaL_buffinit(L, &b);
	luaL_addstring(&b, r->dir);
	for (size_t i = 0; i < len; i++)
		luaL_addchar(&b, name[i] == '.' ? '/' : name[i]);
	luaL_addstring(&b, ".lua");
	luaL_pushresult(&b);
	path = lua_tostring(L, 2);

	status = rules_sandbox_load_module(L, r, name, path);
	if (status == LUA_ERRFILE)
		return luaL_error(L, "require: module '%s' not found (%s)", name, path);
	if (status != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 2);
	lua_call(L, 2, 1);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, -1);
	lua_setfield(L, lua_upvalueindex(1), name);
	return 1;
}

/*
 * setmetatable without finalizers: a __gc would run at some later GC step,
 * outside the limits' accounting and possibly inside another event's route().
 * (A __gc added after the call is never honoured by Lua.)
 */
static int rules_sandbox_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
		lua_pop(L, 1);
	}
	lua_settop(L, 2);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, 2, 1);
	return 1;
}

int rules_sandbox_note_failure(struct rules *r, lua_State *L, int status)
{
	const char *msg;

	if (r->fatal != RULES_FATAL_NONE)
		return 1;
	/* An error caught after the deadline (say, by pcall) still ends the event. */
	if (r->deadline_ns != 0 && clock_mono_ns() >= r->deadline_ns) {
		r->fatal = RULES_FATAL_TIME;
		snprintf(r->fatal_msg, sizeof r->fatal_msg, "time limit exceeded (%ld ms)",
			 r->time_limit_ms);
		return 1;
	}
	msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
	/* Buffers report a refused allocation as an ordinary "not enough memory" error. */
	if (status == LUA_ERRMEM ||
	    (r->mem_refused && (status == LUA_ERRERR || strncmp(msg, "not enough memory", 17) == 0))) {
		r->fatal = RULES_FATAL_MEMORY;
		snprintf(r->fatal_msg, sizeof r->fatal_msg, "%s",
			 r->mem_limit ? "memory limit exceeded" : "out of memory");
		return 1;
	}
	return 0;
}

/* Like the standard pcall, but limit errors pass through. */
static int rules_sandbox_pcall(lua_State *L)
{
	int status;

	luaL_checkany(L, 1);
	lua_pushboolean(L, 1);
	lua_insert(L, 1);
	status = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
	if (status != LUA_OK) {
		if (rules_sandbox_note_failure(rules_from(L), L, status))
			return lua_error(L);
		lua_pushboolean(L, 0);
		lua_insert(L, -2);
		return 2;
	}
	return lua_gettop(L);
}

/*
 * Like the standard xpcall, but limit errors pass through, and the handler
 * runs once the failed call has unwound, as an ordinary protected call.
 * Lua itself runs a message handler inside the raise, and when the error
 * was raised by the count hook (a limit) hooks are still off then: a
 * handler that loops could never be stopped. Rules have no debug library,
 * so the handler sees the same argument either way; an error inside the
 * handler is returned as xpcall's second result.
 */
static int rules_sandbox_xpcall(lua_State *L)
{
	struct rules *r = rules_from(L);
	int n = lua_gettop(L);
	int status;

	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2);  /* f, handler, true, f, args... */
	status = lua_pcall(L, n - 2, LUA_MULTRET, 0);
	if (status == LUA_OK)
		return lua_gettop(L) - 2;
	if (rules_sandbox_note_failure(r, L, status))
		return lua_error(L);
	lua_pushvalue(L, 2);
	lua_insert(L, -2);    /* f, handler, true, handler, error */
	status = lua_pcall(L, 1, 1, 0);
	if (status != LUA_OK && rules_sandbox_note_failure(r, L, status))
		return lua_error(L);
	lua_pushboolean(L, 0);
	lua_insert(L, -2);
	return 2;
}

/* Replaces the global os with a table holding only the harmless functions. */
static void rules_sandbox_reduce_os(lua_State *L)
{
	luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
	lua_createtable(L, 0, 3);
	for (int i = 0; sandbox_os_kept[i]; i++) {
		lua_getfield(L, -2, sandbox_os_kept[i]);
		lua_setfield(L, -2, sandbox_os_kept[i]);
	}
	lua_pushvalue(L, -1);
	lua_setglobal(L, LUA_OSLIBNAME);
	/* The full table must not stay reachable as a loaded library either. */
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_insert(L, -2);
	lua_setfield(L, -2, LUA_OSLIBNAME);
	lua_pop(L, 2);
}

void rules_sandbox_open(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{ LUA_GNAME, luaopen_base },
		{ LUA_STRLIBNAME, luaopen_string },
		{ LUA_TABLIBNAME, luaopen_table },
		{ LUA_MATHLIBNAME, luaopen_math },
		{ LUA_UTF8LIBNAME, luaopen_utf8 },
		{ NULL, NULL },
	};

	for (const luaL_Reg *lib = libs; lib->func; lib++) {
		luaL_requiref(L, lib->name, lib->func, 1);
		lua_pop(L, 1);
	}
	rules_sandbox_reduce_os(L);

	lua_getglobal(L, LUA_STRLIBNAME);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");  /* also gone from ("").dump: same table */
	lua_pop(L, 1);

	for (int i = 0; sandbox_base_removed[i]; i++) {
		lua_pushnil(L);
		lua_setglobal(L, sandbox_base_removed[i]);
	}

	lua_getglobal(L, "load");
	lua_pushcclosure(L, rules_sandbox_load, 1);
	lua_setglobal(L, "load");

	lua_getglobal(L, "setmetatable");
	lua_pushcclosure(L, rules_sandbox_setmetatable, 1);
	lua_setglobal(L, "setmetatable");

	lua_newtable(L);
	lua_pushcclosure(L, rules_sandbox_require, 1);
	lua_setglobal(L, "require");

	lua_pushcfunction(L, rules_sandbox_pcall);
	lua_setglobal(L, "pcall");
	lua_pushcfunction(L, rules_sandbox_xpcall);
	lua_setglobal(L, "xpcall");
}
