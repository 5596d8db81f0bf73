/*
 * e2e_privileges.c — the daemon started as root with run_as_user: it binds
 * as root, then every thread (workers, outbox writer, delivery, watchdog)
 * runs as that user, and what it creates in data_dir and output_dir
 * belongs to that user, so batches with write() and forward() are routed
 * and `egoi-router dlq` run as that user works on the same outbox.
 *
 * These scenarios need root and the unprivileged user `nobody` (group
 * `nogroup`); as another user they are skipped with a message. The test's
 * temp dirs are opened to others (0755) so that `nobody` can reach the
 * files the daemon reads after the drop and the CLI reads as that user.
 */
#include "e2e/e2e.h"

#include <dirent.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PRIV_USER "nobody"

static const char priv_lua[] =
	"function route(e, m)\n"
	"  write('events.txt', {line = m.index .. ' ' .. e.action})\n"
	"  if e.action == 'email_send' then forward('@RECV@/crm') end\n"
	"  if e.action == 'sms_send' then error('sms not handled yet') end\n"
	"end\n";

/* Skips the scenario unless it can run; fills *pw with the target user. */
static int priv_ready(struct e2e *t, struct passwd *pw)
{
	struct passwd *p;
	char parent[HARNESS_PATH];

	if (geteuid() != 0) {
		fprintf(stderr, "[e2e] skipped: run_as_user scenarios need root (euid %d)\n",
			(int)geteuid());
		return 0;
	}
	p = getpwnam(PRIV_USER);
	if (p == NULL || p->pw_uid == 0) {
		fprintf(stderr, "[e2e] skipped: no unprivileged user '%s'\n", PRIV_USER);
		return 0;
	}
	*pw = *p;
	/* The suite dir and this test's dir are 0700 (mkdtemp). */
	snprintf(parent, sizeof(parent), "%s", t->h.dir);
	assert_int_equal(chmod(dirname(parent), 0755), 0);
	assert_int_equal(chmod(t->h.dir, 0755), 0);
	return 1;
}

/* Makes the files the CLI reads as the target user readable to it. */
static void priv_open_files(struct e2e *t)
{
	assert_int_equal(chmod(t->h.conf, 0644), 0);
	assert_int_equal(chmod(t->h.rules, 0644), 0);
}

/* Asserts that path exists and is owned by uid. */
static void assert_owner_at(const char *path, uid_t uid, const char *file, int line)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		fprintf(stderr, "[e2e] %s: missing\n", path);
		_fail(file, line);
	}
	if (st.st_uid != uid)
		fprintf(stderr, "[e2e] %s: owner %d, want %d\n", path, (int)st.st_uid, (int)uid);
	_assert_int_equal(st.st_uid, uid, file, line);
}
#define assert_owner(path, uid) assert_owner_at((path), (uid), __FILE__, __LINE__)

/* The same for data_dir/name when it exists (SQLite's -wal and -shm). */
static void assert_owner_if_there(const char *dir, const char *name, uid_t uid)
{
	char path[HARNESS_PATH + 32];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (access(path, F_OK) == 0)
		assert_owner(path, uid);
}

/*
 * Every thread of the daemon: real, effective, saved and file-system uid
 * and gid all the target's, and no supplementary group but its own; the
 * daemon's own threads are named. Returns the number of threads seen.
 */
static int assert_threads_run_as(pid_t pid, const struct passwd *pw)
{
	static const char *const names[] = { "egoi-writer", "egoi-deliver", "egoi-watchdog" };
	int named[3] = { 0, 0, 0 };
	char dirpath[64], path[64 + 256 + 16], want_uid[64], want_gid[64], line[512];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(dirpath, sizeof(dirpath), "/proc/%d/task", (int)pid);
	snprintf(want_uid, sizeof(want_uid), "Uid:\t%d\t%d\t%d\t%d\n", (int)pw->pw_uid,
		 (int)pw->pw_uid, (int)pw->pw_uid, (int)pw->pw_uid);
	snprintf(want_gid, sizeof(want_gid), "Gid:\t%d\t%d\t%d\t%d\n", (int)pw->pw_gid,
		 (int)pw->pw_gid, (int)pw->pw_gid, (int)pw->pw_gid);
	d = opendir(dirpath);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		FILE *f;
		int uid_ok = 0, gid_ok = 0, groups_ok = 0;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/status", dirpath, de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue; /* a thread that just ended */
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "Uid:", 4) == 0)
				uid_ok = strcmp(line, want_uid) == 0;
			else if (strncmp(line, "Gid:", 4) == 0)
				gid_ok = strcmp(line, want_gid) == 0;
			else if (strncmp(line, "Groups:", 7) == 0)
				groups_ok = strspn(line + 7, " \t\n") == strlen(line + 7) ||
					    atoi(line + 7) == (int)pw->pw_gid;
			else if (strncmp(line, "Name:\t", 6) == 0)
				for (int i = 0; i < 3; i++)
					named[i] += strncmp(line + 6, names[i], strlen(names[i])) == 0 &&
						    line[6 + strlen(names[i])] == '\n';
		}
		fclose(f);
		if (!uid_ok || !gid_ok || !groups_ok)
			fprintf(stderr, "[e2e] thread %s: uid ok %d, gid ok %d, groups ok %d\n",
				de->d_name, uid_ok, gid_ok, groups_ok);
		assert_true(uid_ok && gid_ok && groups_ok);
		n++;
	}
	closedir(d);
	for (int i = 0; i < 3; i++) {
		if (named[i] != 1)
			fprintf(stderr, "[e2e] %d threads named %s, want 1\n", named[i], names[i]);
		assert_int_equal(named[i], 1);
	}
	return n;
}

/* Runs `egoi-router dlq ARGS... -c router.conf` as the target user. */
static int dlq_as(struct e2e *t, const struct passwd *pw, const char *const *args, char **out)
{
	const char *argv[20];
	char reuid[32], regid[32], *err = NULL;
	size_t n = 0;
	int rc;

	snprintf(reuid, sizeof(reuid), "--reuid=%d", (int)pw->pw_uid);
	snprintf(regid, sizeof(regid), "--regid=%d", (int)pw->pw_gid);
	argv[n++] = "/usr/bin/setpriv";
	argv[n++] = reuid;
	argv[n++] = regid;
	argv[n++] = "--clear-groups";
	argv[n++] = harness_bin();
	argv[n++] = "dlq";
	for (; *args && n < 16; args++)
		argv[n++] = *args;
	argv[n++] = "-c";
	argv[n++] = t->h.conf;
	argv[n] = NULL;
	*out = NULL;
	rc = harness_run(&t->h, argv, NULL, 20000, out, &err);
	if (rc != 0)
		fprintf(stderr, "[e2e] dlq %s as %s: exit %d, stdout: %s, stderr: %s\n", args[0],
			pw->pw_name, rc, *out ? *out : "", err ? err : "");
	free(err);
	return rc;
}

/* One batch (write for both events, a forward, a rule error) through a
 * daemon that dropped to pw; then the owners, the threads and the CLI. */
static void route_and_check(struct e2e *t, const struct passwd *pw)
{
	char path[HARNESS_PATH + 32], *out = NULL;
	size_t len;
	char *batch = e2e_fixture("batch-example.json", &len);

	struct harness_response resp = e2e_post_expect(t, batch, len, 200);
	e2e_assert_counts(&resp, 2, 0);
	harness_response_free(&resp);
	free(batch);

	snprintf(path, sizeof(path), "%s/events.txt", t->h.output_dir);
	char *text = harness_read_file(path, NULL);
	assert_non_null(text);
	/* the failing rule's own decisions are replaced by its error */
	assert_string_equal(text, "1 email_send\n");
	free(text);
	assert_int_equal(receiver_wait(t->r, 1, 10000), 0);
	assert_non_null(receiver_find(t->r, "/crm"));

	assert_owner(path, pw->pw_uid);
	assert_owner(t->h.output_dir, pw->pw_uid);
	assert_owner(t->h.data_dir, pw->pw_uid);
	assert_owner(t->h.db, pw->pw_uid);
	assert_owner_if_there(t->h.data_dir, "outbox.db-wal", pw->pw_uid);
	assert_owner_if_there(t->h.data_dir, "outbox.db-shm", pw->pw_uid);
	assert_owner_if_there(t->h.data_dir, "outbox.reserve", pw->pw_uid);
	/* main, writer, delivery, watchdog, civetweb's master and workers */
	assert_true(assert_threads_run_as(t->h.pid, pw) >= 6);

	priv_open_files(t);
	const char *list[] = { "list", NULL };
	assert_int_equal(dlq_as(t, pw, list, &out), 0);
	assert_non_null(out);
	assert_non_null(strstr(out, "sms not handled yet"));
	free(out);
	const char *purge[] = { "purge", "--all", NULL };
	assert_int_equal(dlq_as(t, pw, purge, &out), 0);
	assert_non_null(out);
	assert_string_equal(out, "{\"purged\":1}\n");
	free(out);
	assert_int_equal(harness_sql_long(&t->h, "SELECT count(*) FROM dead_letters"), 0);
}

/* Root with run_as_user = nobody on a fresh data_dir and output_dir: the
 * batch is routed (not "500 worker set-up failed"), files belong to nobody,
 * every thread runs as nobody, and `dlq` as nobody lists and purges. */
static void run_as_user_routes_write_and_forward(void **state)
{
	struct e2e *t = *state;
	struct passwd pw;

	if (!priv_ready(t, &pw)) {
		e2e_pass(t);
		skip();
	}
	e2e_boot(t, priv_lua, "run_as_user = " PRIV_USER "\n");
	route_and_check(t, &pw);
	e2e_stop_ok(t);
	e2e_pass(t);
}

/* A data_dir and output_dir left owned by root (a run without
 * run_as_user, or an older version): the next start with run_as_user
 * hands them and the outbox files to that user and routes as before. */
static void run_as_user_takes_over_root_owned_dirs(void **state)
{
	struct e2e *t = *state;
	struct passwd pw;
	char path[HARNESS_PATH + 32];

	if (!priv_ready(t, &pw)) {
		e2e_pass(t);
		skip();
	}
	e2e_boot(t, priv_lua, NULL);
	e2e_stop_ok(t);
	assert_owner(t->h.db, 0);
	snprintf(path, sizeof(path), "%s/old.txt", t->h.output_dir);
	assert_int_equal(harness_write_file(path, "x\n", 2), 0);

	snprintf(t->h.extra, sizeof(t->h.extra), "run_as_user = " PRIV_USER "\n");
	assert_int_equal(harness_start(&t->h), 0);
	route_and_check(t, &pw);
	/* Files under output_dir that the daemon did not create keep their owner. */
	assert_owner(path, 0);
	e2e_stop_ok(t);
	e2e_pass(t);
}

const struct CMUnitTest e2e_privileges_tests[] = {
	E2E_TEST(run_as_user_routes_write_and_forward),
	E2E_TEST(run_as_user_takes_over_root_owned_dirs),
};
const size_t e2e_privileges_count = sizeof(e2e_privileges_tests) / sizeof(e2e_privileges_tests[0]);
