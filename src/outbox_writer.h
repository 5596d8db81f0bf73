/*
 * outbox_writer.h — group commit for the outbox.
 *
 * Every HTTP worker must make its batch durable before answering 200. If
 * each worker had its own SQLite connection, concurrent writers queue on SQLite's
 * write lock and its busy handler sleeps them (1 ms to 100 ms steps), and
 * each batch pays its own fsync. Instead, one writer thread owns the only
 * intake connection: workers hand it their batch (a fill function), it puts
 * every batch waiting at that moment into ONE transaction, a savepoint
 * each, commits once (one fsync for all of them), and wakes the workers
 * with their own result. A batch whose rows fail is rolled back to its
 * savepoint alone; a failed COMMIT fails every batch of that transaction.
 *
 * A batch may also name files it appended to (write_sync = batch): before
 * the transaction, the writer fdatasync()s each file of the group once,
 * however many batches wrote to it, and a batch whose file fails to sync
 * fails without adding its rows. So the lines and the outbox rows share one
 * flush per group.
 *
 * Threads: outbox_writer_commit is called from any thread and blocks until
 * its batch is committed or has failed. The fill function runs on the
 * writer thread while the caller waits, so it may read the caller's memory
 * (and use the caller's descriptors).
 */
#ifndef EGOI_OUTBOX_WRITER_H
#define EGOI_OUTBOX_WRITER_H

#include <stddef.h>
#include <sys/types.h>

struct outbox;
struct outbox_writer;

/* Opens data_dir's outbox and starts the writer thread. NULL with err set. */
struct outbox_writer *outbox_writer_start(const char *data_dir, char *err, size_t errlen);

/*
 * Runs fill(ob, arg) inside the next group transaction and waits for the
 * commit. fill adds rows with outbox_add_forward / outbox_add_dead and
 * returns 0, or -1 to undo its rows. Returns 0 when the rows are durable;
 * -1 with err set otherwise (nothing of this batch is stored).
 */
int outbox_writer_commit(struct outbox_writer *w, int (*fill)(struct outbox *ob, void *arg),
			 void *arg, char *err, size_t errlen);

/* A file a batch appended to, to be flushed before its commit. */
struct outbox_writer_file {
	int fd;              /* the caller's descriptor, open while it waits */
	dev_t dev;           /* the file's identity: one flush per file per group */
	ino_t ino;
	const char *name;    /* for the error message */
};

/*
 * outbox_writer_commit, and first fdatasync() of files[0..nfiles) (borrowed
 * until it returns). fill may be NULL: a batch with lines but no rows.
 * Returns 0 when the files are synced and the rows durable; -1 with err set
 * otherwise (a file that failed to sync: "cannot sync NAME: reason", and
 * none of the rows is stored).
 */
int outbox_writer_commit_files(struct outbox_writer *w,
			       int (*fill)(struct outbox *ob, void *arg), void *arg,
			       const struct outbox_writer_file *files, size_t nfiles,
			       char *err, size_t errlen);

/* Counters, for tests and diagnostics; read under the writer's lock. */
struct outbox_writer_stats {
	unsigned long groups;      /* groups run so far */
	unsigned long file_syncs;  /* fdatasync calls flushing a file (one per file per group) */
	unsigned long queued;      /* batches waiting for the next group now */
};

void outbox_writer_stats(struct outbox_writer *w, struct outbox_writer_stats *out);

/*
 * For readiness: 1 while the writer thread takes batches, 0 once it is
 * stopping or has returned. *busy_since: clock_mono() when the group it is
 * committing began, 0 when idle (a group stuck for long, such as an fsync
 * that does not return, is not "accepting writes").
 */
int outbox_writer_health(struct outbox_writer *w, double *busy_since);

/* Commits what is queued, stops the thread, closes the database. w may be NULL. */
void outbox_writer_stop(struct outbox_writer *w);

#endif
