/*
 * rules_source.c — see rules_source.h.
 */
#include "rules_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rules_source *rules_source_read(const char *path, unsigned long generation, char *err,
				       size_t errlen)
{
	struct rules_source *s = NULL;
	FILE *f = fopen(path, "rb");
	long n;

	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		goto fail;
	}
	s = calloc(1, sizeof *s);
	if (!s || !(s->text = malloc((size_t)n + 1))) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (fread(s->text, 1, (size_t)n, f) != (size_t)n) {
		snprintf(err, errlen, "%s: short read", path);
		goto fail;
	}
	s->text[n] = '\0';
	s->len = (size_t)n;
	s->generation = generation;
	atomic_init(&s->refs, 1);
	fclose(f);
	return s;
fail:
	if (s)
		free(s->text);
	free(s);
	fclose(f);
	return NULL;
}

struct rules_source *rules_source_ref(struct rules_source *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void rules_source_unref(struct rules_source *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	for (size_t i = 0; i < s->modules.n; i++) {
		free(s->modules.m[i].name);
		free(s->modules.m[i].text);
	}
	free(s->modules.m);
	free(s->text);
	free(s);
}

int rules_modules_add(struct rules_modules *ms, const char *name, const char *text, size_t len)
{
	struct rules_module *grown, *m;

	if (rules_modules_find(ms, name))
		return 0;
	grown = realloc(ms->m, (ms->n + 1) * sizeof *grown);
	if (!grown)
		return -1;
	ms->m = grown;
	m = &ms->m[ms->n];
	m->name = strdup(name);
	m->text = malloc(len + 1);
	if (!m->name || !m->text) {
		free(m->name);
		free(m->text);
		return -1;
	}
	memcpy(m->text, text, len);
	m->text[len] = '\0';
	m->len = len;
	ms->n++;
	return 0;
}

const struct rules_module *rules_modules_find(const struct rules_modules *ms, const char *name)
{
	for (size_t i = 0; ms && i < ms->n; i++)
		if (strcmp(ms->m[i].name, name) == 0)
			return &ms->m[i];
	return NULL;
}

void rules_current_init(struct rules_current *c)
{
	pthread_mutex_init(&c->mu, NULL);
	c->src = NULL;
	atomic_init(&c->generation, 0);
}

void rules_current_free(struct rules_current *c)
{
	if (!c)
		return;
	rules_source_unref(c->src);
	c->src = NULL;
	pthread_mutex_destroy(&c->mu);
}

void rules_current_set(struct rules_current *c, struct rules_source *src)
{
	struct rules_source *old;

	pthread_mutex_lock(&c->mu);
	old = c->src;
	c->src = src;
	atomic_store(&c->generation, src ? src->generation : 0);
	pthread_mutex_unlock(&c->mu);
	rules_source_unref(old);
}

struct rules_source *rules_current_get(struct rules_current *c)
{
	struct rules_source *s;

	pthread_mutex_lock(&c->mu);
	s = c->src ? rules_source_ref(c->src) : NULL;
	pthread_mutex_unlock(&c->mu);
	return s;
}
