/*
 * test_sink_file.c — sink_file.c against a real directory tree in mkdtemp():
 * line format, path policy, symlink/FIFO/directory refusals, log rotation,
 * the descriptor cache, the batch queue, and concurrent appenders. Whole
 * lines under failure are tested for real: a full disk is a tiny tmpfs
 * mounted for the test (needs root; skipped otherwise), a short write comes
 * from RLIMIT_FSIZE in a forked child.
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
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fixture {
	char root[64];      /* mkdtemp */
	char out[128];      /* root/out = output_dir */
	char outside[128];  /* root/outside: must never be written */
	char mnt[96];       /* root/mnt: a tmpfs while mounted */
	int mounted;
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
	f->s = sink_file_open(f->out, SINK_SYNC_NONE, err, sizeof err);
	assert_non_null(f->s);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sink_file_close(f->s);
	if (f->mounted && umount2(f->mnt, MNT_DETACH) != 0)
		print_message("cannot unmount %s: %s\n", f->mnt, strerror(errno));
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
	struct sink_file *s = sink_file_open(w->out, SINK_SYNC_NONE, err, sizeof err);

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

/* ---- whole lines under failure ---- */

/* Mounts a tmpfs of size ("64k") on f->mnt, or skips the test. */
static void mount_tiny(struct fixture *f, const char *size)
{
	char opts[64];

	snprintf(f->mnt, sizeof f->mnt, "%s/mnt", f->root);
	assert_int_equal(mkdir(f->mnt, 0700), 0);
	if (geteuid() != 0) {
		print_message("skipped: mounting a tiny tmpfs (a full disk) needs root\n");
		skip();
	}
	snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
	if (mount("tmpfs", f->mnt, "tmpfs", 0, opts) != 0) {
		print_message("skipped: cannot mount a tmpfs on %s: %s\n", f->mnt, strerror(errno));
		skip();
	}
	f->mounted = 1;
}

/* Writes path until the file system is full (bounded by its size). */
static void fill_up(const char *path)
{
	static const char zeros[512];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	for (int i = 0; i < 1 << 20; i++)
		if (write(fd, zeros, sizeof zeros) < (ssize_t)sizeof zeros)
			break;
	assert_int_equal(write(fd, zeros, sizeof zeros), -1);
	assert_int_equal(errno, ENOSPC);
	close(fd);
}

/*
 * Mounts a tiny tmpfs of size (mount_tiny), names p (the file name in its
 * out/ directory) and filler (a file to fill it up with), and opens a
 * sink on out/.
 */
static struct sink_file *tiny_sink(struct fixture *f, const char *size, const char *name,
				   char p[256], char filler[256])
{
	char err[256], dir[128];
	struct sink_file *s;

	mount_tiny(f, size);
	path_in(dir, sizeof dir, f->mnt, "out");
	path_in(p, 256, dir, name);
	path_in(filler, 256, f->mnt, "filler");
	s = sink_file_open(dir, SINK_SYNC_NONE, err, sizeof err);
	assert_non_null(s);
	return s;
}

#define IDS 5
#define MAXLINES 400

/* What became of line (id, i): 0 never tried, LINE_OK appended, LINE_FAILED refused. */
enum { LINE_OK = 1, LINE_FAILED = 2 };

/*
 * The file must end with '\n' and hold only whole lines: each one of the
 * extras, or make_line(id, i) with fate[id][i] == LINE_OK, at most once;
 * every LINE_OK line must be there. Returns the number of lines.
 */
static size_t check_whole_lines(const char *path, unsigned char (*fate)[MAXLINES],
				const char *const *extras, size_t nextras)
{
	static unsigned char seen[IDS][MAXLINES];
	char expect[512];
	size_t len = 0, n = 0;
	char *text = tu_read_file(path, &len), *line, *nl;

	assert_non_null(text);
	memset(seen, 0, sizeof seen);
	if (len > 0 && text[len - 1] != '\n')
		fail_msg("%s ends mid-line: ...%s", path, text + (len > 40 ? len - 40 : 0));
	for (line = text; *line; line = nl + 1) {
		int id, i, known = 0;

		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		n++;
		for (size_t k = 0; k < nextras; k++)
			known |= strcmp(line, extras[k]) == 0;
		if (known)
			continue;
		if (sscanf(line, "t%d n%d ", &id, &i) != 2 || id < 0 || id >= IDS || i < 0 ||
		    i >= MAXLINES)
			fail_msg("line %zu of %s is not one of ours: %.80s", n, path, line);
		make_line(expect, sizeof expect, id, i);
		if (strcmp(line, expect) != 0)
			fail_msg("line %zu of %s is torn or glued: %.80s", n, path, line);
		if (fate[id][i] != LINE_OK)
			fail_msg("line t%d n%d is in %s although its append failed", id, i, path);
		if (seen[id][i]++)
			fail_msg("line t%d n%d is in %s twice", id, i, path);
	}
	for (int id = 0; id < IDS; id++)
		for (int i = 0; i < MAXLINES; i++)
			if (fate[id][i] == LINE_OK && !seen[id][i])
				fail_msg("line t%d n%d was appended but is not in %s", id, i, path);
	free(text);
	return n;
}

/*
 * An append reserves 64 KiB beyond its lines when they fit, so appends
 * after the disk filled up still land (and need no fallocate) until that
 * reservation is used up; the next one fails whole.
 */
static void test_reservation_ahead_outlasts_a_full_disk(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256], filler[256], line[1024];
	struct sink_file *s;
	struct stat st;
	size_t landed = 0;
	int rc = SINK_OK;

	s = tiny_sink(f, "1m", "ahead.log", p, filler);
	assert_int_equal(sink_file_append(s, "ahead.log", "first", 5, err, sizeof err), SINK_OK);
	assert_int_equal(stat(p, &st), 0);
	assert_true((off_t)st.st_blocks * 512 >= 64 * 1024);
	fill_up(filler);
	memset(line, 'r', sizeof line - 1);
	line[sizeof line - 1] = '\0';
	for (int i = 0; i < 200 && rc == SINK_OK; i++) {
		rc = sink_file_append(s, "ahead.log", line, strlen(line), err, sizeof err);
		if (rc == SINK_OK)
			landed++;
	}
	assert_int_equal(rc, SINK_IO);
	assert_non_null(strstr(err, "no room"));
	/* 6 + landed * 1024 bytes fit in the 64 KiB (plus a page) reserved ahead */
	assert_true(landed >= 60 && landed <= 70);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, (off_t)(6 + landed * 1024));
	sink_file_close(s);
}

static void test_full_disk_keeps_whole_lines(void **state)
{
	struct fixture *f = *state;
	static unsigned char fate[IDS][MAXLINES];
	static const char *const extras[] = { "first", "after the disk filled" };
	char err[256], line[512], p[256], filler[256];
	struct sink_file *s;
	int fails = 0, oks = 0;
	size_t n;

	s = tiny_sink(f, "64k", "full.log", p, filler);
	memset(fate, 0, sizeof fate);
	assert_int_equal(sink_file_append(s, "full.log", "first", 5, err, sizeof err), SINK_OK);
	fill_up(filler);
	/* the file's last page still has room: lines fit until one crosses it */
	for (int i = 0; i < MAXLINES && fails < 3; i++) {
		int rc;

		make_line(line, sizeof line, 0, i);
		rc = sink_file_append(s, "full.log", line, strlen(line), err, sizeof err);
		if (rc == SINK_OK) {
			fate[0][i] = LINE_OK;
			oks++;
			continue;
		}
		assert_int_equal(rc, SINK_IO);
		assert_non_null(strstr(err, "full.log"));
		fate[0][i] = LINE_FAILED;
		fails++;
	}
	assert_int_equal(fails, 3);
	assert_true(oks > 0);
	n = check_whole_lines(p, fate, extras, 1);
	assert_int_equal(n, (size_t)oks + 1);

	/* space back: the next line is a line of its own, nothing glued to it */
	assert_int_equal(unlink(filler), 0);
	assert_int_equal(sink_file_append(s, "full.log", extras[1], strlen(extras[1]), err,
					  sizeof err), SINK_OK);
	n = check_whole_lines(p, fate, extras, 2);
	assert_int_equal(n, (size_t)oks + 2);
	char *text = tu_read_file(p, NULL);

	assert_non_null(strstr(text, "\nafter the disk filled\n"));
	free(text);
	sink_file_close(s);
}

static void test_full_disk_batch_leaves_file_unchanged(void **state)
{
	struct fixture *f = *state;
	char err[256], line[512], p[256], filler[256];
	struct sink_file *s;
	size_t before_len, after_len;
	char *before, *after;

	s = tiny_sink(f, "64k", "batch.log", p, filler);
	assert_int_equal(sink_file_append(s, "batch.log", "kept", 4, err, sizeof err), SINK_OK);
	fill_up(filler);
	/* 40 lines (13 KiB) where at most one page is left: none may land */
	for (int i = 0; i < 40; i++) {
		make_line(line, sizeof line, 1, i);
		assert_int_equal(sink_file_add(s, "batch.log", line, strlen(line), err, sizeof err),
				 SINK_OK);
	}
	before = tu_read_file(p, &before_len);
	assert_string_equal(before, "kept\n");   /* queued, not written yet */
	assert_int_equal(sink_file_flush(s, err, sizeof err), SINK_IO);
	assert_non_null(strstr(err, "batch.log"));
	after = tu_read_file(p, &after_len);
	assert_int_equal(after_len, before_len);
	assert_string_equal(after, "kept\n");
	free(before);
	free(after);
	/* the failed queue is gone: the next flush writes only what comes next */
	assert_int_equal(unlink(filler), 0);
	assert_int_equal(sink_file_add(s, "batch.log", "next", 4, err, sizeof err), SINK_OK);
	assert_int_equal(sink_file_flush(s, err, sizeof err), SINK_OK);
	after = tu_read_file(p, NULL);
	assert_string_equal(after, "kept\nnext\n");
	free(after);
	sink_file_close(s);
}

/*
 * In a child (the limit is per process): RLIMIT_FSIZE makes write(2) stop
 * short at the limit, the way a full disk does without fallocate. Exit
 * status: 0, or the number of the step that went wrong.
 */
static int short_write_child(const char *out)
{
	struct rlimit lim = { 8192, 8192 };
	char err[256], line[512];
	struct sink_file *s;
	int fails = 0;

	signal(SIGXFSZ, SIG_IGN);   /* EFBIG instead of a signal at the limit */
	if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
		return 1;
	s = sink_file_open(out, SINK_SYNC_NONE, err, sizeof err);
	if (!s)
		return 2;
	if (sink_file_append(s, "short.log", "first", 5, err, sizeof err) != SINK_OK)
		return 3;
	/* one batch of 13 KiB: written in part, then cut off again */
	for (int i = 0; i < 40; i++) {
		make_line(line, sizeof line, 2, 100 + i);
		if (sink_file_add(s, "short.log", line, strlen(line), err, sizeof err) != SINK_OK)
			return 4;
	}
	if (sink_file_flush(s, err, sizeof err) != SINK_IO || !strstr(err, "short write"))
		return 5;
	/* single lines until one crosses the limit */
	for (int i = 0; i < 40 && fails == 0; i++) {
		make_line(line, sizeof line, 2, i);
		if (sink_file_append(s, "short.log", line, strlen(line), err, sizeof err) != SINK_OK)
			fails = i + 1;
	}
	if (fails == 0)
		return 6;
	sink_file_close(s);
	return 100 + fails;   /* 1-based index of the failed line */
}

static void test_short_write_is_undone(void **state)
{
	struct fixture *f = *state;
	static unsigned char fate[IDS][MAXLINES];
	static const char *const extras[] = { "first" };
	char p[256];
	int status, failed;
	pid_t pid;
	size_t n;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(short_write_child(f->out));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) < 100)
		fail_msg("child failed at step %d", WEXITSTATUS(status));
	failed = WEXITSTATUS(status) - 100 - 1;
	memset(fate, 0, sizeof fate);
	for (int i = 0; i < failed; i++)
		fate[2][i] = LINE_OK;
	path_in(p, sizeof p, f->out, "short.log");
	n = check_whole_lines(p, fate, extras, 1);
	assert_int_equal(n, (size_t)failed + 1);
}

static void write_raw(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

/*
 * Two sinks of this process (two workers) append to one file in turn: each
 * takes the other's clean end from the file's lock stripe, and a fragment
 * another process left in between is still found and cut.
 */
static void test_workers_share_the_clean_end(void **state)
{
	struct fixture *f = *state;
	struct sink_file *other;
	char err[256], p[256];
	char *got;

	other = sink_file_open(f->out, SINK_SYNC_NONE, err, sizeof err);
	assert_non_null(other);
	path_in(p, sizeof p, f->out, "shared.log");
	assert_int_equal(append(f, "shared.log", "a1", err, sizeof err), SINK_OK);
	assert_int_equal(sink_file_append(other, "shared.log", "b1", 2, err, sizeof err), SINK_OK);
	assert_int_equal(append(f, "shared.log", "a2", err, sizeof err), SINK_OK);
	write_raw(p, "frag", 4);
	assert_int_equal(sink_file_append(other, "shared.log", "b2", 2, err, sizeof err), SINK_OK);
	write_raw(p, "more", 4);
	assert_int_equal(append(f, "shared.log", "a3", err, sizeof err), SINK_OK);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "a1\nb1\na2\nb2\na3\n");
	free(got);
	sink_file_close(other);
}

static void test_fragment_repaired_before_next_line(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256];
	size_t len = 0;
	char *got, *big;

	/* a crash mid-append left "tw": cut back to the last whole line */
	path_in(p, sizeof p, f->out, "frag.log");
	write_raw(p, "one\ntw", 6);
	assert_int_equal(append(f, "frag.log", "two", err, sizeof err), SINK_OK);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "one\ntwo\n");
	free(got);

	/* no line break at all: nothing provably a fragment, so sealed, not cut */
	path_in(p, sizeof p, f->out, "noline.log");
	write_raw(p, "no newline here", 15);
	assert_int_equal(append(f, "noline.log", "x", err, sizeof err), SINK_OK);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "no newline here\nx\n");
	free(got);

	/* a fragment longer than the 1 MiB scanned is sealed too */
	path_in(p, sizeof p, f->out, "long.log");
	big = malloc(2 * 1024 * 1024 + 3);
	assert_non_null(big);
	memcpy(big, "a\n", 2);
	memset(big + 2, 'z', 2 * 1024 * 1024);
	write_raw(p, big, 2 + 2 * 1024 * 1024);
	assert_int_equal(append(f, "long.log", "y", err, sizeof err), SINK_OK);
	got = tu_read_file(p, &len);
	assert_int_equal(len, 2 + 2 * 1024 * 1024 + 3);
	assert_memory_equal(got + len - 3, "\ny\n", 3);
	free(got);
	free(big);

	/* a fragment left by someone else while our descriptor is cached */
	path_in(p, sizeof p, f->out, "cached.log");
	assert_int_equal(append(f, "cached.log", "mine", err, sizeof err), SINK_OK);
	write_raw(p, "theirs, unfinish", 16);
	assert_int_equal(append(f, "cached.log", "mine again", err, sizeof err), SINK_OK);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "mine\nmine again\n");
	free(got);
}

/*
 * A name the file system refuses (a component over NAME_MAX, as a file or
 * as a directory) is refused for that line alone: the lines queued around
 * it are written once. A system failure (no descriptor left: EMFILE) still
 * fails, since retrying later can succeed.
 */
static void test_name_too_long_refused_not_io(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256], longname[300 + 16], longdir[300 + 16];
	struct rlimit saved, low;
	char *got;

	memset(longname, 'a', 300);
	snprintf(longname + 300, sizeof longname - 300, ".jsonl");
	memset(longdir, 'b', 300);
	snprintf(longdir + 300, sizeof longdir - 300, "/x.jsonl");
	char bad1[400], bad2[400];

	snprintf(bad1, sizeof bad1, "sms/%s", longname);
	snprintf(bad2, sizeof bad2, "sms/%s", longdir);
	assert_int_equal(sink_file_add(f->s, "sms/ok.jsonl", "one", 3, err, sizeof err), SINK_OK);
	assert_int_equal(sink_file_add(f->s, bad1, "bad", 3, err, sizeof err), SINK_REFUSED);
	assert_non_null(strstr(err, strerror(ENAMETOOLONG)));
	assert_int_equal(sink_file_add(f->s, bad2, "bad", 3, err, sizeof err), SINK_REFUSED);
	assert_non_null(strstr(err, strerror(ENAMETOOLONG)));
	assert_int_equal(sink_file_add(f->s, "sms/ok.jsonl", "two", 3, err, sizeof err), SINK_OK);
	assert_int_equal(sink_file_flush(f->s, err, sizeof err), SINK_OK);
	path_in(p, sizeof p, f->out, "sms/ok.jsonl");
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "one\ntwo\n");
	free(got);

	/* out of descriptors is not the path's fault */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = 3;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int rc = sink_file_add(f->s, "sms/new.jsonl", "x", 1, err, sizeof err);

	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(rc, SINK_IO);
	sink_file_discard(f->s);
}

static void test_batch_one_append_per_file(void **state)
{
	struct fixture *f = *state;
	const struct sink_file_ref *refs;
	char err[256], p[256], name[64];
	struct stat st;
	size_t n;
	char *got;

	assert_int_equal(sink_file_add(f->s, "a.log", "a1", 2, err, sizeof err), SINK_OK);
	assert_int_equal(sink_file_add(f->s, "b/c.log", "c1", 2, err, sizeof err), SINK_OK);
	assert_int_equal(sink_file_add(f->s, "a.log", "a2", 2, err, sizeof err), SINK_OK);
	/* a refused line is not queued and does not spoil the others */
	assert_int_equal(sink_file_add(f->s, "a.log", "x\ny", 3, err, sizeof err), SINK_REFUSED);
	assert_int_equal(sink_file_add(f->s, "../a.log", "x", 1, err, sizeof err), SINK_REFUSED);
	assert_int_equal(sink_file_add(f->s, "b/c.log", "c2", 2, err, sizeof err), SINK_OK);
	path_in(p, sizeof p, f->out, "a.log");
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "");   /* opened (so refusals are known), not written */
	free(got);
	assert_int_equal(sink_file_flush(f->s, err, sizeof err), SINK_OK);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "a1\na2\n");
	free(got);
	path_in(p, sizeof p, f->out, "b/c.log");
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "c1\nc2\n");
	free(got);

	/* the files written, by identity, for the sync */
	n = sink_file_written(f->s, &refs);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		path_in(p, sizeof p, f->out, refs[i].path);
		assert_int_equal(stat(p, &st), 0);
		assert_true(st.st_dev == refs[i].dev && st.st_ino == refs[i].ino);
		assert_int_equal(fstat(refs[i].fd, &st), 0);
		assert_true(st.st_ino == refs[i].ino);
	}
	assert_int_equal(sink_file_sync(f->s, err, sizeof err), SINK_OK);

	/* discard drops the queue; a flush with nothing queued writes nothing */
	assert_int_equal(sink_file_add(f->s, "a.log", "dropped", 7, err, sizeof err), SINK_OK);
	sink_file_discard(f->s);
	assert_int_equal(sink_file_flush(f->s, err, sizeof err), SINK_OK);
	assert_int_equal(sink_file_written(f->s, &refs), 0);
	path_in(p, sizeof p, f->out, "a.log");
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "a1\na2\n");
	free(got);

	/* more files in one batch than cached descriptors: nothing lost, order kept */
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 40; i++) {
			char line[16];

			snprintf(name, sizeof name, "wide/f%02d.log", i);
			snprintf(line, sizeof line, "r%d", round);
			assert_int_equal(sink_file_add(f->s, name, line, 2, err, sizeof err), SINK_OK);
		}
	assert_int_equal(sink_file_flush(f->s, err, sizeof err), SINK_OK);
	for (int i = 0; i < 40; i++) {
		snprintf(name, sizeof name, "wide/f%02d.log", i);
		path_in(p, sizeof p, f->out, name);
		got = tu_read_file(p, NULL);
		assert_string_equal(got, "r0\nr1\n");
		free(got);
	}
}

struct locker {
	const char *path;
	int fd;
	int saw_line;   /* the line was in the file while the lock was held */
};

/* Holds the file's lock for 100 ms, looking for the line before letting go. */
static void *locker_main(void *arg)
{
	struct locker *l = arg;
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	struct stat st;

	nanosleep(&ts, NULL);
	if (fstat(l->fd, &st) == 0 && st.st_size > 0)
		l->saw_line = 1;
	flock(l->fd, LOCK_UN);
	return NULL;
}

static void test_append_waits_for_the_lock(void **state)
{
	struct fixture *f = *state;
	struct locker l = { 0 };
	char err[256], p[256];
	pthread_t th;
	char *got;

	/* another writer (a descriptor of its own: flock conflicts) holds the lock */
	path_in(p, sizeof p, f->out, "locked.log");
	l.path = p;
	l.fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
	assert_true(l.fd >= 0);
	assert_int_equal(flock(l.fd, LOCK_EX), 0);
	assert_int_equal(pthread_create(&th, NULL, locker_main, &l), 0);
	assert_int_equal(append(f, "locked.log", "after the lock", err, sizeof err), SINK_OK);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(l.saw_line, 0);
	got = tu_read_file(p, NULL);
	assert_string_equal(got, "after the lock\n");
	free(got);
	close(l.fd);
}

#define CWRITERS 4   /* ids 0-2 threads, 3 a child process with a file size limit */
#define CLINES 300
#define CBATCH 5

struct cwriter {
	const char *out;
	int id;
	unsigned char (*fate)[MAXLINES];   /* shared with the child (MAP_SHARED) */
};

/* Appends CLINES lines in batches of CBATCH, recording each line's fate. */
static int cwriter_run(struct cwriter *w)
{
	char err[256], line[512];
	struct sink_file *s = sink_file_open(w->out, SINK_SYNC_NONE, err, sizeof err);

	if (!s)
		return -1;
	for (int i = 0; i < CLINES; i += CBATCH) {
		int rc = SINK_OK;

		for (int k = i; k < i + CBATCH && rc == SINK_OK; k++) {
			make_line(line, sizeof line, w->id, k);
			rc = sink_file_add(s, "shared.log", line, strlen(line), err, sizeof err);
		}
		if (rc == SINK_OK)
			rc = sink_file_flush(s, err, sizeof err);
		else
			sink_file_discard(s);
		for (int k = i; k < i + CBATCH; k++)
			w->fate[w->id][k] = rc == SINK_OK ? LINE_OK : LINE_FAILED;
	}
	sink_file_close(s);
	return 0;
}

static void *cwriter_main(void *arg)
{
	cwriter_run(arg);
	return NULL;
}

static void test_concurrent_writers_on_full_disk(void **state)
{
	struct fixture *f = *state;
	static const char *const none[] = { "" };
	struct cwriter w[CWRITERS];
	pthread_t th[CWRITERS - 1];
	unsigned char (*fate)[MAXLINES];
	char dir[128], p[256];
	int status, ok[CWRITERS] = { 0 }, failed[CWRITERS] = { 0 };
	pid_t pid;

	/* 256k cannot hold the threads' ~300k; the child may not grow the file past 64k */
	mount_tiny(f, "256k");
	path_in(dir, sizeof dir, f->mnt, "out");
	path_in(p, sizeof p, dir, "shared.log");
	fate = mmap(NULL, IDS * MAXLINES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
	assert_true(fate != MAP_FAILED);
	for (int i = 0; i < CWRITERS; i++)
		w[i] = (struct cwriter){ .out = dir, .id = i, .fate = fate };
	pid = fork();   /* before any thread: the child is a plain single-threaded process */
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit lim = { 64 * 1024, 64 * 1024 };

		signal(SIGXFSZ, SIG_IGN);
		_exit(setrlimit(RLIMIT_FSIZE, &lim) != 0 || cwriter_run(&w[CWRITERS - 1]) != 0);
	}
	for (int i = 0; i < CWRITERS - 1; i++)
		assert_int_equal(pthread_create(&th[i], NULL, cwriter_main, &w[i]), 0);
	for (int i = 0; i < CWRITERS - 1; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	for (int id = 0; id < CWRITERS; id++)
		for (int i = 0; i < CLINES; i++) {
			assert_true(fate[id][i] == LINE_OK || fate[id][i] == LINE_FAILED);
			ok[id] += fate[id][i] == LINE_OK;
			failed[id] += fate[id][i] == LINE_FAILED;
		}
	print_message("lines appended / refused: threads %d/%d %d/%d %d/%d, child %d/%d\n",
		      ok[0], failed[0], ok[1], failed[1], ok[2], failed[2], ok[3], failed[3]);
	/* the child's own lines alone pass its limit; the threads' pass the disk */
	assert_true(failed[CWRITERS - 1] > 0);
	assert_true(failed[0] + failed[1] + failed[2] > 0);
	assert_true(ok[0] + ok[1] + ok[2] + ok[3] > 0);
	check_whole_lines(p, fate, none, 0);
	munmap(fate, IDS * MAXLINES);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	char err[256], p[256];

	(void)f;
	err[0] = '\0';
	assert_null(sink_file_open(NULL, SINK_SYNC_NONE, err, sizeof err));
	assert_true(err[0] != '\0');
	/* output_dir under a regular file cannot be created */
	path_in(p, sizeof p, f->outside, "file");
	FILE *fp = fopen(p, "w");

	assert_non_null(fp);
	fclose(fp);
	path_in(p, sizeof p, f->outside, "file/out");
	err[0] = '\0';
	assert_null(sink_file_open(p, SINK_SYNC_NONE, err, sizeof err));
	assert_true(err[0] != '\0');
	/* output_dir itself may be a symlink */
	path_in(p, sizeof p, f->root, "outlink");
	assert_int_equal(symlink(f->out, p), 0);
	struct sink_file *s = sink_file_open(p, SINK_SYNC_NONE, err, sizeof err);

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
		cmocka_unit_test_setup_teardown(test_reservation_ahead_outlasts_a_full_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk_keeps_whole_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_disk_batch_leaves_file_unchanged, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_short_write_is_undone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_workers_share_the_clean_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fragment_repaired_before_next_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_batch_one_append_per_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_too_long_refused_not_io, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_waits_for_the_lock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_writers_on_full_disk, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
