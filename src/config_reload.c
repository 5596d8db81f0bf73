/*
 * config_reload.c — the published config snapshot and the difference a
 * reload makes (see config_reload.h). The key table's `live` flag decides
 * what may change without a restart.
 */
#include "config_reload.h"
#include "config_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t config_snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct config_snap *config_snap_current;   /* under config_snap_lock */

/* Bytes a key's value takes in struct config, and whether it is a char *. */
static size_t config_reload_size(const struct cfg_key *k, int *is_string)
{
	*is_string = 0;
	switch (k->type) {
	case CFG_INT:
	case CFG_DURATION:
		return sizeof(long);
	case CFG_COUNT:
	case CFG_SIZE:
		return sizeof(size_t);
	case CFG_LOG_LEVEL:
	case CFG_LOG_FORMAT:
		return sizeof(int);
	case CFG_STRING:
	case CFG_PATH:
	case CFG_ENUM:
	case CFG_CIDRS:
	case CFG_SECRET:
		break;
	}
	*is_string = 1;
	return sizeof(char *);
}

/* Copies key k's value from src to dst (dst's old string freed). 0 or -1. */
static int config_reload_copy_key(struct config *dst, const struct config *src,
				  const struct cfg_key *k)
{
	int is_string;
	size_t size = config_reload_size(k, &is_string);
	char *d = (char *)dst + k->offset;
	const char *s = (const char *)src + k->offset;
	const char *from;
	char *copy = NULL;

	if (!is_string) {
		memcpy(d, s, size);
		return 0;
	}
	memcpy(&from, s, sizeof from);
	if (from && !(copy = strdup(from)))
		return -1;
	memcpy(&from, d, sizeof from);
	if (from) {
		/* A secret is zeroed before its block goes back to the heap. */
		explicit_bzero((char *)from, strlen(from));
		free((char *)from);
	}
	memcpy(d, &copy, sizeof copy);
	if (k->offset == offsetof(struct config, auth_token)) {
		dst->auth_disabled = src->auth_disabled;
		memcpy(dst->auth_token_sha256, src->auth_token_sha256, sizeof dst->auth_token_sha256);
	}
	return 0;
}

static int config_reload_equal(const struct config *a, const struct config *b,
			       const struct cfg_key *k)
{
	int is_string;
	size_t size = config_reload_size(k, &is_string);
	const char *pa = (const char *)a + k->offset, *pb = (const char *)b + k->offset;
	const char *sa, *sb;

	if (!is_string)
		return memcmp(pa, pb, size) == 0;
	memcpy(&sa, pa, sizeof sa);
	memcpy(&sb, pb, sizeof sb);
	if (k->offset == offsetof(struct config, auth_token) && a->auth_disabled != b->auth_disabled)
		return 0;
	if (!sa || !sb)
		return sa == sb;
	return strcmp(sa, sb) == 0;
}

int config_copy(struct config *dst, const struct config *src)
{
	memset(dst, 0, sizeof *dst);
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (config_reload_copy_key(dst, src, &config_keys[i]) < 0) {
			config_free(dst);
			return -1;
		}
	dst->auth_disabled = src->auth_disabled;
	return 0;
}

int config_reload_diff(const struct config *cur, struct config *next,
		       struct config_reload_diff *d)
{
	memset(d, 0, sizeof *d);
	for (size_t i = 0; i < CONFIG_NKEYS; i++) {
		const struct cfg_key *k = &config_keys[i];

		if (config_reload_equal(cur, next, k))
			continue;
		if (k->live) {
			if (d->nchanged < sizeof d->changed / sizeof d->changed[0])
				d->changed[d->nchanged++] = k->name;
			continue;
		}
		if (d->nrestart < sizeof d->restart / sizeof d->restart[0])
			d->restart[d->nrestart++] = k->name;
		if (config_reload_copy_key(next, cur, k) < 0)
			return -1;
	}
	return 0;
}

int config_key_is_live(const char *name)
{
	for (size_t i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return config_keys[i].live;
	return 0;
}

struct config_snap *config_snap_copy(const struct config *cfg, unsigned long generation)
{
	struct config_snap *snap = calloc(1, sizeof *snap);

	if (!snap)
		return NULL;
	if (config_copy(&snap->cfg, cfg) < 0) {
		free(snap);
		return NULL;
	}
	atomic_init(&snap->refs, 1);
	snap->generation = generation;
	return snap;
}

void config_snap_release(struct config_snap *snap)
{
	if (snap && atomic_fetch_sub(&snap->refs, 1) == 1) {
		config_free(&snap->cfg);
		free(snap);
	}
}

void config_snap_publish(struct config_snap *snap)
{
	struct config_snap *old;

	pthread_mutex_lock(&config_snap_lock);
	old = config_snap_current;
	config_snap_current = snap;
	pthread_mutex_unlock(&config_snap_lock);
	config_snap_release(old);   /* freed now, or by the last request using it */
}

struct config_snap *config_snap_acquire(void)
{
	struct config_snap *snap;

	pthread_mutex_lock(&config_snap_lock);
	snap = config_snap_current;
	if (snap)
		atomic_fetch_add(&snap->refs, 1);
	pthread_mutex_unlock(&config_snap_lock);
	return snap;
}

void config_snap_clear(void)
{
	config_snap_publish(NULL);
}
