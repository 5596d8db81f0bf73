/*
 * sink_file.h — appends whole lines to files under output_dir, safely.
 *
 * Paths are relative to output_dir; empty paths, absolute paths and any
 * ".." component are refused (sink_file_check_path, used when a rule calls
 * write()). Opening walks the path component by component from a directory
 * descriptor of output_dir with O_NOFOLLOW, so a symlink anywhere below
 * output_dir is refused too; missing directories are created (0750), files
 * are created 0640.
 *
 * A batch queues its lines (sink_file_add), then writes them with
 * sink_file_flush: one write(2) per file, under flock(LOCK_EX) on that
 * file. A line is either wholly in its file or not at all, whatever write(2)
 * does (short write, ENOSPC, EIO): a failed append is cut off again, and a
 * file found not ending in '\n' (a crash in the middle of an append) is
 * repaired before the next append. Concurrent appenders (other workers'
 * sinks, other processes that take the same lock) are ordered by the lock,
 * so none of them appends after another's partial line. See
 * sink_file_write.c for the details.
 *
 * With SINK_SYNC_BATCH the caller makes written lines durable with
 * sink_file_sync, or hands sink_file_written's descriptors to the group
 * committer (outbox_writer.h); a file's directories are fsync'ed whenever it
 * is opened, so a newly created file survives a power cut too.
 *
 * A struct sink_file belongs to one thread (it caches open descriptors and
 * queued lines).
 */
#ifndef EGOI_SINK_FILE_H
#define EGOI_SINK_FILE_H

#include <stddef.h>
#include <sys/types.h>

enum sink_status {
	SINK_OK = 0,
	SINK_IO = -1,       /* disk or system error: the batch must fail */
	SINK_REFUSED = -2,  /* path policy (symlink, not a regular file) or a name the file system
			     * refuses (too long, not permitted): the event is dead-lettered */
};

enum sink_sync {
	SINK_SYNC_NONE = 0,   /* lines are in the page cache when a call returns */
	SINK_SYNC_BATCH = 1,  /* directories are fsync'ed at open; see sink_file_sync */
};

struct sink_file;

/* A file the last sink_file_flush wrote to (borrowed from the sink). */
struct sink_file_ref {
	int fd;
	dev_t dev;
	ino_t ino;
	const char *path;   /* relative to output_dir */
};

/*
 * Opens output_dir (creating it if missing; with SINK_SYNC_BATCH the parent
 * of each directory it creates is fsync'ed). sync is an enum sink_sync.
 * NULL with err set on failure.
 */
struct sink_file *sink_file_open(const char *output_dir, int sync, char *err, size_t errlen);

/* Closes every cached descriptor and drops queued lines; s may be NULL. */
void sink_file_close(struct sink_file *s);

/* Lexical check of a write() path; 0 if acceptable, else -1 with err set. */
int sink_file_check_path(const char *path, char *err, size_t errlen);

/*
 * Queues line[0..len) plus '\n' for output_dir/path (copied: line is not
 * kept). line must not contain '\n'. The file is opened (or revalidated)
 * now, so a refusal belongs to this line: SINK_REFUSED (path policy, or a
 * path the file system refuses such as a component over NAME_MAX; the
 * line is not queued) or SINK_IO (the batch must fail; call
 * sink_file_discard). When more files are queued than the descriptor cache
 * holds, the least recently used one is written early (and, with
 * SINK_SYNC_BATCH, synced) to make room; its failure is SINK_IO here.
 */
enum sink_status sink_file_add(struct sink_file *s, const char *path, const char *line,
			       size_t len, char *err, size_t errlen);

/*
 * Writes every queued line, one write per file, whole lines only (see the
 * top of this file). Returns SINK_OK, or SINK_IO with err naming the file:
 * that file then holds none of the lines queued for it, files written
 * before it keep theirs, the others are not written. The queue is empty
 * afterwards either way.
 */
enum sink_status sink_file_flush(struct sink_file *s, char *err, size_t errlen);

/* Drops every queued line without writing it. */
void sink_file_discard(struct sink_file *s);

/*
 * The files the last successful sink_file_flush wrote to, as *out (borrowed:
 * valid until the next call that takes s); returns how many.
 */
size_t sink_file_written(struct sink_file *s, const struct sink_file_ref **out);

/*
 * fdatasync()s every file the last flush wrote to (for callers without the
 * group committer). SINK_OK, or SINK_IO with err naming the file.
 */
enum sink_status sink_file_sync(struct sink_file *s, char *err, size_t errlen);

/*
 * One line at once: sink_file_add, then sink_file_flush (and with
 * SINK_SYNC_BATCH sink_file_sync). Returns a sink_status; err set when not
 * SINK_OK. Anything queued before is written too.
 */
enum sink_status sink_file_append(struct sink_file *s, const char *path, const char *line,
				  size_t len, char *err, size_t errlen);

#endif
