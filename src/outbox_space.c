/*
 * outbox_space.c — the reserve and the full state (see outbox_space.h).
 *
 * Design: statvfs(2) of data_dir gives the space an unprivileged writer
 * may use (f_bavail); it is read at most once per OUTBOX_SPACE_CHECK_MS by
 * intake, so a busy intake costs one syscall a few times a second, not per
 * batch. The thresholds are fractions of the reserve so that leaving the
 * full state needs clearly more space than entering it (no flapping): enter
 * below reserve / 4 free, leave at 2 * reserve free, after the reserve is
 * allocated again. SQLITE_FULL enters at once, whoever saw it.
 *
 * Threads: one mutex guards everything; the flag is also atomic so the hot
 * check (outbox_space_full) takes no lock.
 */
#include "outbox_space.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define OUTBOX_SPACE_CHECK_MS 200
#define OUTBOX_SPACE_FLOOR (1024 * 1024)   /* thresholds when there is no reserve */

static pthread_mutex_t space_lock = PTHREAD_MUTEX_INITIALIZER;
static char *space_dir;                     /* NULL: not started */
static char *space_file;
static size_t space_reserve;
static atomic_int space_is_full;
static double space_checked_at;

/* Bytes available in data_dir, or -1 (logged by the caller's errno). */
static long long outbox_space_free(void)
{
	struct statvfs sv;

	if (statvfs(space_dir, &sv) != 0)
		return -1;
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

static long long outbox_space_enter_below(void)
{
	return space_reserve ? (long long)space_reserve / 4 : OUTBOX_SPACE_FLOOR;
}

static long long outbox_space_leave_at(void)
{
	return space_reserve ? 2 * (long long)space_reserve : 4LL * OUTBOX_SPACE_FLOOR;
}

/* Allocates the reserve file; 0 or -1 (errno). Called with the lock held. */
static int outbox_space_allocate(void)
{
	int fd, rc;

	if (space_reserve == 0)
		return 0;
	fd = open(space_file, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	rc = posix_fallocate(fd, 0, (off_t)space_reserve);
	if (rc == 0 && ftruncate(fd, (off_t)space_reserve) != 0)   /* a smaller reserve */
		rc = errno;
	close(fd);
	if (rc != 0) {
		(void)unlink(space_file);   /* a half reserve is no reserve */
		errno = rc;
		return -1;
	}
	return 0;
}

/* Enters the full state; called with the lock held. */
static void outbox_space_enter(const char *why)
{
	if (atomic_load(&space_is_full))
		return;
	atomic_store(&space_is_full, 1);
	if (space_reserve && unlink(space_file) != 0 && errno != ENOENT)
		log_msg(LOG_ERROR, NULL, "outbox: cannot release the reserve %s: %s", space_file,
			strerror(errno));
	log_msg(LOG_ERROR, NULL, "outbox: data_dir %s is full (%s): intake answers 503, "
				 "delivery goes on in the released reserve (%zu bytes); intake "
				 "resumes when %lld bytes are free", space_dir, why, space_reserve,
		outbox_space_leave_at());
}

int outbox_space_start(const char *data_dir, size_t reserve, char *err, size_t errlen)
{
	long long avail;
	int rc = -1;

	pthread_mutex_lock(&space_lock);
	free(space_dir);
	free(space_file);
	space_dir = strdup(data_dir);
	if (!space_dir || asprintf(&space_file, "%s/outbox.reserve", data_dir) < 0) {
		space_file = NULL;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	space_reserve = reserve;
	atomic_store(&space_is_full, 0);
	space_checked_at = 0;
	if (access(space_file, F_OK) == 0 && outbox_space_allocate() == 0) {
		rc = 0;   /* kept from the last run (fallocate only tops it up) */
		goto out;
	}
	avail = outbox_space_free();
	if (avail < 0) {
		snprintf(err, errlen, "statvfs %s: %s", data_dir, strerror(errno));
		goto out;
	}
	if (avail < outbox_space_enter_below() + (long long)reserve || outbox_space_allocate() != 0)
		outbox_space_enter("too little space at start-up");
	rc = 0;
out:
	if (rc != 0) {
		free(space_dir);
		free(space_file);
		space_dir = space_file = NULL;
	}
	pthread_mutex_unlock(&space_lock);
	return rc;
}

void outbox_space_stop(void)
{
	pthread_mutex_lock(&space_lock);
	free(space_dir);
	free(space_file);
	space_dir = space_file = NULL;
	atomic_store(&space_is_full, 0);
	pthread_mutex_unlock(&space_lock);
}

int outbox_space_intake_ok(char *why, size_t len)
{
	double now = clock_mono();
	long long avail;
	int ok;

	pthread_mutex_lock(&space_lock);
	if (!space_dir) {
		pthread_mutex_unlock(&space_lock);
		return 1;
	}
	if (now - space_checked_at >= OUTBOX_SPACE_CHECK_MS / 1000.0) {
		space_checked_at = now;
		avail = outbox_space_free();
		if (avail >= 0 && !atomic_load(&space_is_full) && avail < outbox_space_enter_below()) {
			outbox_space_enter("free space is low");
		} else if (avail >= 0 && atomic_load(&space_is_full) && avail >= outbox_space_leave_at()) {
			if (outbox_space_allocate() == 0) {
				atomic_store(&space_is_full, 0);
				log_msg(LOG_INFO, NULL, "outbox: data_dir %s has space again (%lld "
							"bytes free); reserve allocated, intake "
							"resumes", space_dir, avail);
			} else {
				log_msg(LOG_WARN, NULL, "outbox: reserve %s not allocated yet: %s",
					space_file, strerror(errno));
			}
		}
	}
	ok = !atomic_load(&space_is_full);
	if (!ok)
		snprintf(why, len, "data_dir is full; intake resumes when space is back");
	pthread_mutex_unlock(&space_lock);
	return ok;
}

void outbox_space_exhausted(void)
{
	pthread_mutex_lock(&space_lock);
	if (space_dir)
		outbox_space_enter("a write failed: database or disk is full");
	pthread_mutex_unlock(&space_lock);
}

int outbox_space_full(void)
{
	return atomic_load(&space_is_full);
}
