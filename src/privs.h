/*
 * privs.h — run_as_user: what the daemon, started as root, prepares for the
 * user it drops to, and the check that the drop took.
 *
 * Who drops: civetweb, inside mg_start, after it has bound the listening
 * ports and before it starts its own threads (setgid, then clearing the
 * supplementary groups, then setuid: as root that sets the real,
 * effective and saved IDs, so nothing can be taken back). glibc applies
 * setuid and setgid to every thread of the process, so the outbox writer,
 * delivery and watchdog threads started before it run as the user from
 * then on too; privs_check_dropped proves it for the calling thread and
 * the test suite reads every thread's status.
 *
 * What is handed over before the drop: data_dir and output_dir (and every
 * directory created on the way to them) and the files the daemon keeps in
 * data_dir, which start-up may have just created as root. Files below
 * output_dir are not touched: the daemon creates its own after the drop.
 *
 * Threads: main thread, at start-up only.
 */
#ifndef EGOI_PRIVS_H
#define EGOI_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

struct privs_user {
	int drop;          /* 1: root now, the user later; 0: nothing to hand over */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/*
 * Looks run_as_user (name, may be NULL) up. u->drop is 0 when name is NULL
 * or names the user already running. -1 with err when the user does not
 * exist, or when changing to it needs root and the process is not root.
 */
int privs_resolve(const char *name, struct privs_user *u, char *err, size_t errlen);

/*
 * mkdir -p path, mode 0750, fsync'ing the parent of each directory made so
 * the new entries are durable. With u->drop, every directory made and path
 * itself (existing or not; a symlink is followed, it is the operator's) are
 * given to u. 0, or -1 with err.
 */
int privs_make_dir(const struct privs_user *u, const char *path, char *err, size_t errlen);

/*
 * With u->drop, gives dir/name to u when it exists; a missing file is fine,
 * anything but a regular file is an error (never followed: lchown). No
 * descriptor is opened, so SQLite's locks on the file are left alone.
 */
int privs_hand_file(const struct privs_user *u, const char *dir, const char *name, char *err,
		    size_t errlen);

/*
 * After the drop: real, effective and saved user and group IDs are u's and
 * no supplementary group is left but u's own. -1 with err otherwise (the
 * daemon must not serve: it could still regain root).
 */
int privs_check_dropped(const struct privs_user *u, char *err, size_t errlen);

#endif
