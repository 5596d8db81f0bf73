/*
 * test_outbox_space.c — the reserve and the full state of data_dir, on a
 * real, really full file system: a 4 MB tmpfs mounted by the test (root
 * only; skipped with a message otherwise), filled with a filler file.
 * Also: a write of the outbox that fails with SQLITE_FULL enters the full
 * state, and delivery's release of space gives pages back to the disk.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "outbox.h"
#include "outbox_deliver.h"
#include "outbox_space.h"

#define RESERVE (512 * 1024)

struct fixture {
	char dir[64];
	char filler[128];
	int mounted;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof fx->dir, "/tmp/test_space.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->filler, sizeof fx->filler, "%s/filler", fx->dir);
	if (geteuid() == 0 && mount("tmpfs", fx->dir, "tmpfs", 0, "size=4m") == 0)
		fx->mounted = 1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	outbox_space_stop();
	if (fx->mounted)
		umount2(fx->dir, MNT_DETACH);
	tu_rmtree(fx->dir);
	free(fx);
	return 0;
}

static void need_tmpfs(struct fixture *fx)
{
	if (!fx->mounted) {
		fprintf(stderr, "[ SKIP ] needs root to mount a tmpfs (running as uid %d)\n",
			(int)geteuid());
		skip();
	}
}

/* Appends to the filler until the file system is full. */
static void fill(struct fixture *fx)
{
	static char block[64 * 1024];
	int fd = open(fx->filler, O_WRONLY | O_CREAT | O_APPEND, 0600);

	assert_true(fd >= 0);
	while (write(fd, block, sizeof block) > 0)
		;
	while (write(fd, block, 512) > 0)
		;
	assert_int_equal(errno, ENOSPC);
	close(fd);
}

static long long avail(const char *dir)
{
	struct statvfs sv;

	assert_int_equal(statvfs(dir, &sv), 0);
	return (long long)sv.f_bavail * (long long)sv.f_frsize;
}

static int reserve_size(struct fixture *fx)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof path, "%s/outbox.reserve", fx->dir);
	if (stat(path, &st) != 0)
		return -1;
	return (int)st.st_size;
}

static void nap_check_interval(void)
{
	const struct timespec ts = { .tv_sec = 0, .tv_nsec = 250 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static void test_full_disk_releases_reserve_and_recovers(void **state)
{
	struct fixture *fx = *state;
	char err[256], why[128];

	need_tmpfs(fx);
	assert_int_equal(outbox_space_start(fx->dir, RESERVE, err, sizeof err), 0);
	assert_int_equal(reserve_size(fx), RESERVE);
	assert_int_equal(outbox_space_intake_ok(why, sizeof why), 1);

	fill(fx);
	nap_check_interval();
	/* Full: the reserve is given back (its space is free now) and intake stops. */
	assert_int_equal(outbox_space_intake_ok(why, sizeof why), 0);
	assert_non_null(strstr(why, "full"));
	assert_int_equal(outbox_space_full(), 1);
	assert_int_equal(reserve_size(fx), -1);
	assert_true(avail(fx->dir) >= RESERVE - 64 * 1024);

	/* Still full while less than twice the reserve is free. */
	nap_check_interval();
	assert_int_equal(outbox_space_intake_ok(why, sizeof why), 0);

	/* Space comes back: reserve allocated again, intake resumes. */
	assert_int_equal(unlink(fx->filler), 0);
	nap_check_interval();
	assert_int_equal(outbox_space_intake_ok(why, sizeof why), 1);
	assert_int_equal(outbox_space_full(), 0);
	assert_int_equal(reserve_size(fx), RESERVE);
}

static void test_start_on_a_full_disk_starts_full(void **state)
{
	struct fixture *fx = *state;
	char err[256], why[128];

	need_tmpfs(fx);
	fill(fx);
	assert_int_equal(outbox_space_start(fx->dir, RESERVE, err, sizeof err), 0);
	assert_int_equal(outbox_space_full(), 1);
	assert_int_equal(outbox_space_intake_ok(why, sizeof why), 0);
}

/*
 * The database itself hitting SQLITE_FULL enters the full state (whoever
 * saw it), and outbox_release_space returns the pages of deleted entries
 * to the file system.
 */
static void test_sqlite_full_enters_full_state_and_space_comes_back(void **state)
{
	struct fixture *fx = *state;
	static char body[16 * 1024];
	struct outbox_forward f = { .url = "https://a/", .method = "POST",
				    .body = body, .body_len = sizeof body };
	struct outbox_delivery *got = NULL;
	char err[256];
	struct outbox *ob;
	long long before, after;
	int n, added = 0;

	need_tmpfs(fx);
	ob = outbox_open(fx->dir, err, sizeof err);
	assert_non_null(ob);
	assert_int_equal(outbox_space_start(fx->dir, 0, err, sizeof err), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(outbox_begin(ob), 0);
		assert_int_equal(outbox_add_forward(ob, &f, NULL), 0);
		assert_int_equal(outbox_commit(ob), 0);
		added++;
	}
	fill(fx);
	assert_int_equal(outbox_space_full(), 0);
	/* Writes fail now; the failure is seen as a full disk. */
	for (int i = 0; i < 20 && !outbox_space_full(); i++) {
		if (outbox_begin(ob) == 0 && outbox_add_forward(ob, &f, NULL) == 0 &&
		    outbox_commit(ob) == 0)
			added++;
		else
			outbox_rollback(ob);
	}
	assert_int_equal(outbox_space_full(), 1);

	/* Delivery deletes everything; then the freed pages leave the file. */
	assert_int_equal(unlink(fx->filler), 0);
	n = outbox_claim_due(ob, "https://a:443", 1e12, 1000, &got);
	assert_int_equal(n, added);
	assert_int_equal(outbox_begin(ob), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(outbox_complete(ob, got[i].id), 0);
	assert_int_equal(outbox_commit(ob), 0);
	outbox_deliveries_free(got, (size_t)n);
	before = avail(fx->dir);
	/* a few pages a call, as the delivery thread does once a second */
	for (int i = 0; i < 40; i++)
		if (outbox_release_space(ob) != 0)
			fail_msg("release space (call %d, %lld free): %s", i, avail(fx->dir), outbox_error(ob));
	after = avail(fx->dir);
	if (after <= before + (long long)sizeof body * 10)
		fail_msg("before %lld after %lld", before, after);
	outbox_close(ob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full_disk_releases_reserve_and_recovers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_start_on_a_full_disk_starts_full, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sqlite_full_enters_full_state_and_space_comes_back,
						setup, teardown),
	};

	log_setup(LOG_ERROR, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
