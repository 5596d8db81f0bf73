/*
 * sink_file.c — safe opening, the descriptor cache and the line queue of
 * the file sink (see sink_file.h); sink_file_path.c holds the path policy,
 * sink_file_write.c appends a queue as whole lines.
 *
 * Design:
 * - output_dir is opened once as a directory descriptor; every file is
 *   reached from it component by component with O_NOFOLLOW, so neither a
 *   symlinked directory nor a symlinked file below output_dir can lead a
 *   write outside it. Missing directories are created 0750, files 0640.
 * - The target is opened O_NONBLOCK (a FIFO without a reader must not hang
 *   the worker) and must be a regular file with a single link (a hard link
 *   to a file elsewhere is as much an escape as a symlink). It is opened
 *   O_RDWR | O_APPEND: the tail of the file is read to check that it ends
 *   with a line break (sink_file_write.c).
 * - A batch's lines are queued per file (sink_file_add opens the file at
 *   once, so a refusal belongs to its line) and written by sink_file_flush:
 *   one write per file per batch, under the file's lock, whole lines only.
 * - Open descriptors are cached by path (SINK_CACHE entries, least recently
 *   used evicted, entries without queued lines first), so a batch writing
 *   many lines to one file opens it once. Evicting an entry with queued
 *   lines writes them first (and with SINK_SYNC_BATCH syncs them, since its
 *   descriptor will not be there for the batch's sync): only batches that
 *   write to more than SINK_CACHE files pay that. A cached entry is
 *   revalidated with one fstatat of the path when it was last checked more
 *   than SINK_RECHECK_MS ago: when logrotate renamed or deleted the file,
 *   the inode no longer matches (or the path is gone) and the file is
 *   opened again (lines already queued for the old inode are written to it
 *   first). So a rotation is noticed within ~10 ms; lines appended in that
 *   window land in the renamed file (logrotate's usual delaycompress keeps
 *   them). A matching inode is the very file that was opened safely, so
 *   revalidating through the path cannot be used to escape. Why not check
 *   every line: on the measured VM a syscall costs ~0.5-1.3 us, so fstatat
 *   per line tripled the cost of an append.
 * - SINK_SYNC_BATCH: every directory on a file's path (output_dir
 *   included) is fsync'ed each time the file is opened, not only when it was
 *   created: the file may have been created a moment ago by another worker
 *   or process that has not synced its directory yet, and our lines must
 *   not depend on that. Opens are rare (first use, rotation, eviction).
 *
 * Threads: a struct sink_file belongs to one thread (the cache is unlocked).
 * Several sink_file objects (one per worker) may append to the same files;
 * sink_file_write.c's lock orders them.
 */
#include "sink_file.h"
#include "sink_file_internal.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define SINK_CACHE 16
#define SINK_RECHECK_MS 10
#define SINK_QUEUE_KEEP (64 * 1024)   /* queue buffers larger than this are freed after use */

struct sink_file {
	int dirfd;
	int sync;                 /* enum sink_sync */
	unsigned long clock;
	struct sink_entry cache[SINK_CACHE];
	struct sink_file_ref written[SINK_CACHE];
	size_t nwritten;
};

/* A cheap clock (vDSO, a few ns): only bounds how stale a cached entry gets. */
static long long sink_file_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
		return 0;   /* cannot fail on Linux; 0 forces a recheck below */
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* fsync, retried on EINTR. */
static int sink_file_sync_fd(int fd, int data_only)
{
	int rc;

	do
		rc = data_only ? fdatasync(fd) : fsync(fd);
	while (rc != 0 && errno == EINTR);
	return rc;
}

struct sink_file *sink_file_open(const char *output_dir, int sync, char *err, size_t errlen)
{
	struct sink_file *s = NULL;
	int fd = -1;

	if (!output_dir) {
		snprintf(err, errlen, "output_dir is not set");
		goto out;
	}
	if (util_mkdir_p(output_dir, sync == SINK_SYNC_BATCH, NULL, NULL, err, errlen) != 0)
		goto out;
	/* output_dir itself may be a symlink (operator's choice); below it, no. */
	fd = open(output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open output_dir %s: %s", output_dir, strerror(errno));
		goto out;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	s->dirfd = fd;
	s->sync = sync == SINK_SYNC_BATCH;
	fd = -1;
	for (size_t i = 0; i < SINK_CACHE; i++)
		s->cache[i].fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return s;
}

/* Forgets e (its queued lines too) and frees its slot. */
static void sink_file_entry_drop(struct sink_entry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	free(e->path);
	util_buf_free(&e->q);
	memset(e, 0, sizeof *e);
	e->fd = -1;
}

/*
 * Writes e's queued lines before its slot is reused (with sync on, also
 * syncs them: the batch's sync will not find this descriptor), then drops
 * it. SINK_OK or SINK_IO.
 */
static int sink_file_entry_retire(struct sink_file *s, struct sink_entry *e, char *err, size_t errlen)
{
	int rc = SINK_OK;

	if (e->path && e->q.len > 0) {
		rc = sink_entry_write(e, err, errlen);
		if (rc == SINK_OK && s->sync && sink_file_sync_fd(e->fd, 1) != 0) {
			snprintf(err, errlen, "cannot sync %.200s: %s", e->path, strerror(errno));
			rc = SINK_IO;
		}
	}
	sink_file_entry_drop(e);
	return rc;
}

void sink_file_close(struct sink_file *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < SINK_CACHE; i++)
		sink_file_entry_drop(&s->cache[i]);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s);
}

/* Why a component could not be opened without following: symlink or else. */
static int sink_file_refuse_component(int dirfd, const char *comp, const char *path, char *err,
			    size_t errlen)
{
	struct stat st;

	if (fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		snprintf(err, errlen, "path %.200s leaves output_dir through a symlink", path);
	else
		snprintf(err, errlen, "path %.200s: %.100s is not a directory", path, comp);
	return SINK_REFUSED;
}


/* With SINK_SYNC_BATCH, fsyncs a directory on the way to path; SINK_OK or SINK_IO. */
static int sink_file_sync_walked_dir(const struct sink_file *s, int dfd, const char *path, char *err,
			   size_t errlen)
{
	if (!s->sync || sink_file_sync_fd(dfd, 0) == 0)
		return SINK_OK;
	snprintf(err, errlen, "cannot sync a directory of %.200s: %s", path, strerror(errno));
	return SINK_IO;
}

/*
 * One directory step of sink_file_open_target: comp under cur, made (0750)
 * when missing, never through a symlink; *dfd_out set on SINK_OK. The walked
 * directory cur is synced when a new entry may have been made in it.
 */
static int sink_file_enter_dir(const struct sink_file *s, int cur, const char *comp, const char *path,
			       int *dfd_out, char *err, size_t errlen)
{
	int dfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd < 0 && errno == ENOENT) {
		if (mkdirat(cur, comp, 0750) != 0 && errno != EEXIST)
			return sink_path_failed("cannot create a directory of", path, err, errlen);
		dfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (dfd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			return sink_file_refuse_component(cur, comp, path, err, errlen);
		return sink_path_failed("cannot open a directory of", path, err, errlen);
	}
	/* cur now holds an entry for dfd that may be new */
	if (sink_file_sync_walked_dir(s, cur, path, err, errlen) != SINK_OK) {
		close(dfd);
		return SINK_IO;
	}
	*dfd_out = dfd;
	return SINK_OK;
}

/*
 * Opens output_dir/path for appending, walking it with O_NOFOLLOW. *fd_out
 * and *st_out are set on SINK_OK.
 */
static int sink_file_open_target(struct sink_file *s, const char *path, int *fd_out, struct stat *st_out,
		       char *err, size_t errlen)
{
	char buf[SINK_PATH_MAX + 1];
	char *comp, *next;
	int cur = s->dirfd, fd = -1, rc = SINK_IO;

	snprintf(buf, sizeof buf, "%s", path);
	comp = buf;
	for (;;) {
		while (*comp == '/')
			comp++;
		next = strchr(comp, '/');
		if (!next)
			break;
		*next++ = '\0';
		if (strcmp(comp, ".") == 0) {
			comp = next;
			continue;
		}
		int dfd = -1;

		rc = sink_file_enter_dir(s, cur, comp, path, &dfd, err, errlen);
		if (rc != SINK_OK)
			goto out;
		rc = SINK_IO;
		if (cur != s->dirfd)
			close(cur);
		cur = dfd;
		comp = next;
	}
	fd = openat(cur, comp, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
		    O_CLOEXEC, 0640);
	if (fd < 0) {
		if (errno == ELOOP) {
			snprintf(err, errlen, "path %.200s leaves output_dir through a symlink", path);
			rc = SINK_REFUSED;
		} else if (errno == EISDIR || errno == ENXIO || errno == ENOTDIR) {
			snprintf(err, errlen, "path %.200s is not a regular file", path);
			rc = SINK_REFUSED;
		} else {
			rc = sink_path_failed("cannot open", path, err, errlen);
		}
		goto out;
	}
	if (fstat(fd, st_out) != 0) {
		snprintf(err, errlen, "cannot stat %.200s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st_out->st_mode)) {
		snprintf(err, errlen, "path %.200s is not a regular file", path);
		rc = SINK_REFUSED;
		goto out;
	}
	if (st_out->st_nlink > 1) {
		snprintf(err, errlen, "path %.200s is a hard link", path);
		rc = SINK_REFUSED;
		goto out;
	}
	if (sink_file_sync_walked_dir(s, cur, path, err, errlen) != SINK_OK)
		goto out;
	*fd_out = fd;
	fd = -1;
	rc = SINK_OK;
out:
	if (fd >= 0)
		close(fd);
	if (cur != s->dirfd)
		close(cur);
	return rc;
}

/* The slot to reuse: a free one, else the LRU entry without queued lines, else the LRU one. */
static struct sink_entry *sink_file_pick_victim(struct sink_file *s)
{
	struct sink_entry *idle = NULL, *any = NULL;

	for (size_t i = 0; i < SINK_CACHE; i++) {
		struct sink_entry *e = &s->cache[i];

		if (!e->path)
			return e;
		if (e->q.len == 0 && (!idle || e->used < idle->used))
			idle = e;
		if (!any || e->used < any->used)
			any = e;
	}
	return idle ? idle : any;
}

/* Finds a cached descriptor still naming output_dir/path, or opens one. */
static int sink_file_get_entry(struct sink_file *s, const char *path, struct sink_entry **out, char *err,
		     size_t errlen)
{
	size_t len = strlen(path);
	struct sink_entry *e, *victim = NULL;
	long long now = sink_file_now_ms();
	struct stat st;
	int fd = -1, rc;
	char *copy;

	for (size_t i = 0; i < SINK_CACHE; i++) {
		e = &s->cache[i];
		if (!e->path || e->len != len || memcmp(e->path, path, len) != 0)
			continue;
		if (now != 0 && now - e->checked_ms < SINK_RECHECK_MS) {
			e->used = ++s->clock;
			*out = e;
			return SINK_OK;
		}
		if (fstatat(s->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_dev == e->dev && st.st_ino == e->ino) {
			e->checked_ms = now;
			e->used = ++s->clock;
			*out = e;
			return SINK_OK;
		}
		/* rotated, deleted or replaced: open afresh in this slot */
		victim = e;
		break;
	}
	if (!victim)
		victim = sink_file_pick_victim(s);
	/* the old file gets what was queued for it before the slot is reused */
	rc = sink_file_entry_retire(s, victim, err, errlen);
	if (rc != SINK_OK)
		return rc;
	rc = sink_file_open_target(s, path, &fd, &st, err, errlen);
	if (rc != SINK_OK)
		return rc;
	copy = malloc(len + 1);
	if (!copy) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return SINK_IO;
	}
	memcpy(copy, path, len + 1);
	victim->path = copy;
	victim->len = len;
	victim->fd = fd;
	victim->dev = st.st_dev;
	victim->ino = st.st_ino;
	victim->used = ++s->clock;
	victim->checked_ms = now;
	victim->clean_end = -1;   /* unknown: the first append checks the tail */
	*out = victim;
	return SINK_OK;
}

enum sink_status sink_file_add(struct sink_file *s, const char *path, const char *line,
			       size_t len, char *err, size_t errlen)
{
	struct sink_entry *e = NULL;
	int rc;

	if (sink_file_check_path(path, err, errlen) != 0)
		return SINK_REFUSED;
	if (memchr(line, '\n', len)) {
		snprintf(err, errlen, "line for %.200s contains a newline", path);
		return SINK_REFUSED;
	}
	rc = sink_file_get_entry(s, path, &e, err, errlen);
	if (rc != SINK_OK)
		return rc;
	/* room for the line and its '\n' first, so a line is queued whole or not */
	if (len == (size_t)-1 || util_buf_reserve(&e->q, len + 1) != 0) {
		snprintf(err, errlen, e->q.over || len == (size_t)-1 ? "line for %.200s is too long"
								     : "out of memory", path);
		/* a refusal fails this line only: the queue stays usable */
		e->q.failed = e->q.over = 0;
		return SINK_IO;
	}
	util_buf_add(&e->q, line, len);
	util_buf_add(&e->q, "\n", 1);
	return SINK_OK;
}

/* Empties e's queue; a large buffer is given back rather than kept per worker. */
static void sink_file_queue_reset(struct sink_entry *e)
{
	if (e->q.cap > SINK_QUEUE_KEEP)
		util_buf_free(&e->q);
	else
		util_buf_reset(&e->q);
}

enum sink_status sink_file_flush(struct sink_file *s, char *err, size_t errlen)
{
	int rc = SINK_OK;

	s->nwritten = 0;
	for (size_t i = 0; i < SINK_CACHE; i++) {
		struct sink_entry *e = &s->cache[i];

		if (!e->path || e->q.len == 0)
			continue;
		if (rc != SINK_OK) {
			sink_file_queue_reset(e);
			continue;
		}
		rc = sink_entry_write(e, err, errlen);
		if (rc != SINK_OK) {
			/* opened afresh next time: its tail is checked again then */
			sink_file_entry_drop(e);
			continue;
		}
		sink_file_queue_reset(e);
		s->written[s->nwritten++] = (struct sink_file_ref){
			.fd = e->fd, .dev = e->dev, .ino = e->ino, .path = e->path,
		};
	}
	if (rc != SINK_OK)
		s->nwritten = 0;
	return rc;
}

void sink_file_discard(struct sink_file *s)
{
	s->nwritten = 0;
	for (size_t i = 0; i < SINK_CACHE; i++)
		sink_file_queue_reset(&s->cache[i]);
}

size_t sink_file_written(struct sink_file *s, const struct sink_file_ref **out)
{
	*out = s->written;
	return s->nwritten;
}

enum sink_status sink_file_sync(struct sink_file *s, char *err, size_t errlen)
{
	for (size_t i = 0; i < s->nwritten; i++)
		if (sink_file_sync_fd(s->written[i].fd, 1) != 0) {
			snprintf(err, errlen, "cannot sync %.200s: %s", s->written[i].path,
				 strerror(errno));
			return SINK_IO;
		}
	return SINK_OK;
}

enum sink_status sink_file_append(struct sink_file *s, const char *path, const char *line,
				  size_t len, char *err, size_t errlen)
{
	int rc = sink_file_add(s, path, line, len, err, errlen);

	if (rc != SINK_OK) {
		if (rc == SINK_IO)
			sink_file_discard(s);
		return rc;
	}
	rc = sink_file_flush(s, err, errlen);
	if (rc == SINK_OK && s->sync)
		rc = sink_file_sync(s, err, errlen);
	return rc;
}
