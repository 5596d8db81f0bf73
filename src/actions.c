/*
 * actions.c — the list of decisions of one batch (see actions.h).
 *
 * The array grows by doubling and is reused batch after batch by its worker,
 * so routing a batch allocates only the decisions' strings. The commit of a
 * batch's decisions lives in actions_commit.c.
 */
#include "actions.h"

#include <stdlib.h>
#include <string.h>

void actions_init(struct actions *a)
{
	memset(a, 0, sizeof *a);
}

static void action_release(struct action *it)
{
	free(it->target);
	free(it->text);
	free(it->method);
	free(it->content_type);
	free(it->headers);
	free(it->name);
}

void actions_truncate(struct actions *a, size_t count)
{
	while (a->count > count)
		action_release(&a->items[--a->count]);
}

void actions_clear(struct actions *a)
{
	actions_truncate(a, 0);
}

void actions_free(struct actions *a)
{
	if (!a)
		return;
	actions_clear(a);
	free(a->items);
	memset(a, 0, sizeof *a);
}

struct action *actions_push(struct actions *a, enum action_kind kind, size_t event)
{
	struct action *it;

	if (a->count == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		struct action *items = realloc(a->items, cap * sizeof *items);

		if (!items)
			return NULL;
		a->items = items;
		a->cap = cap;
	}
	it = &a->items[a->count++];
	memset(it, 0, sizeof *it);
	it->kind = kind;
	it->event = event;
	return it;
}

char *actions_strndup(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (!p)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}
