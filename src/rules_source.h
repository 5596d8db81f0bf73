/*
 * rules_source.h — the rules file's text, read once, shared by workers.
 *
 * Every worker compiles its own Lua state from the same text, so editing
 * the file on disk reaches no worker until a reload (SIGHUP) reads it again
 * and publishes a new generation. The modules it `require`s at load are
 * part of the generation too (struct rules_modules). A source is immutable and
 * reference-counted: a reload can publish a new one while workers still
 * compile from the old one.
 *
 * Threads: rules_source_ref/unref are atomic; the current source is
 * published and taken under struct rules_current's mutex.
 */
#ifndef EGOI_RULES_SOURCE_H
#define EGOI_RULES_SOURCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* A module the rules `require`d while main compiled them (name as given). */
struct rules_module {
	char *name;
	char *text;
	size_t len;
};

struct rules_modules {
	size_t n;
	struct rules_module *m;
};

struct rules_source {
	char *text;                  /* NUL-terminated file contents */
	size_t len;
	unsigned long generation;    /* 1 at start-up, +1 per accepted reload */
	atomic_int refs;
	/* Filled while main compiles the text (rules_options.record), before
	 * it is published; workers' require() during their load reads these,
	 * so a module edited on disk reaches them only with a reload too. */
	struct rules_modules modules;
};

/* Adds a copy of name and text. 0, or -1 out of memory. */
int rules_modules_add(struct rules_modules *ms, const char *name, const char *text, size_t len);

/* The module named, or NULL (ms may be NULL). */
const struct rules_module *rules_modules_find(const struct rules_modules *ms, const char *name);

/* Reads path into a new source (one reference, the caller's). NULL with err. */
struct rules_source *rules_source_read(const char *path, unsigned long generation, char *err,
				       size_t errlen);

/* Takes one more reference; returns s. */
struct rules_source *rules_source_ref(struct rules_source *s);

/* Drops a reference, freeing s after the last one. s may be NULL. */
void rules_source_unref(struct rules_source *s);

/* The source workers should be running: published by main, read by workers. */
struct rules_current {
	pthread_mutex_t mu;
	struct rules_source *src;    /* one reference held here */
	atomic_ulong generation;     /* src->generation, readable without the lock */
};

void rules_current_init(struct rules_current *c);

/* Drops the held source; c may be zeroed. */
void rules_current_free(struct rules_current *c);

/* Publishes src (takes over the caller's reference) and drops the old one. */
void rules_current_set(struct rules_current *c, struct rules_source *src);

/* A new reference to the published source, or NULL if none (caller unrefs). */
struct rules_source *rules_current_get(struct rules_current *c);

#endif
