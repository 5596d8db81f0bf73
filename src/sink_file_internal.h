/*
 * sink_file_internal.h — shared by the parts of the file sink, not a
 * public interface: sink_file.c (safe opening, descriptor cache, the
 * queue), sink_file_path.c (path policy) and sink_file_write.c (appending
 * a queue as whole lines under the file's lock).
 *
 * Threads: an entry belongs to the thread that owns its struct sink_file.
 */
#ifndef EGOI_SINK_FILE_INTERNAL_H
#define EGOI_SINK_FILE_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

#include "util_buf.h"

#define SINK_PATH_MAX 1024   /* longest write() path, in bytes */

/* One cached open file and the lines queued for it. */
struct sink_entry {
	char *path;             /* NULL: slot free */
	size_t len;
	int fd;                 /* O_RDWR | O_APPEND: the tail is read to check it */
	dev_t dev;
	ino_t ino;
	unsigned long used;     /* LRU clock value of the last use */
	long long checked_ms;   /* when the path last named this inode */
	off_t clean_end;        /* size at which we last left the file ending in '\n'; -1 unknown */
	int no_prealloc;        /* fallocate is not supported on this file system */
	struct util_buf q;      /* queued lines, each with its '\n' */
};

/*
 * Appends e->q.p[0..q.len) to e->fd as described in sink_file_write.c and
 * empties the queue. Returns SINK_OK, or SINK_IO with err set (then none
 * of the queued bytes are in the file, unless even cutting them off
 * failed, which is logged and repaired before the next append).
 */
enum sink_status sink_entry_write(struct sink_entry *e, char *err, size_t errlen);

/*
 * Sets err to "what path: strerror(errno)" for a failed mkdirat/openat of
 * path and says whose failure it is: SINK_REFUSED when errno is about the
 * path (ENAMETOOLONG, ENOENT, ENOTDIR, EISDIR, ELOOP, EINVAL, EACCES,
 * EPERM, ENXIO, EILSEQ: retrying would fail the same way, so the event is
 * dead-lettered), else SINK_IO (the storage: ENOSPC, EIO, EDQUOT, EROFS,
 * EMFILE, ENOMEM...; the batch fails and is retried).
 */
enum sink_status sink_path_failed(const char *what, const char *path, char *err, size_t errlen);

#endif
