/*
 * outbox_writer.c — group commit (see outbox_writer.h).
 *
 * Jobs live on their callers' stacks and are linked into a FIFO under the
 * mutex; the writer takes the whole list at once, so a batch arriving while
 * a commit is in its fsync rides in the next transaction. Callers wait on
 * one condition variable and check their own job's `done`.
 */
#include "outbox_writer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "outbox.h"
#include "outbox_space.h"

struct writer_job {
	int (*fill)(struct outbox *ob, void *arg);
	void *arg;
	int rc;
	int done;
	char err[256];
	struct writer_job *next;
};

struct outbox_writer {
	struct outbox *ob;           /* used by the writer thread only */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t work;         /* signalled when a job is queued or stop is set */
	pthread_cond_t finished;     /* broadcast when a group is done */
	struct writer_job *head, *tail;
	int stop;
};

/* Runs one group: one transaction, a savepoint per job, one commit. */
static void writer_run_group(struct outbox_writer *w, struct writer_job *jobs)
{
	const char *why = NULL;
	char full[128];
	int ok_jobs = 0;

	/* On a full disk the space left is delivery's: fail fast, write nothing. */
	if (!outbox_space_intake_ok(full, sizeof full)) {
		for (struct writer_job *j = jobs; j; j = j->next) {
			j->rc = -1;
			snprintf(j->err, sizeof j->err, "outbox: %s", full);
		}
		return;
	}
	if (outbox_begin(w->ob) != 0)
		why = outbox_error(w->ob);
	for (struct writer_job *j = jobs; j; j = j->next) {
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
		return;
	/* Nothing of this group is durable: every job fails. */
	log_msg(LOG_ERROR, NULL, "outbox: group transaction failed (%d batch%s lost it): %s",
		ok_jobs, ok_jobs == 1 ? "" : "es", why);
	for (struct writer_job *j = jobs; j; j = j->next)
		if (j->rc == 0) {
			j->rc = -1;
			snprintf(j->err, sizeof j->err, "outbox: %s", why);
		}
}

static void *writer_main(void *arg)
{
	struct outbox_writer *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct writer_job *jobs;

		while (!w->head && !w->stop)
			pthread_cond_wait(&w->work, &w->mu);
		if (!w->head)
			break;   /* stop requested and nothing left to commit */
		jobs = w->head;
		w->head = w->tail = NULL;
		pthread_mutex_unlock(&w->mu);

		writer_run_group(w, jobs);

		pthread_mutex_lock(&w->mu);
		for (struct writer_job *j = jobs; j;) {
			struct writer_job *next = j->next;

			j->done = 1;   /* j belongs to its caller again after this */
			j = next;
		}
		pthread_cond_broadcast(&w->finished);
	}
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
	w->ob = outbox_open(data_dir, err, errlen);
	if (!w->ob)
		goto fail;
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
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
	struct writer_job job = { .fill = fill, .arg = arg };

	pthread_mutex_lock(&w->mu);
	if (w->stop) {
		pthread_mutex_unlock(&w->mu);
		snprintf(err, errlen, "outbox: shutting down");
		return -1;
	}
	if (w->tail)
		w->tail->next = &job;
	else
		w->head = &job;
	w->tail = &job;
	pthread_cond_signal(&w->work);
	while (!job.done)
		pthread_cond_wait(&w->finished, &w->mu);
	pthread_mutex_unlock(&w->mu);
	if (job.rc != 0)
		snprintf(err, errlen, "%s", job.err);
	return job.rc;
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
