/*
 * fuzz_equal.h — deep equality of Lua values as JSON sees them, shared by
 * the fuzz targets.
 *
 * Threads: no state of its own; the caller's lua_State.
 */
#ifndef EGOI_FUZZ_EQUAL_H
#define EGOI_FUZZ_EQUAL_H

#include <stdio.h>
#include <stdlib.h>

#include <lua.h>

#define FZ_CHECK(cond) \
	do { \
		if (!(cond)) { \
			fprintf(stderr, "%s: invariant failed at line %d: %s\n", __FILE__, \
				__LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/*
 * The values at a and b are equal: same types, integer/float subtype,
 * tables by content (raw access, every key both ways), anything else by
 * lua_rawequal. depth counts the nesting (checked against the batch limit).
 */
int fuzz_equal(lua_State *L, int a, int b, int depth);

#endif
