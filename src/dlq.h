/*
 * dlq.h — `egoi-router dlq list|replay|purge [-c FILE] ...`: the operator's
 * tools for dead letters.
 *
 *   list    one JSON line per dead letter not yet replayed, oldest first
 *   replay  failed forwards go back to the outbox with their delivery id;
 *           rule errors and refused writes are routed again through the
 *           current rules file, as a batch of one event; rejected input is
 *           never replayed. Prints {"replayed":N,"skipped":M,"failed":K}.
 *   purge   deletes dead letters; prints {"purged":N}
 *
 * It runs beside a running daemon on the same data_dir/outbox.db (WAL and
 * the busy handler make the second process safe); the daemon's delivery
 * thread picks re-queued forwards up within a second.
 */
#ifndef EGOI_DLQ_H
#define EGOI_DLQ_H

#include <stddef.h>
#include <stdint.h>

struct config;
struct outbox;
struct outbox_dlq_entry;

/*
 * argv[0] is the subcommand ("list", "replay", "purge"), the rest its
 * options. Output goes to stdout, errors to stderr. Returns a process exit
 * code (exit_codes.h): EXIT_OK, EXIT_INVALID (invalid config or rules, a
 * replay failed), EXIT_USAGE, EXIT_RUNTIME (database, output).
 */
int dlq_run(int argc, char **argv);

/*
 * What `dlq replay` and `dlq purge` act on, for the command and for the
 * status console alike (both call the functions below: one replay, one
 * purge). Every field set narrows the selection.
 */
struct dlq_selection {
	const int64_t *ids;        /* these dead letters (nids of them); NULL = any id */
	size_t nids;
	const char *kind;          /* one of outbox_dead_kind_names; NULL = any */
	const char *dest;          /* replay: forwards whose name or URL host is this */
};

struct dlq_counts {
	long replayed, skipped, failed;
	long malformed;            /* of skipped: rows that are not usable dead letters */
};

/*
 * Replays the selection as `dlq replay` describes, on an open config and
 * outbox (ob belongs to the calling thread); one replay at a time per
 * data_dir (a lock file). Diagnostics go to stderr. 0 with *out filled
 * when it ran (the counts say how it went), -1 when it could not start
 * (another replay running, a database error).
 *
 * Threads: any one thread per call; it starts an outbox writer of its own
 * while event dead letters are routed again.
 */
int dlq_replay_selection(const struct dlq_selection *s, const struct config *cfg,
			 struct outbox *ob,
			 struct dlq_counts *out);

/*
 * What dead letter e names as its destination, into out (cap bytes,
 * NUL-terminated, "" when nothing): a forward's name, else its URL's host
 * (as the metrics label it); a write's path. The console shows this and a
 * replay by dest matches it, so the two cannot disagree.
 */
void dlq_dest_name(const struct outbox_dlq_entry *e, char *out, size_t cap);

/* Deletes the selection's dead letters (dest must be NULL), only replayed
 * ones if replayed_only, only those that died before died_before (unix
 * seconds) if it is > 0. Returns how many, or -1 (outbox_error). */
long dlq_purge_selection(struct outbox *ob, const struct dlq_selection *s, int replayed_only,
			 double died_before);

#endif
