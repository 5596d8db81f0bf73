/*
 * log_out.c — where log lines go (see log.h): stderr, or log_file.
 *
 * log_file is opened O_APPEND, so lines from every thread (and from a
 * second process on the same file) land whole at its end. The descriptor
 * in use is read under a read lock for each write(2); log_reopen takes the
 * write lock only to swap it, so no line is ever written to a descriptor
 * already closed (its number could by then be a client's socket).
 *
 * journald: systemd sets JOURNAL_STREAM=DEV:INODE for the stdout/stderr
 * stream it connects to the journal. When stderr is that stream (a
 * redirected stderr is not), each line starts with "<N>", N the syslog
 * priority, which journald strips and keeps as the entry's PRIORITY.
 * Lines to log_file never carry it.
 *
 * Threads: log_out_write from any thread; the rest from the main thread.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_rwlock_t log_out_lock = PTHREAD_RWLOCK_INITIALIZER;
static int log_out_fd = -1;            /* -1: stderr */
static char log_out_path[PATH_MAX];    /* log_file, "" when none */
static atomic_int log_out_journal;     /* stderr is the journal's stream */

void log_out_setup(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int yes = 0;

	if (js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0)
		yes = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
	atomic_store_explicit(&log_out_journal, yes, memory_order_relaxed);
}

void log_out_write(enum log_level lvl, const char *line, size_t len)
{
	char buf[4200];
	int fd;

	pthread_rwlock_rdlock(&log_out_lock);
	fd = log_out_fd;
	if (fd < 0 && atomic_load_explicit(&log_out_journal, memory_order_relaxed) &&
	    len + 4 <= sizeof buf) {
		int n = snprintf(buf, sizeof buf, "<%d>", log_priority(lvl));

		memcpy(buf + n, line, len);
		line = buf;
		len += (size_t)n;
	}
	/* A failed log write has nowhere to be reported. */
	if (write(fd < 0 ? STDERR_FILENO : fd, line, len) < 0)
		errno = 0;
	pthread_rwlock_unlock(&log_out_lock);
}

/* Opens path for appending: a regular file, never through a symlink (the
 * directory may belong to run_as_user, and this may run as root). */
static int log_out_open(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
		      0640);

	if (fd < 0) {
		snprintf(err, errlen, "log_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "log_file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Swaps the descriptor in use; the old one is closed after no write uses it. */
static void log_out_swap(int fd)
{
	int old;

	pthread_rwlock_wrlock(&log_out_lock);
	old = log_out_fd;
	log_out_fd = fd;
	pthread_rwlock_unlock(&log_out_lock);
	if (old >= 0)
		close(old);
}

int log_open_file(const char *path, int chown_it, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	int fd;

	if (strlen(path) >= sizeof log_out_path) {
		snprintf(err, errlen, "log_file: path too long");
		return -1;
	}
	fd = log_out_open(path, err, errlen);
	if (fd < 0)
		return -1;
	if (chown_it && fchown(fd, uid, gid) != 0) {
		snprintf(err, errlen, "log_file %s: cannot give it to the run_as_user: %s", path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	snprintf(log_out_path, sizeof log_out_path, "%s", path);
	log_out_swap(fd);
	return 0;
}

int log_reopen(void)
{
	char err[PATH_MAX + 128];
	int fd;

	if (!log_out_path[0])
		return 0;
	fd = log_out_open(log_out_path, err, sizeof err);
	if (fd < 0) {
		log_msg(LOG_ERROR, NULL, "SIGUSR1: %s; logging goes on to the file open so far",
			err);
		return -1;
	}
	log_out_swap(fd);
	log_msg(LOG_INFO, NULL, "SIGUSR1: log file %s reopened", log_out_path);
	return 0;
}

void log_close_file(void)
{
	log_out_path[0] = '\0';
	log_out_swap(-1);
}
