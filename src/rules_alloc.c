/*
 * rules_alloc.c — the Lua states' allocator: a byte budget (the memory
 * limit) and per-state free lists for small blocks.
 *
 * Design: most of what a rule allocates is small (table headers, hash
 * parts of a few entries, short strings, closures) and dies within the
 * batch, so glibc's malloc/free for each block was a large share of the
 * per-event cost. Blocks of up to RULES_POOL_MAX bytes are rounded up to a
 * multiple of RULES_POOL_GRAIN and, when Lua frees them, kept on the
 * state's free list of that size, up to RULES_POOL_KEEP bytes in all; the
 * next allocation of that class takes one back. Every block is an ordinary
 * malloc block, so a list can always be emptied with free().
 *
 * Accounting is what it was: mem_used counts the sizes Lua asked for, a
 * growth beyond the limit is refused before any block is taken, and
 * shrinking or freeing never fails (Lua requires it). The blocks parked on
 * the lists are free memory, not the state's: they are bounded by
 * RULES_POOL_KEEP and returned by rules_alloc_release.
 *
 * Threads: the lists belong to the state's owner thread, like the state.
 */
#include "rules_internal.h"

#include <stdlib.h>
#include <string.h>

static size_t rules_pool_class(size_t n)
{
	return (n - 1) / RULES_POOL_GRAIN;
}

/* A block for n (1..RULES_POOL_MAX) bytes: from its list, else malloc'd at the class size. */
static void *rules_pool_get(struct rules *r, size_t n)
{
	size_t c = rules_pool_class(n);
	void *p = r->pool[c];

	if (!p)
		return malloc((c + 1) * RULES_POOL_GRAIN);
	memcpy(&r->pool[c], p, sizeof p);
	r->pool_kept -= (c + 1) * RULES_POOL_GRAIN;
	return p;
}

/* Takes back a block Lua knew as n bytes (it holds at least n's class size). */
static void rules_pool_put(struct rules *r, void *p, size_t n)
{
	size_t c = rules_pool_class(n), size = (c + 1) * RULES_POOL_GRAIN;

	if (r->pool_kept + size > RULES_POOL_KEEP) {
		free(p);
		return;
	}
	memcpy(p, &r->pool[c], sizeof p);
	r->pool[c] = p;
	r->pool_kept += size;
}

/* Frees a block of old bytes, whatever path allocated it. */
static void rules_block_free(struct rules *r, void *p, size_t old)
{
	if (old <= RULES_POOL_MAX)
		rules_pool_put(r, p, old);
	else
		free(p);
}

void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct rules *r = ud;
	size_t old = ptr ? osize : 0;  /* for new blocks osize is a type tag */
	void *p;

	if (nsize == 0) {
		if (ptr)
			rules_block_free(r, ptr, old);
		r->mem_used -= old;
		return NULL;
	}
	if (r->mem_limit && nsize > old && nsize - old > r->mem_limit - r->mem_used) {
		r->mem_refused = 1;
		return NULL;
	}
	if (ptr && old <= RULES_POOL_MAX && nsize <= RULES_POOL_MAX &&
	    rules_pool_class(old) == rules_pool_class(nsize)) {
		p = ptr;   /* the block already has room */
	} else if (nsize <= RULES_POOL_MAX || (ptr && old <= RULES_POOL_MAX)) {
		p = nsize <= RULES_POOL_MAX ? rules_pool_get(r, nsize) : malloc(nsize);
		if (!p)   /* a shrink must not fail: keep the larger block */
			return ptr && nsize < old ? ptr : NULL;
		if (ptr) {
			memcpy(p, ptr, old < nsize ? old : nsize);
			rules_block_free(r, ptr, old);
		}
	} else {
		p = realloc(ptr, nsize);
		if (!p)
			return ptr && nsize < old ? ptr : NULL;
	}
	r->mem_used = r->mem_used - old + nsize;
	return p;
}

void rules_alloc_release(struct rules *r)
{
	for (size_t c = 0; c < RULES_POOL_CLASSES; c++) {
		while (r->pool[c]) {
			void *p = r->pool[c];

			memcpy(&r->pool[c], p, sizeof p);
			free(p);
		}
	}
	r->pool_kept = 0;
}
