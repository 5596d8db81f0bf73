/*
 * json_lua_lazy_pool.c — the parse scratch shared by every worker
 * (json_lua_lazy.h: json_lua_lazy_scratch_take / _give).
 *
 * Why: the token tape is only needed while a batch is parsed and copied
 * into its Lua userdata (a fraction of a batch's time), yet each worker
 * used to keep its own scratch, up to JSON_LUA_LAZY_SCRATCH_KEEP, between batches:
 * with 64 threads at batch 1000 that was tens of MB held by workers doing
 * nothing with it. Now a worker takes a scratch for the parse and gives it
 * back; the pool keeps at most JSON_LUA_LAZY_POOL_KEEP of them (about as
 * many as parses can run at once on a small machine), frees the others,
 * and never keeps one whose buffers grew beyond JSON_LUA_LAZY_SCRATCH_KEEP.
 * A take when the pool is empty starts an empty scratch (no parse ever
 * waits for another); one lock per batch, held for a pointer move.
 *
 * Threads: any thread; the pool's mutex guards the stack.
 */
#include "json_lua_lazy.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t jzp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct json_lua_lazy_scratch *jzp_kept[JSON_LUA_LAZY_POOL_KEEP];
static size_t jzp_nkept;

struct json_lua_lazy_scratch *json_lua_lazy_scratch_take(void)
{
	struct json_lua_lazy_scratch *s = NULL;

	pthread_mutex_lock(&jzp_lock);
	if (jzp_nkept > 0)
		s = jzp_kept[--jzp_nkept];
	pthread_mutex_unlock(&jzp_lock);
	return s ? s : calloc(1, sizeof *s);
}

void json_lua_lazy_scratch_give(struct json_lua_lazy_scratch *s)
{
	if (!s)
		return;
	if (json_lua_lazy_scratch_bytes(s) <= JSON_LUA_LAZY_SCRATCH_KEEP) {
		pthread_mutex_lock(&jzp_lock);
		if (jzp_nkept < JSON_LUA_LAZY_POOL_KEEP) {
			jzp_kept[jzp_nkept++] = s;
			s = NULL;
		}
		pthread_mutex_unlock(&jzp_lock);
	}
	if (s) {
		json_lua_lazy_scratch_free(s);
		free(s);
	}
}

size_t json_lua_lazy_pool_bytes(size_t *count)
{
	size_t bytes = 0;

	pthread_mutex_lock(&jzp_lock);
	for (size_t i = 0; i < jzp_nkept; i++)
		bytes += json_lua_lazy_scratch_bytes(jzp_kept[i]);
	if (count)
		*count = jzp_nkept;
	pthread_mutex_unlock(&jzp_lock);
	return bytes;
}
