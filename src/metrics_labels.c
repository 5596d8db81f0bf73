/*
 * metrics_labels.c — see metrics_labels.h.
 */
#include "metrics_labels.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "util.h"

static size_t metrics_labels_hash(int kind, const char *name)
{
	uint64_t h = util_fnv1a(UTIL_FNV1A_BASIS ^ (uint64_t)kind, name, strlen(name));

	return (size_t)(h ^ (h >> 29)) & (METRICS_HASH - 1);
}

/* Lock-free probe: the entry index of (kind, name), or -1 with *pos at the
 * empty index slot where it would go. */
static int metrics_labels_find(struct metrics_family *f, int kind, const char *name, size_t *pos)
{
	size_t h = metrics_labels_hash(kind, name);

	for (;;) {
		int v = atomic_load_explicit(&f->index[h], memory_order_acquire);
		const struct metrics_label *l;

		if (v == 0) {
			*pos = h;
			return -1;
		}
		l = &f->items[v - 1];
		if (l->kind == kind && strcmp(l->name, name) == 0)
			return v - 1;
		h = (h + 1) & (METRICS_HASH - 1);
	}
}

/*
 * Label values come from rules (write paths, names, drop reasons): a scrape
 * with one invalid UTF-8 byte is refused whole by Prometheus, so each value
 * is cut to METRICS_LABEL_MAX bytes and every control character or invalid
 * byte becomes '?'.
 */
void metrics_label_clean(const char *in, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = strlen(in), o = 0;

	while (n > 0) {
		unsigned cp;
		size_t len = utf8_decode(s, n, &cp);

		if (len == 0 || (len == 1 && (s[0] < 0x20 || s[0] == 0x7f))) {
			len = len ? len : 1;
			if (o + 1 > METRICS_LABEL_MAX)
				break;
			out[o++] = '?';
		} else {
			if (o + len > METRICS_LABEL_MAX)
				break;
			memcpy(out + o, s, len);
			o += len;
		}
		s += len;
		n -= len;
	}
	out[o] = '\0';
}

/* The counter slot of (kind, name), adding the pair if there is room. */
int metrics_family_slot(struct metrics_family *f, int kind, const char *raw)
{
	char name[METRICS_LABEL_MAX + 1];
	size_t pos;
	int slot, used;

	metrics_label_clean(raw ? raw : "?", name);
	slot = metrics_labels_find(f, kind, name, &pos);
	if (slot >= 0)
		return slot;
	if (atomic_load_explicit(&f->used, memory_order_acquire) >= METRICS_LABELS)
		return METRICS_OTHER(kind);
	pthread_mutex_lock(&f->lock);
	/* Another thread may have added it, or filled the table, meanwhile. */
	slot = metrics_labels_find(f, kind, name, &pos);
	used = atomic_load_explicit(&f->used, memory_order_relaxed);
	if (slot < 0 && used < METRICS_LABELS) {
		char *copy = strdup(name);

		if (copy) {
			f->items[used].kind = kind;
			f->items[used].name = copy;
			atomic_store_explicit(&f->used, used + 1, memory_order_release);
			atomic_store_explicit(&f->index[pos], used + 1, memory_order_release);
			slot = used;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return slot >= 0 ? slot : METRICS_OTHER(kind);
}

/* The counter slot of (kind, name) if the pair is registered, else -1
 * (never adds one: a reader must not fill the table). */
int metrics_family_find(struct metrics_family *f, int kind, const char *raw)
{
	char name[METRICS_LABEL_MAX + 1];
	size_t pos;

	metrics_label_clean(raw ? raw : "?", name);
	return metrics_labels_find(f, kind, name, &pos);
}

void metrics_family_reset(struct metrics_family *f)
{
	int used = atomic_load(&f->used);

	for (int i = 0; i < used; i++) {
		free(f->items[i].name);
		f->items[i].name = NULL;
	}
	atomic_store(&f->used, 0);
	for (int i = 0; i < METRICS_HASH; i++)
		atomic_store(&f->index[i], 0);
	for (int i = 0; i < METRICS_LABELS + METRICS_MAX_KINDS; i++)
		atomic_store(&f->value[i], 0);
}
