/*
 * test_rules_alloc.c — the Lua states' allocator (rules_alloc.c): exact
 * accounting against the memory limit, small blocks reused from the
 * state's free lists, contents kept across every kind of resize, shrinks
 * that never fail, a bounded amount of memory parked on the lists, and a
 * real Lua state running on it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "rules_internal.h"

static void test_accounting_and_reuse(void **state)
{
	struct rules r;
	void *a, *b;

	(void)state;
	memset(&r, 0, sizeof r);
	a = rules_alloc(&r, NULL, LUA_TTABLE, 40);
	assert_non_null(a);
	assert_int_equal(r.mem_used, 40);
	assert_null(rules_alloc(&r, a, 40, 0));
	assert_int_equal(r.mem_used, 0);
	assert_int_equal(r.pool_kept, 48);
	/* the next block of that size class is the one just freed */
	b = rules_alloc(&r, NULL, LUA_TSTRING, 33);
	assert_ptr_equal(a, b);
	assert_int_equal(r.mem_used, 33);
	assert_int_equal(r.pool_kept, 0);
	/* growing inside the class keeps the block */
	assert_ptr_equal(rules_alloc(&r, b, 33, 48), b);
	assert_int_equal(r.mem_used, 48);
	assert_null(rules_alloc(&r, b, 48, 0));
	rules_alloc_release(&r);
	assert_int_equal(r.pool_kept, 0);
}

static void test_resizes_keep_contents(void **state)
{
	struct rules r;
	unsigned char *p;
	size_t sizes[] = { 8, 100, 256, 257, 5000, 300, 17, 1 };

	(void)state;
	memset(&r, 0, sizeof r);
	p = rules_alloc(&r, NULL, 0, 8);
	assert_non_null(p);
	memset(p, 0xA5, 8);
	for (size_t i = 1; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t keep = sizes[i - 1] < sizes[i] ? sizes[i - 1] : sizes[i];

		p = rules_alloc(&r, p, sizes[i - 1], sizes[i]);
		assert_non_null(p);
		assert_int_equal(r.mem_used, sizes[i]);
		for (size_t k = 0; k < (keep < 8 ? keep : 8); k++)
			assert_int_equal(p[k], 0xA5);
		memset(p, 0xA5, sizes[i]);
	}
	assert_null(rules_alloc(&r, p, 1, 0));
	assert_int_equal(r.mem_used, 0);
	rules_alloc_release(&r);
}

static void test_limit_refuses_growth_only(void **state)
{
	struct rules r;
	void *a, *b;

	(void)state;
	memset(&r, 0, sizeof r);
	r.mem_limit = 1000;
	a = rules_alloc(&r, NULL, 0, 900);
	assert_non_null(a);
	assert_null(rules_alloc(&r, NULL, 0, 200));
	assert_int_equal(r.mem_refused, 1);
	assert_int_equal(r.mem_used, 900);
	b = rules_alloc(&r, NULL, 0, 100);   /* exactly the rest */
	assert_non_null(b);
	assert_int_equal(r.mem_used, 1000);
	a = rules_alloc(&r, a, 900, 10);     /* a shrink from a large block to a small one */
	assert_non_null(a);
	assert_int_equal(r.mem_used, 110);
	assert_null(rules_alloc(&r, a, 10, 0));
	assert_null(rules_alloc(&r, b, 100, 0));
	assert_int_equal(r.mem_used, 0);
	rules_alloc_release(&r);
}

static void test_parked_memory_is_bounded(void **state)
{
	struct rules r;
	enum { N = 4096 };
	void **blocks = calloc(N, sizeof *blocks);

	(void)state;
	assert_non_null(blocks);
	memset(&r, 0, sizeof r);
	for (int i = 0; i < N; i++)
		assert_non_null(blocks[i] = rules_alloc(&r, NULL, 0, RULES_POOL_MAX));
	for (int i = 0; i < N; i++)
		rules_alloc(&r, blocks[i], RULES_POOL_MAX, 0);
	assert_int_equal(r.mem_used, 0);
	assert_true(r.pool_kept <= RULES_POOL_KEEP);
	assert_true(r.pool_kept > 0);
	rules_alloc_release(&r);
	assert_int_equal(r.pool_kept, 0);
	free(blocks);
}

/* A Lua state on the allocator: mem_used is what Lua counts itself, and 0 once closed. */
static void test_lua_state(void **state)
{
	struct rules r;
	lua_State *L;

	(void)state;
	memset(&r, 0, sizeof r);
	L = lua_newstate(rules_alloc, &r);
	assert_non_null(L);
	luaL_openlibs(L);
	assert_int_equal(luaL_dostring(L, "local t = {} for i = 1, 20000 do t[i] = { i, tostring(i) } end "
					  "return #t"), LUA_OK);
	assert_int_equal(lua_tointeger(L, -1), 20000);
	lua_pop(L, 1);
	lua_gc(L, LUA_GCCOLLECT);
	assert_int_equal((size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB),
			 r.mem_used);
	lua_close(L);
	assert_int_equal(r.mem_used, 0);
	rules_alloc_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accounting_and_reuse),
		cmocka_unit_test(test_resizes_keep_contents),
		cmocka_unit_test(test_limit_refuses_growth_only),
		cmocka_unit_test(test_parked_memory_is_bounded),
		cmocka_unit_test(test_lua_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
