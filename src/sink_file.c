/*
 * sink_file.c — appends lines to files under output_dir (see sink_file.h).
 *
 * Design:
 * - output_dir is opened once as a directory descriptor; every file is
 *   reached from it component by component with O_NOFOLLOW, so neither a
 *   symlinked directory nor a symlinked file below output_dir can lead a
 *   write outside it. Missing directories are created 0750, files 0640.
 * - The target is opened O_NONBLOCK (a FIFO without a reader must not hang
 *   the worker) and must be a regular file with a single link (a hard link
 *   to a file elsewhere is as much an escape as a symlink).
 * - A line and its '\n' go out in one writev(2) on an O_APPEND descriptor:
 *   the kernel appends it atomically with respect to other appenders, so
 *   concurrent threads and processes never interleave partial lines. A
 *   short write is reported, never completed blindly (the rest could land
 *   after another writer's line).
 * - Open descriptors are cached by path (SINK_CACHE entries, least recently
 *   used evicted), so a batch writing many lines to one file opens it once.
 *   A cached entry is revalidated with one fstatat of the path when it was
 *   last checked more than SINK_RECHECK_MS ago: when logrotate renamed or
 *   deleted the file, the inode no longer matches (or the path is gone) and
 *   the file is opened again. So a rotation is noticed within ~10 ms; lines
 *   appended in that window land in the renamed file (logrotate's usual
 *   delaycompress keeps them). A matching inode is the very file that was
 *   opened safely, so revalidating through the path cannot be used to escape.
 *   Why not check every line: on the measured VM a syscall costs ~0.5-1.3 us,
 *   so fstatat per line tripled the cost of an append (3.2 us vs ~1.0 us
 *   without it; test_many_appends_fast prints it).
 *
 * Threads: a struct sink_file belongs to one thread (the cache is unlocked).
 * Several sink_file objects (one per worker) may append to the same files.
 */
#include "sink_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SINK_PATH_MAX 1024
#define SINK_CACHE 16
#define SINK_RECHECK_MS 10

struct sink_entry {
	char *path;             /* NULL: slot free */
	size_t len;
	int fd;
	dev_t dev;
	ino_t ino;
	unsigned long used;     /* LRU clock value of the last use */
	long long checked_ms;   /* when the path last named this inode */
};

struct sink_file {
	int dirfd;
	unsigned long clock;
	struct sink_entry cache[SINK_CACHE];
};

/* A cheap clock (vDSO, a few ns): only bounds how stale a cached entry gets. */
static long long now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
		return 0;   /* cannot fail on Linux; 0 forces a recheck below */
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* mkdir -p with mode 0750; an existing directory is fine. */
static int mkdir_p(const char *dir, char *err, size_t errlen)
{
	char buf[4096];
	size_t len = strlen(dir);
	int rc = -1;

	if (len == 0 || len >= sizeof buf) {
		snprintf(err, errlen, "output_dir path is empty or too long");
		goto out;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(buf, 0750) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", buf, strerror(errno));
			goto out;
		}
		*p = saved;
		if (saved == '\0')
			break;
	}
	rc = 0;
out:
	return rc;
}

struct sink_file *sink_file_open(const char *output_dir, char *err, size_t errlen)
{
	struct sink_file *s = NULL;
	int fd = -1;

	if (!output_dir) {
		snprintf(err, errlen, "output_dir is not set");
		goto out;
	}
	if (mkdir_p(output_dir, err, errlen) != 0)
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
	fd = -1;
	for (size_t i = 0; i < SINK_CACHE; i++)
		s->cache[i].fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return s;
}

static void entry_drop(struct sink_entry *e)
{
	if (e->fd >= 0)
		close(e->fd);
	free(e->path);
	e->path = NULL;
	e->fd = -1;
}

void sink_file_close(struct sink_file *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < SINK_CACHE; i++)
		entry_drop(&s->cache[i]);
	if (s->dirfd >= 0)
		close(s->dirfd);
	free(s);
}

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

/* Why a component could not be opened without following: symlink or else. */
static int refuse_component(int dirfd, const char *comp, const char *path, char *err,
			    size_t errlen)
{
	struct stat st;

	if (fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
		snprintf(err, errlen, "path %.200s leaves output_dir through a symlink", path);
	else
		snprintf(err, errlen, "path %.200s: %.100s is not a directory", path, comp);
	return SINK_REFUSED;
}

/*
 * Opens output_dir/path for appending, walking it with O_NOFOLLOW. *fd_out
 * and *st_out are set on SINK_OK.
 */
static int open_target(struct sink_file *s, const char *path, int *fd_out, struct stat *st_out,
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
		int dfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (dfd < 0 && errno == ENOENT) {
			if (mkdirat(cur, comp, 0750) != 0 && errno != EEXIST) {
				snprintf(err, errlen, "cannot create directory for %.200s: %s", path,
					 strerror(errno));
				goto out;
			}
			dfd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		}
		if (dfd < 0) {
			if (errno == ELOOP || errno == ENOTDIR)
				rc = refuse_component(cur, comp, path, err, errlen);
			else
				snprintf(err, errlen, "cannot open directory for %.200s: %s", path,
					 strerror(errno));
			goto out;
		}
		if (cur != s->dirfd)
			close(cur);
		cur = dfd;
		comp = next;
	}
	fd = openat(cur, comp, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
		    O_CLOEXEC, 0640);
	if (fd < 0) {
		if (errno == ELOOP) {
			snprintf(err, errlen, "path %.200s leaves output_dir through a symlink", path);
			rc = SINK_REFUSED;
		} else if (errno == EISDIR || errno == ENXIO || errno == ENOTDIR) {
			snprintf(err, errlen, "path %.200s is not a regular file", path);
			rc = SINK_REFUSED;
		} else {
			snprintf(err, errlen, "cannot open %.200s: %s", path, strerror(errno));
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

/* Finds a cached descriptor still naming output_dir/path, or opens one. */
static int get_entry(struct sink_file *s, const char *path, struct sink_entry **out, char *err,
		     size_t errlen)
{
	size_t len = strlen(path);
	struct sink_entry *e, *victim = &s->cache[0];
	long long now = now_ms();
	struct stat st;
	int fd = -1, rc;
	char *copy;

	for (size_t i = 0; i < SINK_CACHE; i++) {
		e = &s->cache[i];
		if (!e->path) {
			if (victim->path)
				victim = e;
			continue;
		}
		if (e->len == len && memcmp(e->path, path, len) == 0) {
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
			entry_drop(e);
			victim = e;
			break;
		}
		if (victim->path && e->used < victim->used)
			victim = e;
	}
	rc = open_target(s, path, &fd, &st, err, errlen);
	if (rc != SINK_OK)
		return rc;
	copy = malloc(len + 1);
	if (!copy) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return SINK_IO;
	}
	memcpy(copy, path, len + 1);
	entry_drop(victim);
	victim->path = copy;
	victim->len = len;
	victim->fd = fd;
	victim->dev = st.st_dev;
	victim->ino = st.st_ino;
	victim->used = ++s->clock;
	victim->checked_ms = now;
	*out = victim;
	return SINK_OK;
}

int sink_file_append(struct sink_file *s, const char *path, const char *line, size_t len,
		     char *err, size_t errlen)
{
	struct sink_entry *e = NULL;
	struct iovec iov[2];
	ssize_t n;
	int rc;

	if (sink_file_check_path(path, err, errlen) != 0)
		return SINK_REFUSED;
	if (memchr(line, '\n', len)) {
		snprintf(err, errlen, "line for %.200s contains a newline", path);
		return SINK_REFUSED;
	}
	rc = get_entry(s, path, &e, err, errlen);
	if (rc != SINK_OK)
		return rc;
	iov[0].iov_base = (void *)line;
	iov[0].iov_len = len;
	iov[1].iov_base = (void *)"\n";
	iov[1].iov_len = 1;
	do
		n = writev(e->fd, iov, 2);
	while (n < 0 && errno == EINTR);   /* EINTR: nothing was written */
	if (n < 0 || (size_t)n != len + 1) {
		if (n < 0)
			snprintf(err, errlen, "cannot write %.200s: %s", path, strerror(errno));
		else
			snprintf(err, errlen, "short write to %.200s (%zd of %zu bytes)", path, n,
				 len + 1);
		entry_drop(e);
		return SINK_IO;
	}
	return SINK_OK;
}
