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

/*
 * argv[0] is the subcommand ("list", "replay", "purge"), the rest its
 * options. Output goes to stdout, errors to stderr. Returns a process exit
 * code (exit_codes.h): EXIT_OK, EXIT_INVALID (invalid config or rules, a
 * replay failed), EXIT_USAGE, EXIT_RUNTIME (database, output).
 */
int dlq_run(int argc, char **argv);

#endif
