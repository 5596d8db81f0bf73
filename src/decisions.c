/*
 * decisions.c — the list of decisions of one batch (see decisions.h).
 *
 * The array grows by doubling and is reused batch after batch by its worker,
 * so routing a batch allocates only the decisions' strings. The commit of a
 * batch's decisions lives in decisions_commit.c.
 */
#include "decisions.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void decisions_init(struct decisions *a)
{
	memset(a, 0, sizeof *a);
}

static void decisions_release(struct decision *it)
{
	free(it->target);
	free(it->body);   /* the union's one string, whatever the kind */
	free(it->method);
	free(it->content_type);
	free(it->headers);
	free(it->name);
}

void decisions_truncate(struct decisions *a, size_t count)
{
	while (a->count > count)
		decisions_release(&a->items[--a->count]);
}

void decisions_clear(struct decisions *a)
{
	decisions_truncate(a, 0);
}

void decisions_free(struct decisions *a)
{
	if (!a)
		return;
	decisions_clear(a);
	free(a->items);
	memset(a, 0, sizeof *a);
}

struct decision *decisions_push(struct decisions *a, enum decision_kind kind, size_t event)
{
	struct decision *it;

	it = util_array_grow(a->items, &a->cap, a->count, sizeof *it, 64);
	if (!it)
		return NULL;
	a->items = it;
	it = &a->items[a->count++];
	memset(it, 0, sizeof *it);
	it->kind = kind;
	it->event = event;
	return it;
}

char *decisions_strndup(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}
