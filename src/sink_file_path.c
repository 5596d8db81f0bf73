/*
 * sink_file_path.c — the file sink's path policy (see sink_file.h): the
 * lexical check of a write() path, and which errors of opening a path
 * belong to the path (the event is dead-lettered) rather than to the
 * storage (the batch fails).
 *
 * Threads: pure functions, any thread.
 */
#include "sink_file.h"
#include "sink_file_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int sink_file_check_path(const char *path, char *err, size_t errlen)
{
	size_t len, comps = 0;
	const char *p;

	if (!path || !*path) {
		snprintf(err, errlen, "write path is empty");
		return -1;
	}
	len = strlen(path);
	if (len > SINK_PATH_MAX) {
		snprintf(err, errlen, "write path is longer than %d bytes", SINK_PATH_MAX);
		return -1;
	}
	if (path[0] == '/') {
		snprintf(err, errlen, "write path %.200s is absolute", path);
		return -1;
	}
	if (strpbrk(path, "\n\r")) {
		snprintf(err, errlen, "write path contains a line break");
		return -1;
	}
	if (path[len - 1] == '/') {
		snprintf(err, errlen, "write path %.200s names a directory", path);
		return -1;
	}
	for (p = path; *p; ) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.') {
			snprintf(err, errlen, "write path %.200s contains ..", path);
			return -1;
		}
		if (n > 0 && !(n == 1 && p[0] == '.'))
			comps++;
		p += n;
		if (*p == '/')
			p++;
	}
	if (comps == 0) {
		snprintf(err, errlen, "write path %.200s names no file", path);
		return -1;
	}
	return 0;
}

/*
 * Whether an errno from mkdirat/openat is about the path (a name the file
 * system refuses: too long, not valid there, not permitted) rather than the
 * storage (ENOSPC, EIO, EDQUOT, EROFS, EMFILE, ENOMEM...). A path error
 * belongs to its event, which is dead-lettered; only a storage error fails
 * the batch, since retrying the batch would fail on that path forever.
 */
static int sink_file_path_errno(int e)
{
	return e == ENAMETOOLONG || e == ENOENT || e == ENOTDIR || e == EISDIR || e == ELOOP ||
	       e == EINVAL || e == EACCES || e == EPERM || e == ENXIO || e == EILSEQ;
}

enum sink_status sink_path_failed(const char *what, const char *path, char *err, size_t errlen)
{
	int e = errno;

	snprintf(err, errlen, "%s %.200s: %s", what, path, strerror(e));
	return sink_file_path_errno(e) ? SINK_REFUSED : SINK_IO;
}
