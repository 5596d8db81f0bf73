/*
 * sink_file_write.c — appends one file's queued lines as whole lines.
 *
 * The promise: whatever write(2) does (short write, ENOSPC, EDQUOT, EIO),
 * every line is either wholly in the file or not at all, and the file never
 * ends in the middle of a line, so the next line can never be glued onto a
 * fragment. Design, in the order of one append:
 *
 * 1. Lock. Our own workers first take a mutex of this process chosen by
 *    the file's inode (one of SINK_STRIPES), then every appender takes
 *    flock(LOCK_EX) on its own descriptor. flock locks belong to the open
 *    file description, so they conflict between descriptors opened
 *    separately, by other workers of this process (each worker's sink opens
 *    its own) and by other processes alike; but flock can only be waited
 *    for without a bound or polled, and polling with sleeps made workers
 *    appending to the same file sleep up to 1 ms for a lock held a few
 *    microseconds (at batch 1 most appends waited). The mutex makes our own
 *    workers queue and wake as soon as the file is free, so flock waits
 *    only for other processes: LOCK_NB, retried with sleeps growing from
 *    20 us to 1 ms, for at most SINK_LOCK_WAIT_MS; a file held longer fails
 *    the batch (503) rather than hanging the worker.
 * 2. Check the tail. Under the lock, fstat gives the size. If it is the size
 *    at which this process last left the file (clean_end: the entry's own,
 *    or the one its mutex stripe keeps for the inode it last served, so an
 *    append after another worker's needs no read) the file ends in '\n';
 *    otherwise one byte is read. A file not ending in '\n' holds a fragment
 *    (a crash mid-append, or an undo that failed): when a '\n' is found in
 *    the last SINK_REPAIR_SCAN bytes, the file is cut back to just after it
 *    (the bytes after the last line break were never a whole line);
 *    otherwise (a longer fragment, or a file whose content is not lines) it
 *    is sealed with a '\n' instead, so no unknown data is thrown away: the
 *    fragment stays as one broken line, and the next line starts clean.
 *    Both are logged.
 * 3. Reserve. fallocate(FALLOC_FL_KEEP_SIZE) for the bytes about to be
 *    written: a full disk or quota then fails here, before a single byte is
 *    written, so a reader following the file never sees a fragment in the
 *    usual disk-full case. It reserves 64 KiB more than needed when that
 *    fits, and is skipped while the file's allocated blocks already cover
 *    the append, so small appends rarely pay for it. File systems without
 *    fallocate skip this step.
 * 4. Write the whole queue with one write(2) (a batch's lines for one file
 *    are one buffer: one syscall instead of one per line). Under the lock a
 *    short write may be completed: no cooperating appender can come in
 *    between. Another process appending WITHOUT the lock still lands at the
 *    end (O_APPEND) but is not protected from our undo, nor we from it.
 * 5. On failure, undo: if the file grew by exactly what we wrote, ftruncate
 *    back to the size before; if it changed otherwise (an appender that
 *    ignores the lock), the tail is repaired as in step 2. If the undo
 *    itself fails it is logged and clean_end is forgotten, so the next
 *    append to this file (ours or another worker's, which finds no '\n' at
 *    the end) repairs it first. Only when an undo fails AND the cut-off
 *    point fell on a line boundary can whole lines of a failed batch stay
 *    in the file: E-goi retries the batch and they appear twice (delivery
 *    is at-least-once anyway).
 * 6. Unlock.
 *
 * The undo is visible to a reader following the file only when step 3 was
 * not possible or the error came later (EIO): it may read bytes that are
 * then cut off again, and some log shippers treat a file that shrinks as
 * truncated.
 *
 * Threads: called by the thread owning the entry; the stripe's mutex
 * orders it with this process's other appenders of the file, flock with
 * every other appender.
 */
#include "sink_file.h"
#include "sink_file_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define SINK_LOCK_WAIT_MS 10000
#define SINK_REPAIR_SCAN (1024 * 1024)
#define SINK_SCAN_CHUNK (64 * 1024)
#define SINK_STRIPES 64
#define SINK_RESERVE_AHEAD (64 * 1024)

/* The in-process lock of the files whose inode falls on it, and the clean end of the last one appended. */
struct sink_stripe {
	pthread_mutex_t mu;
	dev_t dev;
	ino_t ino;
	off_t clean_end;   /* -1 unknown */
};

static struct sink_stripe sink_stripes[SINK_STRIPES];
static pthread_once_t sink_stripes_once = PTHREAD_ONCE_INIT;

static void sink_file_write_stripes_init(void)
{
	for (size_t i = 0; i < SINK_STRIPES; i++) {
		pthread_mutex_init(&sink_stripes[i].mu, NULL);
		sink_stripes[i].clean_end = -1;
	}
}

/* The stripe of e's file, locked; e->clean_end taken from it when it last served this inode. */
static struct sink_stripe *sink_file_write_stripe_lock(struct sink_entry *e)
{
	struct sink_stripe *st;

	pthread_once(&sink_stripes_once, sink_file_write_stripes_init);
	st = &sink_stripes[((unsigned long long)e->dev * 31u + (unsigned long long)e->ino) % SINK_STRIPES];
	pthread_mutex_lock(&st->mu);
	if (st->dev == e->dev && st->ino == e->ino)
		e->clean_end = st->clean_end;
	return st;
}

/* Records what e now knows of its file's end in the stripe and unlocks it. */
static void sink_file_write_stripe_unlock(struct sink_stripe *st, const struct sink_entry *e)
{
	st->dev = e->dev;
	st->ino = e->ino;
	st->clean_end = e->clean_end;
	pthread_mutex_unlock(&st->mu);
}

/* flock(LOCK_EX), waiting at most SINK_LOCK_WAIT_MS. 0 or -1 with err set. */
static int sink_file_write_lock_file(const struct sink_entry *e, char *err, size_t errlen)
{
	long long waited_us = 0;
	long step_us = 20;

	for (;;) {
		struct timespec ts;

		if (flock(e->fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			snprintf(err, errlen, "cannot lock %.200s: %s", e->path, strerror(errno));
			return -1;
		}
		if (waited_us >= (long long)SINK_LOCK_WAIT_MS * 1000) {
			snprintf(err, errlen, "%.200s stayed locked by another writer for %d s",
				 e->path, SINK_LOCK_WAIT_MS / 1000);
			return -1;
		}
		ts.tv_sec = 0;
		ts.tv_nsec = step_us * 1000;
		nanosleep(&ts, NULL);   /* EINTR: only a shorter wait */
		waited_us += step_us;
		step_us = step_us < 500 ? step_us * 2 : 1000;
	}
}

/* Reads exactly len bytes at off; 0, or -1 (errno set; EIO for a short file). */
static int sink_file_write_pread_full(int fd, char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* ftruncate, retried on EINTR. */
static int sink_file_write_truncate_to(int fd, off_t size)
{
	int rc;

	do
		rc = ftruncate(fd, size);
	while (rc != 0 && errno == EINTR);
	return rc;
}

/*
 * Makes a file of *size bytes (> 0) end in '\n' (step 2 above); *size gets
 * the new size. 0, or -1 with err set.
 */
static int sink_file_write_repair_tail(struct sink_entry *e, off_t *size, char *err, size_t errlen)
{
	off_t end = *size, limit = *size > SINK_REPAIR_SCAN ? *size - SINK_REPAIR_SCAN : 0;
	off_t cut = -1;
	char last, *buf = NULL;
	ssize_t n;
	int rc = -1;

	if (sink_file_write_pread_full(e->fd, &last, 1, end - 1) != 0) {
		snprintf(err, errlen, "cannot read the end of %.200s: %s", e->path, strerror(errno));
		goto out;
	}
	if (last == '\n') {
		rc = 0;
		goto out;
	}
	buf = malloc(SINK_SCAN_CHUNK);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (end > limit && cut < 0) {
		off_t start = end - limit > SINK_SCAN_CHUNK ? end - SINK_SCAN_CHUNK : limit;
		char *nl;

		if (sink_file_write_pread_full(e->fd, buf, (size_t)(end - start), start) != 0) {
			snprintf(err, errlen, "cannot read %.200s: %s", e->path, strerror(errno));
			goto out;
		}
		nl = memrchr(buf, '\n', (size_t)(end - start));
		if (nl)
			cut = start + (nl - buf) + 1;
		end = start;
	}
	if (cut >= 0) {
		if (sink_file_write_truncate_to(e->fd, cut) != 0) {
			snprintf(err, errlen, "cannot cut the unfinished line at the end of %.200s: %s",
				 e->path, strerror(errno));
			goto out;
		}
		log_msg(LOG_WARN, NULL, "file %s did not end with a line break: cut %lld bytes of an "
			"unfinished line", e->path, (long long)(*size - cut));
		*size = cut;
	} else {
		do
			n = write(e->fd, "\n", 1);
		while (n < 0 && errno == EINTR);
		if (n != 1) {
			snprintf(err, errlen, "cannot end the unfinished line of %.200s: %s", e->path,
				 n < 0 ? strerror(errno) : "nothing written");
			goto out;
		}
		log_msg(LOG_WARN, NULL, "file %s did not end with a line break and has none in its "
			"last %lld bytes: sealed it with one", e->path, (long long)(*size - limit));
		*size += 1;
	}
	rc = 0;
out:
	if (rc == 0)
		e->clean_end = *size;
	free(buf);
	return rc;
}

/* fallocate(FALLOC_FL_KEEP_SIZE), retried on EINTR. */
static int sink_file_write_fallocate(int fd, off_t off, off_t len)
{
	int rc;

	do
		rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, off, len);
	while (rc != 0 && errno == EINTR);
	return rc;
}

/*
 * Step 3: makes sure len bytes at off (the size st had) have their blocks;
 * 0, or -1 with err set (nothing written). Allocated blocks (st_blocks)
 * that already cover them mean an earlier reservation holds: log files
 * have no holes, so their blocks end at the reserved end. Otherwise it
 * reserves SINK_RESERVE_AHEAD beyond them too, so most appends need no
 * fallocate; when that much does not fit, just len.
 */
static int sink_file_write_reserve(struct sink_entry *e, const struct stat *st, size_t len,
				   char *err, size_t errlen)
{
	off_t off = st->st_size;
	int rc;

	if (e->no_prealloc || (off_t)st->st_blocks * 512 >= off + (off_t)len)
		return 0;
	rc = sink_file_write_fallocate(e->fd, off, (off_t)len + SINK_RESERVE_AHEAD);
	if (rc != 0 && (errno == ENOSPC || errno == EDQUOT))
		rc = sink_file_write_fallocate(e->fd, off, (off_t)len);
	if (rc == 0)
		return 0;
	if (errno == EOPNOTSUPP || errno == ENOSYS) {
		e->no_prealloc = 1;
		return 0;
	}
	snprintf(err, errlen, "no room for %zu bytes in %.200s: %s", len, e->path, strerror(errno));
	return -1;
}

/* Step 5: removes the done bytes we appended at before; 0, or -1 (logged). */
static int sink_file_write_undo(struct sink_entry *e, off_t before, size_t done)
{
	struct stat st;
	char why[256] = "";
	off_t size;

	if (done == 0)
		return 0;
	if (fstat(e->fd, &st) != 0) {
		snprintf(why, sizeof why, "cannot stat it: %s", strerror(errno));
	} else if (st.st_size == before + (off_t)done) {
		if (sink_file_write_truncate_to(e->fd, before) == 0) {
			e->clean_end = before;
			return 0;
		}
		snprintf(why, sizeof why, "%s", strerror(errno));
	} else {
		/* someone appended without the lock: keep whole lines, cut the rest */
		size = st.st_size;
		if (size == 0 || sink_file_write_repair_tail(e, &size, why, sizeof why) == 0)
			return 0;
	}
	e->clean_end = -1;
	log_msg(LOG_ERROR, NULL, "could not remove the %zu bytes of a failed append from %s (%s); "
		"the file is repaired before its next line", done, e->path, why);
	return -1;
}

enum sink_status sink_entry_write(struct sink_entry *e, char *err, size_t errlen)
{
	struct sink_stripe *stripe;
	struct stat st;
	off_t before;
	size_t done = 0;
	int rc = SINK_IO, locked = 0;

	if (e->q.len == 0)
		return SINK_OK;
	stripe = sink_file_write_stripe_lock(e);
	if (sink_file_write_lock_file(e, err, errlen) != 0)
		goto out;
	locked = 1;
	if (fstat(e->fd, &st) != 0) {
		snprintf(err, errlen, "cannot stat %.200s: %s", e->path, strerror(errno));
		goto out;
	}
	before = st.st_size;
	if (before > 0 && before != e->clean_end) {
		if (sink_file_write_repair_tail(e, &before, err, errlen) != 0)
			goto out;
		st.st_size = before;
		st.st_blocks = 0;   /* a cut freed blocks: reserve afresh */
	}
	if (sink_file_write_reserve(e, &st, e->q.len, err, errlen) != 0)
		goto out;
	while (done < e->q.len) {
		ssize_t n = write(e->fd, e->q.p + done, e->q.len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			const char *why = n < 0 ? strerror(errno) : "nothing written";

			if (done == 0)
				snprintf(err, errlen, "cannot write %.200s: %s", e->path, why);
			else
				snprintf(err, errlen, "short write to %.200s (%zu of %zu bytes): %s; %s",
					 e->path, done, e->q.len, why, sink_file_write_undo(e, before, done) == 0
					 ? "the partial lines were removed"
					 : "removing the partial lines failed too");
			goto out;
		}
		done += (size_t)n;
	}
	e->clean_end = before + (off_t)e->q.len;
	rc = SINK_OK;
out:
	if (locked)
		flock(e->fd, LOCK_UN);   /* closing the descriptor would release it too */
	sink_file_write_stripe_unlock(stripe, e);
	util_buf_reset(&e->q);
	return rc;
}
