/*
 * cli_check_dirs.c — data_dir and output_dir as the user the daemon will
 * run as (cli_check_internal.h).
 *
 * What `run` does with them decides what is checked. Without a drop, the
 * daemon creates missing directories itself (mkdir -p) and writes into
 * them: an existing directory must take a new file (one is created and
 * removed again), a missing one needs its nearest existing parent to be
 * writable. With run_as_user (started as root), root creates what is
 * missing and hands the directory itself to the user (privs_make_dir,
 * keeping an existing directory's mode), so the user needs to reach it
 * (search permission on every existing parent) and, by the owner bits of
 * its mode, to write into it. The child drops to the user the way
 * civetweb does (supplementary groups cleared, setgid, setuid), so the
 * kernel answers each question as it will answer the daemon.
 */
#include "cli_check_internal.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The nearest existing ancestor of path into parent (path itself excluded). */
static void cli_check_parent(const char *path, char *parent, size_t len)
{
	struct stat st;
	char *slash;

	snprintf(parent, len, "%s", path);
	for (;;) {
		while ((slash = strrchr(parent, '/')) && slash[1] == '\0' && slash != parent)
			*slash = '\0';   /* trailing slashes */
		slash = strrchr(parent, '/');
		if (!slash) {
			snprintf(parent, len, ".");
			return;
		}
		if (slash == parent) {
			parent[1] = '\0';
			return;
		}
		*slash = '\0';
		if (stat(parent, &st) == 0 || errno != ENOENT)
			return;
	}
}

/* A file can be created in the existing directory dir: 0, or -1 with errno. */
static int cli_check_write_in(const char *dir)
{
	char tmp[PATH_MAX];
	int fd;

	if (snprintf(tmp, sizeof tmp, "%s/.egoi-router-check.XXXXXX", dir) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	close(fd);
	unlink(tmp);
	return 0;
}

/* One directory, as the (already dropped) child. 0 ok, -1 failed. */
static int cli_check_dir(const char *key, const char *path, const struct privs_user *u)
{
	const char *who = u->drop ? u->name : "this user";
	char parent[PATH_MAX];
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			cli_check_line(0, key, "%s: not a directory", path);
			return -1;
		}
		if (u->drop) {
			/* handed to the user at start-up: the owner bits will be theirs */
			if ((st.st_mode & (S_IWUSR | S_IXUSR)) != (S_IWUSR | S_IXUSR)) {
				cli_check_line(0, key, "%s: mode %03o gives its owner (%s at start-up) "
					       "no write access", path, (unsigned)(st.st_mode & 0777),
					       who);
				return -1;
			}
			cli_check_line(1, key, "%s (given to %s at start-up)", path, who);
			return 0;
		}
		if (cli_check_write_in(path) < 0) {
			cli_check_line(0, key, "%s: %s (as %s)", path, strerror(errno), who);
			return -1;
		}
		cli_check_line(1, key, "%s (writable by %s)", path, who);
		return 0;
	}
	if (errno != ENOENT) {
		cli_check_line(0, key, "%s: %s (as %s)", path, strerror(errno), who);
		return -1;
	}
	cli_check_parent(path, parent, sizeof parent);
	if (stat(parent, &st) != 0) {
		cli_check_line(0, key, "%s: %s: %s (as %s)", path, parent, strerror(errno), who);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		cli_check_line(0, key, "%s: %s is not a directory", path, parent);
		return -1;
	}
	/* root creates it for the user; else the user must be able to */
	if (access(parent, u->drop ? X_OK : W_OK | X_OK) != 0) {
		cli_check_line(0, key, "%s: cannot be created in %s: %s (as %s)", path, parent,
			       strerror(errno), who);
		return -1;
	}
	cli_check_line(1, key, "%s (created at start-up in %s%s%s)", path, parent,
		       u->drop ? ", given to " : "", u->drop ? who : "");
	return 0;
}

/* The child: drop, check both, exit 0 or 1. */
static void cli_check_child(const struct config *cfg, const struct privs_user *u)
{
	int failed = 0;

	if (u->drop && (setgroups(0, NULL) != 0 || setgid(u->gid) != 0 || setuid(u->uid) != 0)) {
		cli_check_line(0, "run_as_user", "%s: cannot change to it: %s", u->name,
			       strerror(errno));
		failed = 1;
	} else {
		failed |= cli_check_dir("data_dir", cfg->data_dir, u) < 0;
		failed |= cli_check_dir("output_dir", cfg->output_dir, u) < 0;
	}
	fflush(stdout);
	_exit(failed);
}

int cli_check_dirs(const struct config *cfg, const struct privs_user *u)
{
	pid_t pid;
	int status;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "egoi-router: check: fork: %s\n", strerror(errno));
		return -2;
	}
	if (pid == 0)
		cli_check_child(cfg, u);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "egoi-router: check: waitpid: %s\n", strerror(errno));
			return -2;
		}
	if (!WIFEXITED(status)) {
		fprintf(stderr, "egoi-router: check: the directory check died (status %d)\n", status);
		return -2;
	}
	return WEXITSTATUS(status) == 0 ? 0 : -1;
}
