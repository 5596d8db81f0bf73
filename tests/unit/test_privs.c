/*
 * test_privs.c — run_as_user's preparation: directories made on the way
 * and the leaf handed to the user, files handed over without following a
 * symlink, an unknown user refused, the drop check. Handing over needs
 * root and the user `nobody`; those tests are skipped with a message
 * otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "privs.h"

struct fixture {
	char dir[64];
	struct privs_user user;   /* nobody, when running as root */
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	char err[256];

	assert_non_null(fx);
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test-privs-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	if (geteuid() == 0 && getpwnam("nobody"))
		assert_int_equal(privs_resolve("nobody", &fx->user, err, sizeof err), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	tu_rmtree(fx->dir);
	free(fx);
	return 0;
}

/* 1 when the handing-over tests can run; else prints why not. */
static int can_hand_over(const struct fixture *fx)
{
	if (!fx->user.drop)
		fprintf(stderr, "[test_privs] skipped: needs root and the user nobody\n");
	return fx->user.drop;
}

static uid_t owner(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_uid;
}

static void unknown_user_is_refused(void **state)
{
	struct privs_user u;
	char err[256] = "";

	(void)state;
	assert_int_equal(privs_resolve("no-such-user-egoi", &u, err, sizeof err), -1);
	assert_non_null(strstr(err, "no-such-user-egoi"));
	assert_int_equal(privs_resolve(NULL, &u, err, sizeof err), 0);
	assert_int_equal(u.drop, 0);
}

static void own_user_needs_no_drop(void **state)
{
	struct passwd *pw = getpwuid(geteuid());
	struct privs_user u;
	char err[256];

	(void)state;
	assert_non_null(pw);
	assert_int_equal(privs_resolve(pw->pw_name, &u, err, sizeof err), 0);
	assert_int_equal(u.drop, 0);
	/* nothing to check either */
	assert_int_equal(privs_check_dropped(&u, err, sizeof err), 0);
}

/* Without a user: mkdir -p only, an existing directory is fine. */
static void make_dir_without_user(void **state)
{
	struct fixture *fx = *state;
	struct privs_user none = { 0 };
	char path[128], err[256];
	struct stat st;

	snprintf(path, sizeof path, "%s/a/b/c", fx->dir);
	assert_int_equal(privs_make_dir(&none, path, err, sizeof err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0027, 0);  /* 0750 less the umask */
	assert_int_equal(privs_make_dir(&none, path, err, sizeof err), 0);
}

/* Every directory made on the way is the user's (or it could not reach the
 * leaf through a 0750 root directory); one that existed keeps its owner. */
static void make_dir_hands_made_dirs_to_user(void **state)
{
	struct fixture *fx = *state;
	char top[128], mid[128], leaf[128], err[256];

	if (!can_hand_over(fx))
		skip();
	snprintf(top, sizeof top, "%s/top", fx->dir);
	snprintf(mid, sizeof mid, "%s/top/mid", fx->dir);
	snprintf(leaf, sizeof leaf, "%s/top/mid/leaf", fx->dir);
	assert_int_equal(mkdir(top, 0755), 0);
	assert_int_equal(privs_make_dir(&fx->user, leaf, err, sizeof err), 0);
	assert_int_equal(owner(top), 0);
	assert_int_equal(owner(mid), fx->user.uid);
	assert_int_equal(owner(leaf), fx->user.uid);
	assert_int_equal(owner(fx->dir), 0);
}

/* A leaf that exists and is root's (an earlier run without run_as_user). */
static void make_dir_takes_over_existing_leaf(void **state)
{
	struct fixture *fx = *state;
	char leaf[128], err[256];

	if (!can_hand_over(fx))
		skip();
	snprintf(leaf, sizeof leaf, "%s/data", fx->dir);
	assert_int_equal(mkdir(leaf, 0750), 0);
	assert_int_equal(owner(leaf), 0);
	assert_int_equal(privs_make_dir(&fx->user, leaf, err, sizeof err), 0);
	assert_int_equal(owner(leaf), fx->user.uid);
}

static void hand_file_missing_regular_and_symlink(void **state)
{
	struct fixture *fx = *state;
	char file[128], link[128], target[128], err[256] = "";

	if (!can_hand_over(fx))
		skip();
	assert_int_equal(privs_hand_file(&fx->user, fx->dir, "absent", err, sizeof err), 0);
	snprintf(file, sizeof file, "%s/outbox.db", fx->dir);
	fclose(fopen(file, "w"));
	assert_int_equal(privs_hand_file(&fx->user, fx->dir, "outbox.db", err, sizeof err), 0);
	assert_int_equal(owner(file), fx->user.uid);
	/* a symlink planted in data_dir must not give its target away */
	snprintf(target, sizeof target, "%s/secret", fx->dir);
	snprintf(link, sizeof link, "%s/outbox.db-wal", fx->dir);
	fclose(fopen(target, "w"));
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(privs_hand_file(&fx->user, fx->dir, "outbox.db-wal", err, sizeof err),
			 -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(owner(target), 0);
}

/* Still root: the check says so (it runs after civetweb's drop). */
static void check_dropped_refuses_root(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "";

	if (!can_hand_over(fx))
		skip();
	assert_int_equal(privs_check_dropped(&fx->user, err, sizeof err), -1);
	assert_non_null(strstr(err, "still uid 0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(unknown_user_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(own_user_needs_no_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(make_dir_without_user, setup, teardown),
		cmocka_unit_test_setup_teardown(make_dir_hands_made_dirs_to_user, setup, teardown),
		cmocka_unit_test_setup_teardown(make_dir_takes_over_existing_leaf, setup, teardown),
		cmocka_unit_test_setup_teardown(hand_file_missing_regular_and_symlink, setup,
						teardown),
		cmocka_unit_test_setup_teardown(check_dropped_refuses_root, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
