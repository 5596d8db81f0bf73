/*
 * deliver_status.c — the destinations' snapshot (see deliver_status.h).
 *
 * A fixed table under one mutex: the delivery thread writes a row per
 * attempt and per refresh, the console copies the table when it renders.
 * Keys are compared whole; text is cut to DELIVER_STATUS_TEXT - 1 bytes.
 */
#include "deliver_status.h"
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t deliver_status_lock = PTHREAD_MUTEX_INITIALIZER;
static struct deliver_status_row deliver_status_rows[DELIVER_STATUS_MAX];
static size_t deliver_status_n;

/* The row of key, added when there is room; NULL when full. Lock held. */
/* key's row (made when new), returned with the lock held; NULL, and the
 * lock not held, for no key or a full table. */
static struct deliver_status_row *deliver_status_row_lock(const char *key)
{
	struct deliver_status_row *r = NULL;

	if (!key || !*key)
		return NULL;
	pthread_mutex_lock(&deliver_status_lock);
	for (size_t i = 0; i < deliver_status_n && !r; i++)
		if (strncmp(deliver_status_rows[i].key, key, DELIVER_STATUS_TEXT - 1) == 0)
			r = &deliver_status_rows[i];
	if (!r && deliver_status_n < DELIVER_STATUS_MAX) {
		r = &deliver_status_rows[deliver_status_n++];
		memset(r, 0, sizeof *r);
		snprintf(r->key, sizeof r->key, "%s", key);
	}
	if (!r)
		pthread_mutex_unlock(&deliver_status_lock);
	return r;
}

void deliver_status_attempt(const char *key, const char *label, int ok, int status,
			    const char *detail, double now)
{
	struct deliver_status_row *r = deliver_status_row_lock(key);

	if (!r)
		return;
	snprintf(r->label, sizeof r->label, "%s", label && *label ? label : key);
	if (ok) {
		r->last_success = now;
	} else {
		r->last_error_at = now;
		r->last_status = status;
		snprintf(r->last_error, sizeof r->last_error, "%s", detail ? detail : "");
	}
	pthread_mutex_unlock(&deliver_status_lock);
}

void deliver_status_dest(const char *key, int state, long backlog, double paused_until,
			 double open_until, double next_due)
{
	struct deliver_status_row *r = deliver_status_row_lock(key);

	if (!r)
		return;
	r->state = state;
	r->backlog = backlog;
	r->blocked_until = state == METRICS_DEST_OPEN && open_until > paused_until ? open_until
										 : paused_until;
	r->next_due = isfinite(next_due) ? next_due : 0;
	pthread_mutex_unlock(&deliver_status_lock);
}

size_t deliver_status_snapshot(struct deliver_status_row *out, size_t cap)
{
	size_t n;

	pthread_mutex_lock(&deliver_status_lock);
	n = deliver_status_n < cap ? deliver_status_n : cap;
	memcpy(out, deliver_status_rows, n * sizeof *out);
	pthread_mutex_unlock(&deliver_status_lock);
	return n;
}

void deliver_status_reset(void)
{
	pthread_mutex_lock(&deliver_status_lock);
	deliver_status_n = 0;
	pthread_mutex_unlock(&deliver_status_lock);
}
