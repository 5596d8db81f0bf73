/*
 * outbox_writer.c — group commit (see outbox_writer.h).
 *
 * Jobs live on their callers' stacks and are linked into a FIFO under the
 * mutex; the writer takes the whole list at once, so a batch arriving while
 * a commit is in its fsync rides in the next transaction. Callers wait on
 * one condition variable and check their own job's `done`.
 *
 * Files (write_sync = batch): before the group's transaction every file its
 * jobs name is fdatasync'ed once per (dev, ino), then a job whose file
 * failed is answered without running its fill. A job without fill (lines,
 * no rows) only waits for the flush. See outbox_writer_sync_files for why other
 * descriptors of an already flushed file are still asked.
 */
#include "outbox_writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "outbox.h"
#include "outbox_space.h"

struct writer_job {
	int (*fill)(struct outbox *ob, void *arg);   /* NULL: files only */
	void *arg;
	const struct outbox_writer_file *files;
	size_t nfiles;
	int rc;
	int done;
	char err[256];
	STAILQ_ENTRY(writer_job) link;
};

STAILQ_HEAD(writer_jobs, writer_job);

struct outbox_writer {
	struct outbox *ob;           /* used by the writer thread only */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work;         /* signalled when a job is queued or stop is set */
	pthread_cond_t finished;     /* broadcast when a group is done */
	struct writer_jobs queue;    /* waiting for the next group, oldest first */
	int stop;
	int exited;                  /* outbox_writer_main has returned (under mu) */
	double busy_since;           /* clock_mono when the group in progress began, 0 = idle */
	unsigned long groups, file_syncs, queued;   /* under mu */
};

struct sync_slot {
	dev_t dev;
	ino_t ino;
	int fd;
	int err;   /* errno of the file's flush, 0 = durable */
};

static int outbox_writer_slot_cmp(const void *pa, const void *pb)
{
	const struct sync_slot *x = pa, *y = pb;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return (x->fd > y->fd) - (x->fd < y->fd);
}

/* fdatasync, retried on EINTR; 0 or the errno. */
static int outbox_writer_data_sync(int fd)
{
	int rc;

	do
		rc = fdatasync(fd);
	while (rc != 0 && errno == EINTR);
	return rc == 0 ? 0 : errno;
}

/*
 * Flushes every file the group's jobs name and fails the jobs whose file
 * did not flush; returns the number of files flushed. The first fdatasync
 * of a file writes its data; each further descriptor of the same file (other
 * workers open their own) is asked too: it finds nothing left to write, so
 * it is cheap, but Linux reports a writeback error once per open file
 * description, and an error already reported through another descriptor
 * would otherwise go unseen by the batches behind this one. An error on any
 * descriptor fails every job of that file in the group.
 */
static unsigned long outbox_writer_sync_files(const struct writer_jobs *jobs)
{
	struct sync_slot *slots = NULL, key, *hit;
	struct writer_job *j;
	unsigned long flushed = 0;
	size_t n = 0, k = 0;

	STAILQ_FOREACH(j, jobs, link)
		n += j->nfiles;
	if (n == 0)
		return 0;
	slots = malloc(n * sizeof *slots);
	if (!slots) {
		STAILQ_FOREACH(j, jobs, link)
			if (j->nfiles) {
				j->rc = -1;
				snprintf(j->err, sizeof j->err, "out of memory syncing files");
			}
		return 0;
	}
	STAILQ_FOREACH(j, jobs, link)
		for (size_t i = 0; i < j->nfiles; i++)
			slots[k++] = (struct sync_slot){ .dev = j->files[i].dev,
							 .ino = j->files[i].ino,
							 .fd = j->files[i].fd };
	qsort(slots, n, sizeof *slots, outbox_writer_slot_cmp);
	for (size_t i = 0, end; i < n; i = end) {
		int err = outbox_writer_data_sync(slots[i].fd);

		flushed++;
		for (end = i + 1; end < n && slots[end].dev == slots[i].dev &&
		     slots[end].ino == slots[i].ino; end++)
			if (!err && slots[end].fd != slots[end - 1].fd)
				err = outbox_writer_data_sync(slots[end].fd);
		for (size_t m = i; m < end; m++)
			slots[m].err = err;
	}
	STAILQ_FOREACH(j, jobs, link)
		for (size_t i = 0; i < j->nfiles && j->rc == 0; i++) {
			key = (struct sync_slot){ .dev = j->files[i].dev, .ino = j->files[i].ino,
						  .fd = j->files[i].fd };
			hit = bsearch(&key, slots, n, sizeof *slots, outbox_writer_slot_cmp);
			if (hit && hit->err == 0)
				continue;
			j->rc = -1;
			snprintf(j->err, sizeof j->err, "cannot sync %s: %s",
				 j->files[i].name ? j->files[i].name : "a written file",
				 strerror(hit ? hit->err : EIO));
		}
	free(slots);
	return flushed;
}

/*
 * Runs one group: the files' flush, then one transaction, a savepoint per
 * job with rows, one commit. Returns the number of files flushed.
 */
static unsigned long outbox_writer_run_group(struct outbox_writer *w, struct writer_jobs *jobs)
{
	const char *why = NULL;
	struct writer_job *j;
	char full[128];
	int ok_jobs = 0, with_rows = 0;
	unsigned long flushed = outbox_writer_sync_files(jobs);

	STAILQ_FOREACH(j, jobs, link)
		with_rows += j->rc == 0 && j->fill;
	if (!with_rows)
		return flushed;
	/* On a full disk the space left is delivery's: fail fast, write nothing. */
	if (!outbox_space_intake_ok(full, sizeof full)) {
		STAILQ_FOREACH(j, jobs, link)
			if (j->rc == 0 && j->fill) {
				j->rc = -1;
				snprintf(j->err, sizeof j->err, "outbox: %s", full);
			}
		return flushed;
	}
	if (outbox_begin(w->ob) != 0)
		why = outbox_error(w->ob);
	STAILQ_FOREACH(j, jobs, link) {
		if (j->rc != 0 || !j->fill)
			continue;   /* its file did not sync, or it has no rows */
		if (why) {
			j->rc = -1;
			snprintf(j->err, sizeof j->err, "outbox: %s", why);
			continue;
		}
		if (outbox_savepoint(w->ob) != 0) {
			j->rc = -1;
			snprintf(j->err, sizeof j->err, "outbox: %s", outbox_error(w->ob));
			continue;
		}
		j->rc = j->fill(w->ob, j->arg);
		if (j->rc != 0) {
			snprintf(j->err, sizeof j->err, "outbox: %s", outbox_error(w->ob));
			if (outbox_savepoint_rollback(w->ob) != 0)
				why = outbox_error(w->ob);
		} else if (outbox_savepoint_release(w->ob) != 0) {
			/* Its rows would stay in the transaction: the group must not commit. */
			j->rc = -1;
			snprintf(j->err, sizeof j->err, "outbox: %s", outbox_error(w->ob));
			why = outbox_error(w->ob);
		} else {
			ok_jobs++;
		}
	}
	if (!why && outbox_commit(w->ob) != 0)
		why = outbox_error(w->ob);
	else if (why)
		outbox_rollback(w->ob);
	if (!why)
		return flushed;
	/* Nothing of this group's rows is durable: every job with rows fails. */
	log_msg(LOG_ERROR, NULL, "outbox: group transaction failed (%d batch%s lost it): %s",
		ok_jobs, ok_jobs == 1 ? "" : "es", why);
	STAILQ_FOREACH(j, jobs, link)
		if (j->rc == 0 && j->fill) {
			j->rc = -1;
			snprintf(j->err, sizeof j->err, "outbox: %s", why);
		}
	return flushed;
}

static void *outbox_writer_main(void *arg)
{
	struct outbox_writer *w = arg;
	/* shown by top -H, ps -L and gdb; a failure only loses the name */
	(void)pthread_setname_np(pthread_self(), "egoi-writer");
	outbox_adopt(w->ob);   /* opened by outbox_writer_start, used only here from now on */

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct writer_jobs group = STAILQ_HEAD_INITIALIZER(group);
		struct writer_job *j, *next;
		unsigned long flushed;

		while (STAILQ_EMPTY(&w->queue) && !w->stop)
			pthread_cond_wait(&w->work, &w->mu);
		if (STAILQ_EMPTY(&w->queue))
			break;   /* stop requested and nothing left to commit */
		STAILQ_CONCAT(&group, &w->queue);
		w->queued = 0;
		w->busy_since = clock_mono();
		pthread_mutex_unlock(&w->mu);

		flushed = outbox_writer_run_group(w, &group);

		pthread_mutex_lock(&w->mu);
		w->busy_since = 0;
		w->groups++;
		w->file_syncs += flushed;
		/* read the link before done: j belongs to its caller again after it */
		for (j = STAILQ_FIRST(&group); j; j = next) {
			next = STAILQ_NEXT(j, link);
			j->done = 1;
		}
		pthread_cond_broadcast(&w->finished);
	}
	w->exited = 1;
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct outbox_writer *outbox_writer_start(const char *data_dir, char *err, size_t errlen)
{
	struct outbox_writer *w = calloc(1, sizeof *w);

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->finished, NULL);
	STAILQ_INIT(&w->queue);
	w->ob = outbox_open(data_dir, err, errlen);
	if (!w->ob)
		goto fail;
	if (pthread_create(&w->thread, NULL, outbox_writer_main, w) != 0) {
		snprintf(err, errlen, "cannot start the outbox writer thread");
		goto fail;
	}
	return w;
fail:
	outbox_close(w->ob);
	pthread_cond_destroy(&w->finished);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	free(w);
	return NULL;
}

int outbox_writer_commit(struct outbox_writer *w, int (*fill)(struct outbox *ob, void *arg),
			 void *arg, char *err, size_t errlen)
{
	return outbox_writer_commit_files(w, fill, arg, NULL, 0, err, errlen);
}

int outbox_writer_commit_files(struct outbox_writer *w,
			       int (*fill)(struct outbox *ob, void *arg), void *arg,
			       const struct outbox_writer_file *files, size_t nfiles,
			       char *err, size_t errlen)
{
	struct writer_job job = { .fill = fill, .arg = arg, .files = files, .nfiles = nfiles };

	pthread_mutex_lock(&w->mu);
	if (w->stop) {
		pthread_mutex_unlock(&w->mu);
		snprintf(err, errlen, "outbox: shutting down");
		return -1;
	}
	STAILQ_INSERT_TAIL(&w->queue, &job, link);
	w->queued++;
	pthread_cond_signal(&w->work);
	while (!job.done)
		pthread_cond_wait(&w->finished, &w->mu);
	pthread_mutex_unlock(&w->mu);
	if (job.rc != 0)
		snprintf(err, errlen, "%s", job.err);
	return job.rc;
}

void outbox_writer_stats(struct outbox_writer *w, struct outbox_writer_stats *out)
{
	pthread_mutex_lock(&w->mu);
	out->groups = w->groups;
	out->file_syncs = w->file_syncs;
	out->queued = w->queued;
	pthread_mutex_unlock(&w->mu);
}

int outbox_writer_health(struct outbox_writer *w, double *busy_since)
{
	int alive;

	pthread_mutex_lock(&w->mu);
	alive = !w->exited && !w->stop;
	*busy_since = w->busy_since;
	pthread_mutex_unlock(&w->mu);
	return alive;
}

void outbox_writer_stop(struct outbox_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->work);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	outbox_close(w->ob);
	pthread_cond_destroy(&w->finished);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
