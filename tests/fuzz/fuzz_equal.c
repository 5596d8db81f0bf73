/*
 * fuzz_equal.c — deep equality for the fuzz targets (fuzz_equal.h).
 */
#include "fuzz_equal.h"

#include "batch.h"

/* Every key of table a is in table b with an equal value. */
static int fuzz_subset(lua_State *L, int a, int b, int depth)
{
	int same = 1;

	lua_pushnil(L);
	while (lua_next(L, a) != 0) {
		lua_pushvalue(L, -2);        /* key */
		lua_rawget(L, b);            /* b[key] */
		if (!fuzz_equal(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1)) {
			same = 0;
			lua_pop(L, 3);       /* b[key], value, key */
			break;
		}
		lua_pop(L, 2);               /* b[key], value: keep key for lua_next */
	}
	return same;
}

int fuzz_equal(lua_State *L, int a, int b, int depth)
{
	a = lua_absindex(L, a);
	b = lua_absindex(L, b);
	FZ_CHECK(depth <= BATCH_MAX_DEPTH + 1);
	FZ_CHECK(lua_checkstack(L, 6));
	if (lua_type(L, a) != lua_type(L, b))
		return 0;
	switch (lua_type(L, a)) {
	case LUA_TNUMBER:
		if (lua_isinteger(L, a) != lua_isinteger(L, b))
			return 0;
		return lua_rawequal(L, a, b);
	case LUA_TTABLE:
		return fuzz_subset(L, a, b, depth) && fuzz_subset(L, b, a, depth);
	default:
		return lua_rawequal(L, a, b);
	}
}
