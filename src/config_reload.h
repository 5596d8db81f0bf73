/*
 * config_reload.h — SIGHUP's view of router.conf: the settings in force as
 * an immutable, reference-counted snapshot, and what a newly read file
 * changes.
 *
 * Each key of the table (config_internal.h) is either live (its `live`
 * flag: the snapshot's value is read at the start of each request, the
 * key belongs to the rules generation, or main's reload hands it to the
 * per-address guard or the delivery thread as a new settings block) or
 * needs a restart (a listener,
 * a thread count, a directory opened at start-up...). config_reload_diff
 * names the keys a new file changes, and for a key that needs a restart
 * puts the running value back into the new config, so that the published
 * snapshot always describes what really runs.
 *
 * A request takes the published snapshot (config_snap_acquire) when it
 * starts and releases it when it ends; publishing a new one drops the
 * publisher's reference to the old, which is freed by whoever releases it
 * last. So a request sees one config from start to end.
 *
 * Threads: config_snap_publish and config_reload_diff on the main thread;
 * acquire and release from any thread (one mutex around the pointer).
 */
#ifndef EGOI_CONFIG_RELOAD_H
#define EGOI_CONFIG_RELOAD_H

#include <stdatomic.h>
#include <stddef.h>

#include "config.h"

struct config_snap {
	atomic_long refs;
	unsigned long generation;   /* 1 at start-up, +1 per reload published */
	struct config cfg;          /* owned, never changed once published */
};

/* A snapshot holding a deep copy of cfg (one reference), or NULL. */
struct config_snap *config_snap_copy(const struct config *cfg, unsigned long generation);

/* Publishes snap (the caller's reference passes to the module). */
void config_snap_publish(struct config_snap *snap);

/* The published snapshot with a reference for the caller, or NULL before
 * the first publish. Release with config_snap_release. */
struct config_snap *config_snap_acquire(void);
void config_snap_release(struct config_snap *snap);

/* Drops the published snapshot (at exit). */
void config_snap_clear(void);

/* Deep copy of src into dst (zeroed first). 0, or -1 out of memory. */
int config_copy(struct config *dst, const struct config *src);

/* What a new config changes against the running one. */
struct config_reload_diff {
	size_t nchanged, nrestart;
	const char *changed[64];    /* key names that take effect now */
	const char *restart[64];    /* key names that need a restart (old value kept) */
};

/*
 * Compares every key of next against cur; for a changed key that needs a
 * restart, next gets cur's value back (a copy). 0, or -1 out of memory.
 */
int config_reload_diff(const struct config *cur, struct config *next,
		       struct config_reload_diff *d);

/* 1 when the key named is live (changes without a restart), else 0. */
int config_key_is_live(const char *name);

#endif
