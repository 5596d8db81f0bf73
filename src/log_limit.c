/*
 * log_limit.c — repeated warnings written once per LOG_REPEAT_S with a
 * count (see log.h). A dead destination or a scanner hammering a closed
 * door would otherwise write the same line thousands of times a minute.
 *
 * A fixed table of LOG_LIMIT_SLOTS keys, searched linearly under one mutex:
 * the callers are warnings, not the request path. When every slot is taken
 * the least recently written one is reused (its count is written first, so
 * none is lost, only merged sooner).
 *
 * Threads: any thread.
 */
#include "log.h"

#include "clock.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_LIMIT_SLOTS 64
#define LOG_LIMIT_FIELDS 16

struct log_limit_slot {
	char key[96];
	char last[512];            /* the last message counted, for the flush */
	enum log_level lvl;
	double written_at;         /* monotonic; 0 = free */
	unsigned long repeated;    /* counted since written_at */
};

static pthread_mutex_t log_limit_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log_limit_slot log_limit_slots[LOG_LIMIT_SLOTS];

/* The slot of key, or the one to reuse for it (free, else oldest); with
 * *evicted set to a copy of what the reused slot still had to say. */
static struct log_limit_slot *log_limit_find(const char *key, struct log_limit_slot *evicted)
{
	struct log_limit_slot *pick = NULL;

	evicted->repeated = 0;
	for (int i = 0; i < LOG_LIMIT_SLOTS; i++) {
		struct log_limit_slot *s = &log_limit_slots[i];

		if (s->written_at != 0 && strcmp(s->key, key) == 0)
			return s;
		if (!pick || (pick->written_at != 0 && s->written_at < pick->written_at))
			pick = s;
	}
	if (pick->written_at != 0)
		*evicted = *pick;
	memset(pick, 0, sizeof *pick);
	snprintf(pick->key, sizeof pick->key, "%s", key);
	return pick;
}

static void log_limit_repeat_line(const struct log_limit_slot *s)
{
	struct log_field f[] = { LOG_FS("repeat_key", s->key), LOG_FI("repeated", s->repeated) };

	log_fields(s->lvl, NULL, f, 2, "%s (repeated %lu times)", s->last, s->repeated);
}

void log_limited(enum log_level lvl, const char *key, const struct log_field *f, size_t n,
		 const char *fmt, ...)
{
	struct log_field all[LOG_LIMIT_FIELDS + 1];
	struct log_limit_slot *s, evicted;
	double now = clock_mono();
	unsigned long repeated = 0;
	char msg[512];
	int write_it = 0;
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n > LOG_LIMIT_FIELDS)
		n = LOG_LIMIT_FIELDS;
	pthread_mutex_lock(&log_limit_mu);
	s = log_limit_find(key, &evicted);
	if (s->written_at == 0 || now - s->written_at >= LOG_REPEAT_S) {
		write_it = 1;
		repeated = s->repeated;
		s->repeated = 0;
		s->written_at = now;
	} else {
		s->repeated++;
		s->lvl = lvl;
		snprintf(s->last, sizeof s->last, "%s", msg);
	}
	pthread_mutex_unlock(&log_limit_mu);
	if (evicted.repeated)
		log_limit_repeat_line(&evicted);
	if (!write_it)
		return;
	if (n)
		memcpy(all, f, n * sizeof *f);
	if (repeated) {
		all[n] = (struct log_field)LOG_FI("repeated", repeated);
		log_fields(lvl, NULL, all, n + 1, "%s (repeated %lu times)", msg, repeated);
	} else {
		log_fields(lvl, NULL, all, n, "%s", msg);
	}
}

void log_limited_flush(void)
{
	for (int i = 0; i < LOG_LIMIT_SLOTS; i++) {
		struct log_limit_slot s;

		pthread_mutex_lock(&log_limit_mu);
		s = log_limit_slots[i];
		log_limit_slots[i].repeated = 0;
		pthread_mutex_unlock(&log_limit_mu);
		if (s.written_at != 0 && s.repeated)
			log_limit_repeat_line(&s);
	}
}

void log_limited_reset(void)
{
	pthread_mutex_lock(&log_limit_mu);
	memset(log_limit_slots, 0, sizeof log_limit_slots);
	pthread_mutex_unlock(&log_limit_mu);
}
