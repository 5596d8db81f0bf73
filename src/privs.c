/*
 * privs.c — run_as_user's preparation and check (see privs.h).
 *
 * Ownership goes to the user's primary group as well, so an operator may
 * give read access to the outbox or the written files through that group.
 * Modes are left as they are: 0750 for directories made here, SQLite's
 * 0644 (minus umask) for its files.
 */
#include "privs.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int privs_resolve(const char *name, struct privs_user *u, char *err, size_t errlen)
{
	struct passwd *pw;

	memset(u, 0, sizeof *u);
	if (!name)
		return 0;
	errno = 0;
	pw = getpwnam(name);
	if (!pw) {
		snprintf(err, errlen, "run_as_user %s: %s", name,
			 errno ? strerror(errno) : "no such user");
		return -1;
	}
	/* civetweb does nothing either when the process already is that user */
	if (pw->pw_uid == getuid() && pw->pw_uid == geteuid())
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errlen, "run_as_user %s: changing user needs root (running as "
				      "uid %d)", name, (int)geteuid());
		return -1;
	}
	u->drop = 1;
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	snprintf(u->name, sizeof u->name, "%s", name);
	return 0;
}

/* Gives the directory at path to u (following a symlink). */
static int privs_hand_dir(const struct privs_user *u, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "stat %s: %s", path, strerror(errno));
		goto out;
	}
	if ((st.st_uid != u->uid || st.st_gid != u->gid) && fchown(fd, u->uid, u->gid) != 0) {
		snprintf(err, errlen, "cannot give %s to %s: %s", path, u->name, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

/* util_mkdir_p's hook: a directory made on the way must be traversable by u. */
static int privs_hand_made(const char *dir, void *arg, char *err, size_t errlen)
{
	return privs_hand_dir(arg, dir, err, errlen);
}

int privs_make_dir(const struct privs_user *u, const char *path, char *err, size_t errlen)
{
	if (util_mkdir_p(path, 1, u->drop ? privs_hand_made : NULL, (void *)u, err, errlen) != 0)
		return -1;
	return u->drop ? privs_hand_dir(u, path, err, errlen) : 0;
}

int privs_hand_file(const struct privs_user *u, const char *dir, const char *name, char *err,
		    size_t errlen)
{
	char path[4096];
	struct stat st;

	if (!u->drop)
		return 0;
	if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
		snprintf(err, errlen, "path %s/%s is too long", dir, name);
		return -1;
	}
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "stat %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s is not a regular file", path);
		return -1;
	}
	if ((st.st_uid != u->uid || st.st_gid != u->gid) && lchown(path, u->uid, u->gid) != 0) {
		snprintf(err, errlen, "cannot give %s to %s: %s", path, u->name, strerror(errno));
		return -1;
	}
	return 0;
}

int privs_check_dropped(const struct privs_user *u, char *err, size_t errlen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[8];
	int n;

	if (!u->drop)
		return 0;
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) {
		snprintf(err, errlen, "getresuid: %s", strerror(errno));
		return -1;
	}
	if (ru != u->uid || eu != u->uid || su != u->uid || rg != u->gid || eg != u->gid ||
	    sg != u->gid) {
		snprintf(err, errlen, "run_as_user %s: still uid %d/%d/%d gid %d/%d/%d after the "
				      "drop", u->name, (int)ru, (int)eu, (int)su, (int)rg, (int)eg,
			 (int)sg);
		return -1;
	}
	n = getgroups((int)(sizeof groups / sizeof groups[0]), groups);
	if (n < 0 || n > 1 || (n == 1 && groups[0] != u->gid)) {
		snprintf(err, errlen, "run_as_user %s: supplementary groups left after the drop",
			 u->name);
		return -1;
	}
	return 0;
}
