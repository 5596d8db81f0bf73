/*
 * sink_file.h — appends lines to files under output_dir, safely.
 *
 * Paths are relative to output_dir; empty paths, absolute paths and any
 * ".." component are refused (sink_file_check_path, used when a rule calls
 * write()). Opening walks the path component by component from a directory
 * descriptor of output_dir with O_NOFOLLOW, so a symlink anywhere below
 * output_dir is refused too; missing directories are created (0750), files
 * are created 0640. Each line is written with one write(2) on an O_APPEND
 * descriptor, so concurrent writers (threads or processes) never interleave
 * partial lines.
 *
 * A struct sink_file belongs to one thread (it caches open descriptors).
 */
#ifndef EGOI_SINK_FILE_H
#define EGOI_SINK_FILE_H

#include <stddef.h>

enum sink_status {
	SINK_OK = 0,
	SINK_IO = -1,       /* disk or system error: the batch must fail */
	SINK_REFUSED = -2,  /* path policy (symlink, not a regular file): the event is dead-lettered */
};

struct sink_file;

/* Opens output_dir (creating it if missing). NULL with err set on failure. */
struct sink_file *sink_file_open(const char *output_dir, char *err, size_t errlen);

/* Closes every cached descriptor; s may be NULL. */
void sink_file_close(struct sink_file *s);

/* Lexical check of a write() path; 0 if acceptable, else -1 with err set. */
int sink_file_check_path(const char *path, char *err, size_t errlen);

/*
 * Appends line[0..len) plus '\n' to output_dir/path. line must not contain
 * '\n'. Returns a sink_status; err set when not SINK_OK.
 */
int sink_file_append(struct sink_file *s, const char *path, const char *line, size_t len,
		     char *err, size_t errlen);

#endif
