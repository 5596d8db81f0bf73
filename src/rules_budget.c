/*
 * rules_budget.c — the time limit (lua_time_limit) for work the count hook
 * cannot see: CPU spent inside Lua's C library.
 *
 * Design: every entry into Lua has a CLOCK_MONOTONIC deadline (rules.c sets
 * it, its count hook checks it every 1000 VM instructions). A C library
 * function runs no VM instruction, so one call can outlast any hook:
 * ("a"):rep(200):find(".-.-.-.-b") backtracks for ~25 s, table.move over
 * 2^63 indexes never returns. Such calls cannot be interrupted, so they are
 * bounded before they start: each exposed library function with a cost
 * that is not constant is replaced by a closure that
 *   1. checks the deadline (so a loop of calls is stopped per call, not
 *      only every 1000 instructions),
 *   2. estimates an upper bound of the call's cost from its arguments
 *      (bytes, elements, pattern backtracking), converted to nanoseconds
 *      with conservative per-unit rates, and
 *   3. refuses the call with the time-limit error when the estimate does
 *      not fit the time left, or else calls the real library function.
 * The time really spent is charged by the clock itself: the next check sees
 * it. The estimates (README, Security) are:
 * - string.find/match/gmatch/gsub: a pattern with k open-ended items
 *   (x*, x+, x-, %bxy, back-references %1-%9) and q optional items (x?) on
 *   an n-byte subject backtracks through at most C(n+k, k) * 2^q
 *   combinations per start position, each costing at most one test per
 *   pattern item; there are n+1 start positions unless anchored by '^'
 *   (gmatch: always n+1). A plain find costs n * pattern length.
 *   gmatch's iterator is checked again at each call.
 * - string.rep: n * (#s + #sep) bytes plus n iterations (an empty string
 *   repeated 2^62 times loops 2^62 times).
 * - table.concat/unpack/move: the index range; table.insert/remove: the
 *   elements shifted; table.sort: n * log2(n) comparisons.
 * - load, json.decode: the text's length.
 * - everything else wrapped (string.format/byte/sub/upper/..., utf8.*,
 *   log.*, print, json.encode, forward, write): the total length of its
 *   string arguments. Encoding a table (json.encode, forward's body,
 *   write's line) is linear in the JSON it produces, which the encoder's
 *   own size limits bound; it is only checked against the deadline (an
 *   estimate from the state's memory would refuse every forward of a
 *   large batch).
 * Lua code that these functions call back (comparators, metamethods,
 * gsub's replacement function) runs under the count hook as usual.
 *
 * A refused call or a passed deadline is fatal for the event (r->fatal):
 * the sandbox's pcall/xpcall re-raise it.
 *
 * Threads: touches only the calling state.
 */
#include "rules_internal.h"
#include "rules.h"
#include "clock.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

/*
 * Upper bounds of the cost of one unit, in ns, measured on a 2-core VM
 * (about 3 times the slowest unit seen in an -O2 build, for slower
 * machines and sanitizer builds): e.g. upper() 1.6 ns/byte, a pattern
 * item test 0.3-0.7 ns, table.move 19 ns/element, concat of numbers
 * 330 ns/element, json.decode 23 ns/byte.
 */
#define BUDGET_NS_BYTE 5.0      /* copying or scanning one byte */
#define BUDGET_NS_STEP 2.0      /* one pattern item test */
#define BUDGET_NS_ITER 5.0      /* one loop iteration doing nothing else (rep) */
#define BUDGET_NS_ELEM 60.0     /* one table get/set through the API */
#define BUDGET_NS_CONCAT 1000.0 /* one table.concat element (a number is formatted) */
#define BUDGET_NS_CMP 120.0     /* one comparison and swap in table.sort */
#define BUDGET_NS_PARSE 60.0    /* one byte of Lua or JSON source */

enum budget_kind {
	BK_LINEAR,   /* string arguments' bytes */
	BK_REP,
	BK_FIND,
	BK_MATCH,
	BK_GMATCH,
	BK_GSUB,
	BK_RANGE2,   /* table.unpack(t, i, j) */
	BK_RANGE3,   /* table.concat(t, sep, i, j) */
	BK_MOVE,
	BK_INSERT,
	BK_REMOVE,
	BK_SORT,
	BK_PARSE,    /* load(s), json.decode(s) */
};

struct budget_fn {
	const char *table;   /* NULL = a global */
	const char *name;
	const char *label;
	enum budget_kind kind;
};

static const struct budget_fn budget_fns[] = {
	{ "string", "byte", "string.byte", BK_LINEAR },
	{ "string", "char", "string.char", BK_LINEAR },
	{ "string", "find", "string.find", BK_FIND },
	{ "string", "format", "string.format", BK_LINEAR },
	{ "string", "gmatch", "string.gmatch", BK_GMATCH },
	{ "string", "gsub", "string.gsub", BK_GSUB },
	{ "string", "len", "string.len", BK_LINEAR },
	{ "string", "lower", "string.lower", BK_LINEAR },
	{ "string", "match", "string.match", BK_MATCH },
	{ "string", "pack", "string.pack", BK_LINEAR },
	{ "string", "rep", "string.rep", BK_REP },
	{ "string", "reverse", "string.reverse", BK_LINEAR },
	{ "string", "sub", "string.sub", BK_LINEAR },
	{ "string", "unpack", "string.unpack", BK_LINEAR },
	{ "string", "upper", "string.upper", BK_LINEAR },
	{ "table", "concat", "table.concat", BK_RANGE3 },
	{ "table", "insert", "table.insert", BK_INSERT },
	{ "table", "move", "table.move", BK_MOVE },
	{ "table", "remove", "table.remove", BK_REMOVE },
	{ "table", "sort", "table.sort", BK_SORT },
	{ "table", "unpack", "table.unpack", BK_RANGE2 },
	{ "utf8", "char", "utf8.char", BK_LINEAR },
	{ "utf8", "codepoint", "utf8.codepoint", BK_LINEAR },
	{ "utf8", "len", "utf8.len", BK_LINEAR },
	{ "utf8", "offset", "utf8.offset", BK_LINEAR },
	{ "json", "encode", "json.encode", BK_LINEAR },
	{ "json", "decode", "json.decode", BK_PARSE },
	{ "log", "debug", "log.debug", BK_LINEAR },
	{ "log", "info", "log.info", BK_LINEAR },
	{ "log", "warn", "log.warn", BK_LINEAR },
	{ "log", "error", "log.error", BK_LINEAR },
	{ NULL, "print", "print", BK_LINEAR },
	{ NULL, "load", "load", BK_PARSE },
	{ NULL, "require", "require", BK_LINEAR },
	{ NULL, "tostring", "tostring", BK_LINEAR },
	{ NULL, "tonumber", "tonumber", BK_LINEAR },
	{ NULL, "forward", "forward", BK_LINEAR },
	{ NULL, "write", "write", BK_LINEAR },
};

static atomic_int budget_stop;

void rules_stop_all(void)
{
	atomic_store(&budget_stop, 1);
}

int rules_stopping(void)
{
	return atomic_load_explicit(&budget_stop, memory_order_relaxed);
}

int rules_time_error(lua_State *L, const char *where, const char *what)
{
	struct rules *r = rules_from(L);

	r->fatal = RULES_FATAL_TIME;
	if (rules_stopping())
		snprintf(r->fatal_msg, sizeof r->fatal_msg, "%sstopped: the daemon is stopping", where);
	else if (what)
		snprintf(r->fatal_msg, sizeof r->fatal_msg,
			 "%s%s refused: it could run past the time limit (%ld ms)", where, what,
			 r->time_limit_ms);
	else
		snprintf(r->fatal_msg, sizeof r->fatal_msg, "%stime limit exceeded (%ld ms)", where,
			 r->time_limit_ms);
	lua_pushstring(L, r->fatal_msg);
	return lua_error(L);
}

/* Raises the time-limit error if the deadline passed or cost_ns would pass it. */
static void rules_budget_charge(lua_State *L, const char *what, double cost_ns)
{
	struct rules *r = rules_from(L);
	long long now;
	const char *where;

	if (r->deadline_ns == 0 && !rules_stopping())
		return;
	now = clock_mono_ns();
	if (rules_stopping())
		now = r->deadline_ns;
	if (now < r->deadline_ns && !(cost_ns > (double)(r->deadline_ns - now)))
		return;
	luaL_where(L, 1);
	where = lua_tostring(L, -1);
	rules_time_error(L, where ? where : "", now < r->deadline_ns ? what : NULL);
}

static double rules_budget_strlen(lua_State *L, int idx)
{
	size_t n = 0;

	if (lua_type(L, idx) == LUA_TSTRING)
		lua_tolstring(L, idx, &n);
	return (double)n;
}

static double rules_budget_string_args(lua_State *L)
{
	double total = 0;

	for (int i = 1, n = lua_gettop(L); i <= n; i++)
		total += rules_budget_strlen(L, i);
	return total;
}

/* Integer argument idx, or def when absent; 0 in *ok when not an integer. */
static double rules_budget_int(lua_State *L, int idx, double def, int *ok)
{
	int isnum;
	lua_Integer v;

	if (lua_isnoneornil(L, idx))
		return def;
	v = lua_tointegerx(L, idx, &isnum);
	if (!isnum)
		*ok = 0;
	return (double)v;
}

/* #t for a table argument (honours __len, as the library does), else 0. */
static double rules_budget_len(lua_State *L, int idx)
{
	if (lua_type(L, idx) != LUA_TTABLE)
		return 0;
	return (double)luaL_len(L, idx);
}

/* Index just past a [set] starting at p[i] == '[' (mirrors lstrlib's classEnd). */
static size_t rules_budget_skip_set(const char *p, size_t lp, size_t i)
{
	i++;
	if (i < lp && p[i] == '^')
		i++;
	do {
		if (i >= lp)
			return lp;
		if (p[i++] == '%' && i < lp)
			i++;
	} while (i < lp && p[i] != ']');
	return i + 1;
}

/* Bound on item tests for one match attempt of pattern p on n bytes. */
static double rules_budget_pattern_steps(const char *p, size_t lp, double n, int *anchored)
{
	double items = 0, open = 0, optional = 0, comb = 1;
	size_t i = 0;

	*anchored = lp > 0 && p[0] == '^';
	if (*anchored)
		i = 1;
	while (i < lp) {
		char c = p[i];

		if (c == '(' || c == ')' || (c == '$' && i + 1 == lp)) {
			i++;
			continue;
		}
		items++;
		if (c == '%' && i + 1 < lp) {
			char d = p[i + 1];

			if (d == 'b') {            /* %bxy scans up to the subject's end */
				open++;
				i += 4;
				continue;
			}
			if (d == 'f') {            /* frontier: zero-width, never quantified */
				i = i + 2 < lp && p[i + 2] == '['
					? rules_budget_skip_set(p, lp, i + 2) : lp;
				continue;
			}
			if (d >= '0' && d <= '9') {  /* back-reference compares up to n bytes */
				open++;
				i += 2;
				continue;
			}
			i += 2;
		} else if (c == '[') {
			i = rules_budget_skip_set(p, lp, i);
		} else {
			i++;
		}
		if (i < lp && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
			open++;
			i++;
		} else if (i < lp && p[i] == '?') {
			optional++;
			i++;
		}
	}
	/* k open-ended items take non-decreasing positions: C(n + k, k) ways. */
	for (double j = 1; j <= open && isfinite(comb); j++)
		comb = comb * (n + j) / j;
	return comb * pow(2, optional) * (items + 1);
}

/* Cost of find/match/gmatch/gsub(s, pattern, ...) in ns. */
static double rules_budget_pattern_cost(lua_State *L, enum budget_kind kind)
{
	size_t n, lp;
	const char *s, *p;
	int anchored;
	double steps, starts;

	if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TNUMBER)
		return 0;
	if (lua_type(L, 2) != LUA_TSTRING && lua_type(L, 2) != LUA_TNUMBER)
		return 0;
	/* numbers are converted by the library too; converting here first is the same */
	s = lua_tolstring(L, 1, &n);
	p = lua_tolstring(L, 2, &lp);
	(void)s;
	if (kind == BK_FIND && (lua_toboolean(L, 4) || !strpbrk(p, "^$*+?.([%-")))
		return ((double)n + 1) * ((double)lp + 1) * BUDGET_NS_BYTE;
	steps = rules_budget_pattern_steps(p, lp, (double)n, &anchored);
	starts = anchored && kind != BK_GMATCH ? 1 : (double)n + 1;
	return (starts * steps + (double)lp) * BUDGET_NS_STEP +
	       (kind == BK_GSUB ? rules_budget_strlen(L, 3) * ((double)n + 1) * BUDGET_NS_BYTE : 0);
}

static double rules_budget_cost(lua_State *L, enum budget_kind kind)
{
	double a, b, n, sep;
	int ok = 1;

	switch (kind) {
	case BK_LINEAR:
		return rules_budget_string_args(L) * BUDGET_NS_BYTE;
	case BK_REP:
		n = rules_budget_int(L, 2, 0, &ok);
		if (!ok || n <= 0)
			return 0;
		sep = rules_budget_strlen(L, 3);
		return n * (rules_budget_strlen(L, 1) + sep) * BUDGET_NS_BYTE + n * BUDGET_NS_ITER;
	case BK_FIND:
	case BK_MATCH:
	case BK_GMATCH:
	case BK_GSUB:
		return rules_budget_pattern_cost(L, kind);
	case BK_RANGE2:
	case BK_RANGE3:
		a = rules_budget_int(L, kind == BK_RANGE2 ? 2 : 3, 1, &ok);
		b = lua_isnoneornil(L, kind == BK_RANGE2 ? 3 : 4) ? rules_budget_len(L, 1)
				   : rules_budget_int(L, kind == BK_RANGE2 ? 3 : 4, 0, &ok);
		return ok && b >= a ? (b - a + 1) * (kind == BK_RANGE3 ? BUDGET_NS_CONCAT
								      : BUDGET_NS_ELEM) : 0;
	case BK_MOVE:
		a = rules_budget_int(L, 2, 0, &ok);
		b = rules_budget_int(L, 3, 0, &ok);
		return ok && b >= a ? (b - a + 1) * BUDGET_NS_ELEM : 0;
	case BK_INSERT:  /* insert(t, v) appends; insert(t, pos, v) shifts #t - pos + 1 */
		if (lua_gettop(L) != 3)
			return 0;
		n = rules_budget_len(L, 1) - rules_budget_int(L, 2, 0, &ok) + 1;
		return ok && n > 0 ? n * BUDGET_NS_ELEM : 0;
	case BK_REMOVE:  /* remove(t) pops; remove(t, pos) shifts #t - pos */
		if (lua_isnoneornil(L, 2))
			return 0;
		n = rules_budget_len(L, 1) - rules_budget_int(L, 2, 0, &ok);
		return ok && n > 0 ? n * BUDGET_NS_ELEM : 0;
	case BK_SORT:
		n = rules_budget_len(L, 1);
		return n > 1 ? n * log2(n) * BUDGET_NS_CMP : 0;
	case BK_PARSE:
		return rules_budget_strlen(L, 1) * BUDGET_NS_PARSE;
	}
	return 0;
}

/* gmatch's iterator; upvalues: the real iterator, its cost per call, the fn. */
static int rules_budget_gmatch_iter(lua_State *L)
{
	const struct budget_fn *fn = lua_touserdata(L, lua_upvalueindex(3));

	rules_budget_charge(L, fn->label, lua_tonumber(L, lua_upvalueindex(2)));
	lua_settop(L, 0);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_call(L, 0, LUA_MULTRET);
	return lua_gettop(L);
}

/*
 * The wrapper. Upvalues: the real function's own upvalues (so it finds
 * them at the same indexes), the real function, its struct budget_fn. The
 * real C function runs in this same frame, so its errors still name the
 * rule's line and its own name ("bad argument #1 to 'find'").
 */
static int rules_budget_call(lua_State *L)
{
	const struct budget_fn *fn;
	lua_CFunction real;
	double cost = 0;
	int last = 2, nres;

	while (lua_type(L, lua_upvalueindex(last + 1)) != LUA_TNONE)
		last++;
	fn = lua_touserdata(L, lua_upvalueindex(last));
	real = lua_tocfunction(L, lua_upvalueindex(last - 1));
	if (rules_from(L)->deadline_ns != 0 || rules_stopping()) {
		cost = rules_budget_cost(L, fn->kind);
		rules_budget_charge(L, fn->label, cost);
	}
	nres = real(L);
	if (fn->kind == BK_GMATCH && nres == 1 && lua_type(L, -1) == LUA_TFUNCTION) {
		lua_pushnumber(L, cost);
		lua_pushlightuserdata(L, (void *)fn);
		lua_pushcclosure(L, rules_budget_gmatch_iter, 3);
	}
	return nres;
}

/* Replaces the C function on top of the stack by its wrapper. */
static void rules_budget_wrap(lua_State *L, const struct budget_fn *fn)
{
	int f = lua_gettop(L), nup = 0;

	while (lua_getupvalue(L, f, nup + 1))
		nup++;
	lua_pushvalue(L, f);
	lua_pushlightuserdata(L, (void *)fn);
	lua_pushcclosure(L, rules_budget_call, nup + 2);
	lua_replace(L, f);
}

void rules_budget_open(lua_State *L)
{
	for (size_t i = 0; i < sizeof budget_fns / sizeof budget_fns[0]; i++) {
		const struct budget_fn *fn = &budget_fns[i];

		if (fn->table) {
			if (lua_getglobal(L, fn->table) != LUA_TTABLE) {
				lua_pop(L, 1);
				continue;
			}
		} else {
			lua_pushglobaltable(L);
		}
		if (lua_getfield(L, -1, fn->name) == LUA_TFUNCTION && lua_iscfunction(L, -1)) {
			rules_budget_wrap(L, fn);
			lua_setfield(L, -2, fn->name);
		} else {
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
}
