/*
 * test_sink_file.c — sink_file.c against a real directory tree in mkdtemp():
 * line format, path policy, symlink/FIFO/directory refusals, log rotation,
 * the descriptor cache, and concurrent appenders.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "unit/test_util.h"

#include "sink_file.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	char root[64];      /* mkdtemp */
	char out[128];      /* root/out = output_dir */
	char outside[128];  /* root/outside: must never be written */
	struct sink_file *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char err[256];

	assert_non_null(f);
	strcpy(f->root, "/tmp/test_sink_file.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->out, sizeof f->out, "%s/out/nested", f->root);
	snprintf(f->outside, sizeof f->outside, "%s/outside", f->root);
	assert_int_equal(mkdir(f->outside, 0700), 0);
	f->s = sink_file_open(f->out, err, sizeof err);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sink_file_close(f->s);
	tu_rmtree(f->root);
	free(f);
	return 0;
}

/* Reads a whole file into a NUL-terminated heap buffer; NULL if missing. */
static void path_in(char *buf, size_t size, const char *dir, const char *rel)
{
	snprintf(buf, size, "%s/%s", dir, rel);
}

/* Lets the sink's cached entries become due for revalidation (10 ms). */
static void wait_recheck(void)
{
	struct timespec ts = { 0, 30 * 1000 * 1000 };

	assert_int_equal(nanosleep(&ts, NULL), 0);
}

static int append(struct fixture *f, const char *path, const char *line, char *err, size_t n)
{
	return sink_file_append(f->s, path, line, strlen(line), err, n);
}

static void test_append_creates_dirs_and_lines(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256];
	struct stat st;
	char *got;

	assert_int_equal(append(f, "a/b/c.log", "{\"x\":1}", err, sizeof err), SINK_OK);
	assert_int_equal(append(f, "a/b/c.log", "second line", err, sizeof err), SINK_OK);
	assert_int_equal(append(f, "a/b/c.log", "", err, sizeof err), SINK_OK);
	path_in(p, sizeof p, f->out, "a/b/c.log");
	got = tu_read_file(p, NULL);
	assert_non_null(got);
	assert_string_equal(got, "{\"x\":1}\nsecond line\n\n");
	free(got);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	path_in(p, sizeof p, f->out, "a/b");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);

	/* "." components and doubled slashes name the same file */
	assert_int_equal(append(f, "./a//b/./c.log", "third", err, sizeof err), SINK_OK);
	path_in(p, sizeof p, f->out, "a/b/c.log");
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "{\"x\":1}\nsecond line\n\nthird\n");
	free(got);
}

static void test_check_path(void **state)
{
	static const char *bad[] = {
		"", "../x", "/etc/x", "a/../../x", "a/..", "..", "x\ny", "x\r", "dir/", ".", "./",
	};
	static const char *good[] = { "x.log", "a/b/c.jsonl", "./x", "a//b", "a/.hidden", "..x", "x.." };
	char err[256], longp[1100];
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err[0] = '\0';
		assert_int_equal(sink_file_check_path(bad[i], err, sizeof err), -1);
		assert_true(err[0] != '\0');
		/* append enforces the same policy and writes nothing */
		assert_int_equal(append(f, bad[i], "nope", err, sizeof err), SINK_REFUSED);
	}
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_int_equal(sink_file_check_path(good[i], err, sizeof err), 0);
	memset(longp, 'a', sizeof longp);
	longp[1024] = '\0';
	assert_int_equal(sink_file_check_path(longp, err, sizeof err), 0);
	longp[1024] = 'a';
	longp[1025] = '\0';
	assert_int_equal(sink_file_check_path(longp, err, sizeof err), -1);
	assert_null(strstr(err, "\n"));

	/* the escape was never written: nothing next to output_dir */
	char p[256];
	struct stat st;

	path_in(p, sizeof p, f->root, "out/x");
	assert_int_equal(stat(p, &st), -1);
}

static void test_symlink_file_refused(void **state)
{
	struct fixture *f = *state;
	char err[256], link[256], target[256];
	size_t len = 99;
	char *got;

	path_in(target, sizeof target, f->outside, "victim.log");
	got = NULL;
	FILE *fp = fopen(target, "w");

	assert_non_null(fp);
	fclose(fp);
	path_in(link, sizeof link, f->out, "evil.log");
	assert_int_equal(symlink(target, link), 0);
	err[0] = '\0';
	assert_int_equal(append(f, "evil.log", "leak", err, sizeof err), SINK_REFUSED);
	assert_non_null(strstr(err, "symlink"));
	got = tu_read_file(target, &len);
	assert_int_equal(len, 0);
	free(got);

	/* a dangling symlink must not create its target either */
	path_in(target, sizeof target, f->outside, "created.log");
	path_in(link, sizeof link, f->out, "dangling.log");
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(append(f, "dangling.log", "leak", err, sizeof err), SINK_REFUSED);
	assert_int_equal(access(target, F_OK), -1);
}

static void test_symlink_dir_refused(void **state)
{
	struct fixture *f = *state;
	char err[256], link[256], p[256];

	path_in(link, sizeof link, f->out, "sub");
	assert_int_equal(mkdir(link, 0750), 0);
	path_in(link, sizeof link, f->out, "sub/escape");
	assert_int_equal(symlink(f->outside, link), 0);
	err[0] = '\0';
	assert_int_equal(append(f, "sub/escape/x.log", "leak", err, sizeof err), SINK_REFUSED);
	assert_non_null(strstr(err, "symlink"));
	assert_int_equal(append(f, "sub/escape/deeper/x.log", "leak", err, sizeof err),
			 SINK_REFUSED);
	path_in(p, sizeof p, f->outside, "x.log");
	assert_int_equal(access(p, F_OK), -1);
	path_in(p, sizeof p, f->outside, "deeper");
	assert_int_equal(access(p, F_OK), -1);

	/* a regular file where a directory is expected is refused, not an I/O error */
	assert_int_equal(append(f, "plain.log", "x", err, sizeof err), SINK_OK);
	assert_int_equal(append(f, "plain.log/x.log", "x", err, sizeof err), SINK_REFUSED);
}

static void test_cached_dir_swapped_for_symlink(void **state)
{
	struct fixture *f = *state;
	char err[256], d[256], d2[256], p[256];
	size_t len = 99;
	char *got;

	/* cache a descriptor for d/f.log, then swap d for a symlink outside
	 * holding a f.log of its own: the next append must notice and refuse */
	assert_int_equal(append(f, "d/f.log", "one", err, sizeof err), SINK_OK);
	path_in(d, sizeof d, f->out, "d");
	path_in(d2, sizeof d2, f->out, "d.moved");
	assert_int_equal(rename(d, d2), 0);
	path_in(p, sizeof p, f->outside, "f.log");
	FILE *fp = fopen(p, "w");

	assert_non_null(fp);
	fclose(fp);
	assert_int_equal(symlink(f->outside, d), 0);
	wait_recheck();
	assert_int_equal(append(f, "d/f.log", "two", err, sizeof err), SINK_REFUSED);
	got = tu_read_file(p, &len);
	assert_int_equal(len, 0);
	free(got);
	path_in(p, sizeof p, f->out, "d.moved/f.log");
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "one\n");
	free(got);
}

static void test_fifo_and_directory_refused(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256];

	path_in(p, sizeof p, f->out, "pipe.log");
	assert_int_equal(mkfifo(p, 0640), 0);
	/* no reader: must not block */
	assert_int_equal(append(f, "pipe.log", "x", err, sizeof err), SINK_REFUSED);

	/* with a reader the open succeeds, fstat still refuses it */
	int rd = open(p, O_RDONLY | O_NONBLOCK);

	assert_true(rd >= 0);
	assert_int_equal(append(f, "pipe.log", "x", err, sizeof err), SINK_REFUSED);
	assert_non_null(strstr(err, "regular file"));
	char c;

	assert_int_equal(read(rd, &c, 1), 0);   /* nothing was written into it */
	close(rd);

	path_in(p, sizeof p, f->out, "adir");
	assert_int_equal(mkdir(p, 0750), 0);
	assert_int_equal(append(f, "adir", "x", err, sizeof err), SINK_REFUSED);
}

static void test_hardlink_and_newline_refused(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256], target[256];

	path_in(target, sizeof target, f->outside, "secret");
	FILE *fp = fopen(target, "w");

	assert_non_null(fp);
	fclose(fp);
	path_in(p, sizeof p, f->out, "hard.log");
	assert_int_equal(link(target, p), 0);
	assert_int_equal(append(f, "hard.log", "leak", err, sizeof err), SINK_REFUSED);
	struct stat st;

	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_size, 0);

	assert_int_equal(append(f, "nl.log", "two\nlines", err, sizeof err), SINK_REFUSED);
}

static void test_rotation_noticed(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256], rotated[256];
	char *got;

	path_in(p, sizeof p, f->out, "rot.log");
	path_in(rotated, sizeof rotated, f->out, "rot.log.1");
	assert_int_equal(append(f, "rot.log", "before", err, sizeof err), SINK_OK);
	assert_int_equal(rename(p, rotated), 0);       /* logrotate, create mode */
	wait_recheck();
	assert_int_equal(append(f, "rot.log", "after", err, sizeof err), SINK_OK);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "after\n");
	free(got);
	got = tu_read_file(rotated, NULL);
	assert_string_equal(got, "before\n");
	free(got);

	assert_int_equal(unlink(p), 0);                /* deleted outright */
	wait_recheck();
	assert_int_equal(append(f, "rot.log", "again", err, sizeof err), SINK_OK);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "again\n");
	free(got);
}

static void test_cache_eviction(void **state)
{
	struct fixture *f = *state;
	char err[256], name[64], p[256], line[64];

	/* more files than cache slots, three rounds */
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 40; i++) {
			snprintf(name, sizeof name, "many/f%02d.log", i);
			snprintf(line, sizeof line, "r%d", round);
			assert_int_equal(append(f, name, line, err, sizeof err), SINK_OK);
		}
	for (int i = 0; i < 40; i++) {
		char *got;

		snprintf(name, sizeof name, "many/f%02d.log", i);
		path_in(p, sizeof p, f->out, name);
		got = tu_read_file(p, NULL);
		assert_string_equal(got, "r0\nr1\nr2\n");
		free(got);
	}
}

static void test_many_appends_fast(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256];
	struct timespec t0, t1;
	const char *line = "{\"action\":\"email_send\",\"action_date\":631152000,\"list_id\":\"1\"}";
	size_t len;
	char *got;
	double us;

	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t0), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(append(f, "fast/one.log", line, err, sizeof err), SINK_OK);
	assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &t1), 0);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3;
	print_message("1000 appends to one file: %.0f us (%.2f us each)\n", us, us / 1000);
	/* generous bound: catches reopening per line on slow disks only when badly wrong */
	assert_true(us < 500000.0);
	path_in(p, sizeof p, f->out, "fast/one.log");
	got = tu_read_file(p, &len);
	assert_int_equal(len, 1000 * (strlen(line) + 1));
	free(got);
}

#define THREADS 4
#define LINES 2000

struct writer {
	const char *out;
	int id;
	int failures;
};

static void make_line(char *buf, size_t size, int id, int i)
{
	/* long enough that a torn write would be visible; ends with a checksum */
	int n = snprintf(buf, size, "t%d n%05d ", id, i);

	for (int k = 0; k < 300; k++)
		buf[n++] = (char)('a' + (id * 7 + i + k) % 26);
	snprintf(buf + n, size - (size_t)n, " end%d.%05d", id, i);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	char err[256], line[512];
	struct sink_file *s = sink_file_open(w->out, err, sizeof err);

	if (!s) {
		w->failures = LINES;
		return NULL;
	}
	for (int i = 0; i < LINES; i++) {
		make_line(line, sizeof line, w->id, i);
		if (sink_file_append(s, "shared/all.log", line, strlen(line), err, sizeof err) != SINK_OK)
			w->failures++;
	}
	sink_file_close(s);
	return NULL;
}

static void test_concurrent_writers(void **state)
{
	struct fixture *f = *state;
	pthread_t th[THREADS];
	struct writer w[THREADS];
	static unsigned char seen[THREADS][LINES];
	char p[256], expect[512];
	char *got, *line, *save = NULL;
	size_t nlines = 0;

	memset(seen, 0, sizeof seen);
	for (int t = 0; t < THREADS; t++) {
		w[t] = (struct writer){ .out = f->out, .id = t };
		assert_int_equal(pthread_create(&th[t], NULL, writer_main, &w[t]), 0);
	}
	for (int t = 0; t < THREADS; t++) {
		assert_int_equal(pthread_join(th[t], NULL), 0);
		assert_int_equal(w[t].failures, 0);
	}
	path_in(p, sizeof p, f->out, "shared/all.log");
	got = tu_read_file(p, NULL);
	assert_non_null(got);
	for (line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		int id, i;

		assert_int_equal(sscanf(line, "t%d n%d ", &id, &i), 2);
		assert_true(id >= 0 && id < THREADS && i >= 0 && i < LINES);
		make_line(expect, sizeof expect, id, i);
		assert_string_equal(line, expect);
		assert_int_equal(seen[id][i], 0);
		seen[id][i] = 1;
		nlines++;
	}
	assert_int_equal(nlines, THREADS * LINES);
	free(got);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256];

	(void)f;
	err[0] = '\0';
	assert_null(sink_file_open(NULL, err, sizeof err));
	assert_true(err[0] != '\0');
	/* output_dir under a regular file cannot be created */
	path_in(p, sizeof p, f->outside, "file");
	FILE *fp = fopen(p, "w");

	assert_non_null(fp);
	fclose(fp);
	path_in(p, sizeof p, f->outside, "file/out");
	err[0] = '\0';
	assert_null(sink_file_open(p, err, sizeof err));
	assert_true(err[0] != '\0');
	/* output_dir itself may be a symlink */
	path_in(p, sizeof p, f->root, "outlink");
	assert_int_equal(symlink(f->out, p), 0);
	struct sink_file *s = sink_file_open(p, err, sizeof err);

	assert_non_null(s);
	assert_int_equal(sink_file_append(s, "via.log", "ok", 2, err, sizeof err), SINK_OK);
	sink_file_close(s);
	sink_file_close(NULL);
	path_in(p, sizeof p, f->out, "via.log");
	char *got = tu_read_file(p, NULL);

	assert_string_equal(got, "ok\n");
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_append_creates_dirs_and_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_dir_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cached_dir_swapped_for_symlink, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_and_directory_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlink_and_newline_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation_noticed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_eviction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_appends_fast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
