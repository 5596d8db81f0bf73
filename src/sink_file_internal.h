/*
 * sink_file_internal.h — shared by the two parts of the file sink, not a
 * public interface: sink_file.c (path policy, safe opening, descriptor
 * cache, the queue) and sink_file_write.c (appending a queue as whole lines
 * under the file's lock).
 *
 * Threads: an entry belongs to the thread that owns its struct sink_file.
 */
#ifndef EGOI_SINK_FILE_INTERNAL_H
#define EGOI_SINK_FILE_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

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
	char *q;                /* queued lines, each with its '\n' */
	size_t qlen, qcap;
};

/*
 * Appends e->q[0..qlen) to e->fd as described in sink_file_write.c and
 * empties the queue. Returns SINK_OK, or SINK_IO with err set (then none
 * of the queued bytes are in the file, unless even cutting them off
 * failed, which is logged and repaired before the next append).
 */
int sink_entry_write(struct sink_entry *e, char *err, size_t errlen);

#endif
