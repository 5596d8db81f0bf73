/*
 * faults_disk.c — the disk holding data_dir and output_dir fills up while
 * batches that write() a line and forward each event keep coming, with a
 * backlog waiting for a destination that is down.
 *
 * Set-up: an 8 MB tmpfs mounted on the test dir (needs root; skipped with
 * a message otherwise), data_dir and output_dir inside it, and a filler file
 * grown until ENOSPC (and topped up after every post while the disk is
 * meant to be full).
 *
 * What it proves: a full disk is answered 503 (never a hang, a crash or a
 * 200 for something not stored); the backlog still drains while the disk is
 * full once the destination is back, without a restart; intake answers 200
 * again once space is freed, without a restart; and at the end every line
 * of every output file is one whole JSON event (no partial line, no two
 * events on a line), every event answered 200 was written and delivered.
 */
#include "faults/faults.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_tree.h>

#define DISK_SIZE "size=8m"

static const char write_forward_lua[] = "function route(event, meta)\n"
					"  write('lines.jsonl')\n"
					"  forward('@A@/in')\n"
					"end\n";

/* Appends to path until the filesystem is full (ENOSPC even for one byte).
 * Returns the bytes added, or -1 on another error. */
static long disk_fill(const char *path)
{
	static char chunk[1 << 20];
	size_t size = sizeof(chunk);
	long added = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0) {
		fprintf(stderr, "[faults] %s: %s\n", path, strerror(errno));
		return -1;
	}
	memset(chunk, 'f', sizeof(chunk));
	while (size > 0) {
		ssize_t w = write(fd, chunk, size);
		if (w > 0) {
			added += w;
		} else if (w < 0 && errno == ENOSPC) {
			size /= 2;
		} else if (w < 0 && errno != EINTR) {
			fprintf(stderr, "[faults] filling %s: %s\n", path, strerror(errno));
			added = -1;
			break;
		}
	}
	close(fd);
	return added;
}

/* What the output files hold, gathered by disk_scan_file. */
struct disk_lines {
	long lines, bad;           /* lines, and lines that are not one JSON event */
	long partial;              /* files whose last line lacks its newline */
	long *seq;
	size_t n, cap;
};

static struct disk_lines *disk_scan;

static void disk_line(struct disk_lines *dl, const char *line)
{
	const char *ps[] = { "seq", NULL };
	yajl_val v = yajl_tree_parse(line, NULL, 0);
	yajl_val s = v != NULL && YAJL_IS_OBJECT(v) ? yajl_tree_get(v, ps, yajl_t_number) : NULL;

	dl->lines++;
	if (s == NULL || !YAJL_IS_INTEGER(s)) {
		if (dl->bad < 5)
			fprintf(stderr, "[faults] not one JSON event: %.200s\n", line);
		dl->bad++;
	} else if (dl->n < dl->cap) {
		dl->seq[dl->n++] = (long)YAJL_GET_INTEGER(s);
	}
	yajl_tree_free(v);
}

static int disk_scan_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct disk_lines *dl = disk_scan;
	size_t len = 0;
	char *text;

	(void)ftw;
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	text = harness_read_file(path, &len);
	if (text == NULL)
		return 0;
	if (len > 0 && text[len - 1] != '\n') {
		fprintf(stderr, "[faults] %s ends in a partial line\n", path);
		dl->partial++;
	}
	for (char *p = text, *nl; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		if (nl == NULL)
			nl = text + len;
		*nl = '\0';
		disk_line(dl, p);
	}
	free(text);
	return 0;
}

static int disk_cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

static void disk_full_write_and_forward(void **state)
{
	struct fault *t = *state;
	char filler[HARNESS_PATH + 16];
	long seq = 1, full_503 = 0, full_200 = 0;
	struct disk_lines dl = { 0 };

	if (geteuid() != 0) {
		printf("SKIP disk_full_write_and_forward: needs root to mount a tmpfs\n");
		t->h.passed = 1;   /* nothing ran: no daemon log to show */
		skip();
	}
	snprintf(t->mnt, sizeof(t->mnt), "%s/fs", t->h.dir);
	assert_int_equal(mkdir(t->mnt, 0755), 0);
	if (mount("tmpfs", t->mnt, "tmpfs", MS_NOSUID | MS_NODEV, DISK_SIZE) != 0) {
		printf("SKIP disk_full_write_and_forward: mount tmpfs on %s: %s\n", t->mnt,
		       strerror(errno));
		t->mnt[0] = '\0';
		t->h.passed = 1;
		skip();
	}
	assert_int_equal(harness_use_dirs(&t->h, t->mnt), 0);
	snprintf(filler, sizeof(filler), "%s/filler", t->mnt);

	/* A backlog for a destination that is down. */
	fault_mode(t, 0, FAULTY_REFUSE, 0, NULL);
	/* a reserve that fits the small file system: a quarter of it */
	fault_boot(t, write_forward_lua, FAULT_BACKOFF "outbox_reserve = 2M\n");
	fault_load(t, &seq, 10, "a", 200, 4.0);
	long backlog = harness_sql_long(&t->h, "SELECT count(*) FROM deliveries");
	assert_true(backlog > 0);

	/* Disk full: 503s (a 200 only if it really fitted), never a hang or a crash. */
	long filled = disk_fill(filler);
	assert_true(filled > 0);
	for (int i = 0; i < 40 && full_503 < 3; i++) {
		long status = fault_post(&t->h, &t->led, seq, 10, "a");
		seq += 10;
		if (status == 503)
			full_503++;
		else if (status == 200)
			full_200++;
		else
			fprintf(stderr, "[faults] disk full: batch answered %ld\n", status);
		assert_true(status == 503 || status == 200);
		assert_true(harness_running(&t->h));
		/* Filled again until the router noticed; after that the space its
		 * reserve gave back is delivery's (a writer taking every freed byte
		 * for ever would take that too: no reserve survives it). */
		if (full_503 == 0)
			assert_true(disk_fill(filler) >= 0);
		harness_sleep_ms(200);
	}
	assert_true(full_503 >= 3);

	/* The destination comes back while the disk is still full. */
	fault_mode(t, 0, FAULTY_OK, 0, NULL);
	double up = clock_mono();
	int drained_full = fault_wait_drained(t, 60000);
	double drain_s = drained_full == 0 ? clock_mono() - up : -1;
	int delivered_full = fault_wait_delivered(t, 10000);
	assert_true(harness_running(&t->h));
	struct stat fst;
	assert_int_equal(stat(filler, &fst), 0);   /* still full all along */

	/* Space again: intake recovers without a restart. */
	assert_int_equal(unlink(filler), 0);
	double freed = clock_mono(), intake_s = -1;
	for (int i = 0; i < 60; i++) {
		long status = fault_post(&t->h, &t->led, seq, 10, "a");
		seq += 10;
		assert_true(status == 503 || status == 200);
		if (status == 200) {
			intake_s = clock_mono() - freed;
			break;
		}
		harness_sleep_ms(500);
	}
	assert_true(intake_s >= 0);
	fault_load(t, &seq, 10, "a", 200, 2.0);
	int delivered = fault_wait_delivered(t, 60000);
	int drained = fault_wait_drained(t, 10000);
	fault_stop_ok(t);

	/* Every line one whole event; every event answered 200 written. */
	dl.cap = (size_t)seq * 2 + 16;
	dl.seq = calloc(dl.cap, sizeof(*dl.seq));
	assert_non_null(dl.seq);
	disk_scan = &dl;
	assert_int_equal(nftw(t->h.output_dir, disk_scan_file, 8, FTW_PHYS), 0);
	disk_scan = NULL;
	qsort(dl.seq, dl.n, sizeof(*dl.seq), disk_cmp_long);
	long unwritten = 0;
	for (size_t i = 0; i < t->led.n; i++)
		if (bsearch(&t->led.seq[i], dl.seq, dl.n, sizeof(*dl.seq), disk_cmp_long) == NULL)
			unwritten++;
	free(dl.seq);
	struct fault_figures fg =
		fault_figures(t, "disk_full_write_and_forward",
			      "backlog_before_full=%ld filler_bytes=%ld full_503=%ld full_200=%ld "
			      "drain_while_full_s=%.1f intake_recovered_s=%.1f lines=%ld bad_lines=%ld "
			      "partial_files=%ld unwritten=%ld",
			      backlog, filled, full_503, full_200, drain_s, intake_s, dl.lines, dl.bad,
			      dl.partial, unwritten);
	assert_int_equal(drained_full, 0);
	assert_int_equal(delivered_full, 0);
	assert_int_equal(delivered, 0);
	assert_int_equal(drained, 0);
	assert_int_equal(dl.bad, 0);
	assert_int_equal(dl.partial, 0);
	assert_int_equal(unwritten, 0);
	assert_int_equal(fg.dead_letters, 0);
	t->h.passed = 1;
}

const struct CMUnitTest faults_disk_tests[] = {
	FAULT_TEST(disk_full_write_and_forward),
};
const size_t faults_disk_count = sizeof(faults_disk_tests) / sizeof(faults_disk_tests[0]);
